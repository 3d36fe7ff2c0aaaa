"""What settings' values may be: the checks the config's fields name (`check=`), the host
policies, and how the command line's texts become values (`parse=`). Plain functions over
values; the fields themselves are in crawler/config/__init__.py."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from yarl import URL

from crawler import settings
from crawler.errors import ConfigError
from crawler.settings import setting

DEFAULT_USER_AGENT = "crawler/0.1 (polite asyncio web crawler)"
MAX_LINKS = 10_000  # links one page may add (Heritrix caps a page's outlinks too)


OUTPUT_FORMATS = ("jsonl", "json", "csv")
"""What items can be written as, by `output` feeds and `crawl export`."""
def check_outputs(name: str, outputs: tuple[str, ...]) -> None:
    if isinstance(outputs, str):  # a str is a sequence too: of one-letter files
        raise ConfigError(f'{name} must be a list of files, e.g. ["items.jsonl"], not '
                          f"{outputs!r}")


def check_output_format(name: str, fmt: str | None) -> None:
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"{name} must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")


def check_user_agent(name: str, value: str) -> None:
    if not value.strip():
        raise ConfigError(f"{name} must be a non-empty string")
    check_header_value("User-Agent", value, setting=name)


def check_patterns(name: str, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ConfigError(f"{name} pattern {pattern!r} is not a valid regular "
                              f"expression: {exc}") from None


# RFC 9110's token: what a header's name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
REDACTED = "***"


def headers_from_text(items: Sequence[str]) -> dict[str, str]:
    """Headers from the command line's 'Name: value' texts (a repeated name: the last)."""
    headers = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header takes 'NAME: VALUE', not {item!r}")
        headers[name.strip()] = value.strip(" \t")
    return headers


def check_headers(name: str, headers: Mapping[str, str]) -> None:
    for key, value in headers.items():
        if not _TOKEN.fullmatch(key):
            raise ConfigError(f"{name}: {key!r} is not a header name (letters, digits and "
                              "!#$%&'*+-.^_`|~ only)")
        if key.lower() in ("user-agent", "host", "content-length", "transfer-encoding"):
            hint = "set user_agent" if key.lower() == "user-agent" else "it is the crawler's"
            raise ConfigError(f"{name}: the {key} header cannot be set here ({hint})")
        check_header_value(key, value, setting=name)


def check_auth(name: str, auth: Mapping[str, tuple[str, ...]]) -> None:
    for host, pair in auth.items():
        if not _auth_key_ok(host):
            raise ConfigError(f"{name}: {host!r} is neither a host name nor an origin (auth is "
                              'per host or origin, e.g. {"api.example": ("user", "password")} '
                              'or {"https://api.example:8443": ...}: no path, query or user)')
        if len(pair) != 2:
            raise ConfigError(f"{name}: the credentials for {host} must be (user, password)")
        if ":" in pair[0]:
            raise ConfigError(f"{name}: the user name for {host} holds a ':', which basic "
                              "auth cannot send")
        if any(_HEADER_CONTROL.search(part) for part in pair):
            raise ConfigError(f"{name}: the credentials for {host} hold a control character")


def _auth_key_ok(key: str) -> bool:
    """A host name, or an origin: http(s)://HOST[:PORT] and nothing else."""
    if "://" not in key:
        return bool(key) and not any(c in key for c in "/:@ ")
    try:
        url = URL(key)
    except ValueError:
        return False
    return (url.scheme in ("http", "https") and bool(url.raw_host) and url.raw_user is None
            and url.raw_password is None and url.raw_path in ("", "/")
            and not url.raw_query_string and not url.raw_fragment and "?" not in key
            and "#" not in key)


def check_host_keys(name: str, policies: Mapping[str, object]) -> None:
    """A host policy's key is a host or domain name as URLs hold it: with a scheme, port
    or path it would match no host, and the policy would be silently ignored."""
    for host in policies:
        if not host or any(c in host for c in "/@ ") or host != host.strip(".") \
                or (":" in host and not _ipv6(host)):
            raise ConfigError(f"{name}: {host!r} is not a host or domain name (e.g. "
                              '{"example.org": HostPolicy(delay=5)}: no scheme, port or '
                              "path)")


def _ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def check_proxy(name: str, proxy: str | None) -> None:
    if proxy is None:
        return
    try:
        url = URL(proxy)
    except ValueError:
        url = URL()
    shown = redact_url(proxy)
    if url.scheme in ("socks4", "socks5", "socks5h"):
        raise ConfigError(f"{name}: SOCKS proxies are not supported ({shown}); use an HTTP "
                          "or HTTPS proxy")
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/") \
            or url.query_string or url.fragment:
        raise ConfigError(f"{name} must be http://[USER:PASSWORD@]HOST[:PORT] (or https://), "
                          f"not {shown!r}")


def redact_url(text: str) -> str:
    """A URL without its password (and user name): for messages and the stored config."""
    try:
        url = URL(text)
    except ValueError:
        return REDACTED
    if url.raw_user is None and url.raw_password is None:
        return text
    return str(url.with_user(None)).replace("://", f"://{REDACTED}@", 1)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Politeness for one host or domain (and its subdomains), overriding the crawl's."""

    per_host: int | None = setting(None, low=1, help="requests in flight to the host")
    delay: float | None = setting(None, low=0,
                                  help="seconds between request starts to the host")

    def __post_init__(self) -> None:
        settings.validate(self)


def host_policies_from_text(per_host: Sequence[str],
                            delay: Sequence[str]) -> dict[str, HostPolicy]:
    """Host policies from the command line's HOST=N and HOST=SECONDS texts."""
    caps = {host: int(_number(value, f"--host-per-host {host}", whole=True))
            for host, value in map(_host_value, per_host)}
    delays = {host: _number(value, f"--host-delay {host}")
              for host, value in map(_host_value, delay)}
    return {host: HostPolicy(per_host=caps.get(host), delay=delays.get(host))
            for host in {*caps, *delays}}


def _host_value(item: str) -> tuple[str, str]:
    host, sep, value = item.partition("=")
    if not sep or not host or not value:
        raise ConfigError(f"expected HOST=VALUE, not {item!r}")
    return host.strip().lower(), value


def _number(text: str, what: str, *, whole: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if whole and not value.is_integer():
        raise ConfigError(f"{what}: {text!r} is not a whole number")
    return value


def resolve_from_text(items: Sequence[str]) -> dict[str, str]:
    """DNS answers from the command line's HOST:ADDRESS texts."""
    return dict(map(_host_address, items))


def _host_address(item: str) -> tuple[str, str]:
    host, sep, addr = item.partition(":")  # an IPv6 address keeps its colons: h.test:::1
    if not sep or not host or not addr:
        raise ConfigError(f"--resolve takes HOST:ADDRESS, not {item!r}")
    return host, addr


# Control characters end a header line (CR, LF) or the header block, or are refused by
# servers: a value holding one would inject headers or break every request.
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_header_value(name: str, value: str, *, setting: str) -> None:
    """Refuse a header value that is not one line of text (ConfigError, saying where)."""
    bad = _HEADER_CONTROL.search(value)
    if bad is not None:
        raise ConfigError(
            f"{setting}: the {name} header value {value!r} holds the control character "
            f"{bad.group()!r} at position {bad.start()}; header values must be one line of "
            "text (no CR, LF or other control characters)")
    if value != value.strip(" \t"):
        raise ConfigError(f"{setting}: the {name} header value {value!r} starts or ends with "
                          "white space, which HTTP does not keep")
