"""What the crawl's one ClientSession carries from request to request: its cookie jar, the
default headers, per-host basic auth and the crawl-wide proxy. aiohttp stays in this package:
the jar's cookies leave it as `transport.Cookie`s, plain data.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from email.utils import formatdate
from http.cookies import CookieError, Morsel
from typing import Any

import aiohttp
from aiohttp.typedefs import LooseCookies
from multidict import CIMultiDict
from publicsuffixlist import PublicSuffixList
from yarl import URL

from crawler.config import CrawlConfig
from crawler.errors import PrivateAddress
from crawler.http.transport import Cookie
from crawler.urls.addresses import private_kind


class CountingJar(aiohttp.CookieJar):
    """aiohttp's safe jar (never `unsafe`: no cookies from IP-address hosts, as browsers do)
    that counts the responses that set cookies, so the engine saves the jar only when it
    may have changed: a crawl without cookies pays nothing per page. It notes the
    (domain, path, name) of each cookie set or dropped since `take_changed`, so only those
    cross to the store: a response costs what it set, not the whole jar."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0
        self.changed: set[tuple[str, str, str]] = set()

    def update_cookies_from_headers(self, headers: Sequence[str], response_url: URL) -> None:
        self.changes += 1
        super().update_cookies_from_headers(headers, response_url)

    def _update_cookies(self, cookies: LooseCookies, response_url: URL,
                        **options: Any) -> None:
        # Every way in (headers, update_cookies, a saved jar) passes here: the keys are
        # noted as the jar will file them; a cookie the jar refuses is read back absent.
        pairs = []
        for name, given in cookies.items() if isinstance(cookies, Mapping) else cookies:
            value = given
            morsel = value if isinstance(value, Morsel) else None
            if morsel is not None and morsel["domain"]:
                value = morsel = _within_site(morsel, response_url.raw_host)
                if morsel is None:
                    continue
            self.changed.add(_jar_key(name, morsel, response_url))
            pairs.append((name, value))
        super()._update_cookies(pairs, response_url, **options)

    def _delete_cookies(self, to_del: list[tuple[str, str, str]]) -> None:
        # Expired, evicted or cleared cookies: gone from the store too.
        self.changed.update(to_del)
        super()._delete_cookies(to_del)

    def add_sent(self, cookies: Iterable[tuple[str, str]], url: URL) -> None:
        """A request's own `cookies=` join the session (as Scrapy's CookiesMiddleware does):
        host-only cookies of its host, path "/", so later requests to that host send them
        and the state file keeps them. An IP-address host keeps none (the safe jar's rule):
        the request still sends them itself."""
        if private_kind(url.raw_host or "") != "not an IP address":
            return
        self.changes += 1
        morsels: dict[str, Morsel[str]] = {}
        for name, value in cookies:
            morsel: Morsel[str] = Morsel()
            morsel.set(name, value, value)  # checked sendable where the request was made
            morsel["path"] = "/"
            morsels[name] = morsel
        self.update_cookies(morsels, url.origin())

    def take_changed(self) -> tuple[list[Cookie], list[tuple[str, str, str]]]:
        """The cookies set since the last call, and the (domain, path, name) of those gone
        (the path without its trailing slashes, as the jar files it)."""
        # Purges the cookies expired by now (their deletions are noted), as iterating does:
        # from the jar's heap of deadlines, not a pass over the jar.
        self._do_expiration()
        changed, self.changed = self.changed, set()
        host_only = self.host_only_cookies
        deadlines: Mapping[tuple[str, str, str], float] = getattr(self, "_expirations", {})
        kept, gone = [], []
        for key in changed:
            domain, path, name = key
            bucket = self._cookies.get((domain, path))
            morsel = None if bucket is None else bucket.get(name)
            if morsel is None:
                gone.append(key)
            else:
                kept.append(_cookie(morsel, deadlines.get(key), key in host_only))
        return kept, gone


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def _public_suffix(domain: str) -> bool:
    """Whether `domain` is one under which unrelated parties register names (co.uk,
    github.io, an unknown TLD). The list changes every week and has rules no short code
    gets right (wildcards, exceptions, private suffixes): the maintained package ships it,
    offline. Parsed once, when the first cookie with a Domain attribute arrives."""
    return bool(_suffixes().is_public(domain))


def _within_site(morsel: Morsel[Any], host: str | None) -> Morsel[Any] | None:
    """A cookie whose Domain is a public suffix would reach every site under it: refused,
    unless the suffix is the response's own host, where it becomes a host-only cookie (as
    browsers do, RFC 6265 5.3 step 5)."""
    domain = str(morsel["domain"]).lower()
    if domain.endswith("."):  # aiohttp files it as host-only: nothing to check
        return morsel
    domain = domain.removeprefix(".")
    if not domain or not _public_suffix(domain):
        return morsel
    if domain != (host or "").lower():
        return None
    own = morsel.copy()  # the caller's morsel stays as it was
    own["domain"] = ""
    return own


def _jar_key(name: str, morsel: Morsel[Any] | None, url: URL) -> tuple[str, str, str]:
    """Where aiohttp's jar files a cookie (its `_update_cookies` rules)."""
    domain: str = "" if morsel is None else morsel["domain"]
    if domain.endswith("."):
        domain = ""
    domain = domain.removeprefix(".") or (url.raw_host or "")
    path: str = "" if morsel is None else morsel["path"]
    url_path = url.path
    if not path.startswith("/"):
        path = "/" + url_path[1:url_path.rfind("/")] if url_path.startswith("/") else "/"
    return domain, path.rstrip("/"), name


def _cookie(morsel: Morsel[str], expires: float | None, host_only: bool) -> Cookie:
    return Cookie(morsel.key, morsel.coded_value, morsel["domain"], morsel["path"], expires,
                  bool(morsel["secure"]), bool(morsel["httponly"]), host_only)


def jar_for(config: CrawlConfig) -> aiohttp.abc.AbstractCookieJar:
    return CountingJar() if config.cookies else aiohttp.DummyCookieJar()


def cookies_of(jar: aiohttp.abc.AbstractCookieJar) -> tuple[Cookie, ...]:
    """The jar's cookies as plain data (none from a DummyCookieJar)."""
    if not isinstance(jar, aiohttp.CookieJar):
        return ()
    host_only = jar.host_only_cookies
    # The absolute deadline a Max-Age became: aiohttp keeps it only here (3.9-3.14); an
    # aiohttp without it gives session cookies, which a resumed crawl keeps all the same.
    deadlines: Mapping[tuple[str, str, str], float] = getattr(jar, "_expirations", {})
    found = []
    for morsel in jar:  # iterating drops expired cookies first
        key = (morsel["domain"], morsel["path"].rstrip("/"), morsel.key)
        found.append(_cookie(morsel, deadlines.get(key), key in host_only))
    return tuple(found)


def load_into(jar: aiohttp.abc.AbstractCookieJar, cookies: Iterable[Cookie]) -> None:
    """Put kept cookies back, through the jar's own rules (expired ones are left out)."""
    if not isinstance(jar, aiohttp.CookieJar):
        return
    now = time.time()
    for cookie in cookies:
        if cookie.expires is not None and cookie.expires <= now:
            continue
        morsel: Morsel[str] = Morsel()
        try:
            morsel.set(cookie.name, cookie.value, cookie.value)  # the value as it was sent
        except CookieError:
            continue  # a name http.cookies refuses could not be sent either
        morsel["path"] = cookie.path
        morsel["domain"] = "" if cookie.host_only else cookie.domain
        morsel["secure"] = cookie.secure
        morsel["httponly"] = cookie.http_only
        if cookie.expires is not None:
            morsel["expires"] = formatdate(cookie.expires, usegmt=True)
        jar.update_cookies({cookie.name: morsel},
                           URL.build(scheme="https", host=cookie.domain))


def default_headers(config: CrawlConfig, accept: str) -> dict[str, str]:
    """The session's headers: ours only. The crawl's own (`headers`, `--header`) go with each
    request instead: aiohttp copies a session's headers into the CONNECT it sends a proxy,
    where an Authorization becomes the proxy's Proxy-Authorization."""
    return {"User-Agent": config.user_agent, "Accept": accept}


Origin = tuple[str, str, int | None]
"""(scheme, host, port): where basic auth may go."""


def auth_by_origin(config: CrawlConfig, starts: Iterable[URL]) -> dict[Origin, str]:
    """The Authorization header for each origin `auth` names. A host key goes to that host
    on the schemes and ports where the crawl's start URLs reach it, or, reached by none, to
    https on 443 only: another port is another server, and http would carry in clear what
    was given for https. An origin key ("https://api.example:8443") goes to that origin."""
    by_host: dict[str, str] = {}
    by_origin: dict[Origin, str] = {}
    for key, (user, password) in config.auth.items():
        header = aiohttp.encode_basic_auth(user, password)
        if "://" in key:
            url = URL(key)
            by_origin[(url.scheme, (url.raw_host or "").lower(), url.port)] = header
        else:
            by_host[key.lower()] = header
    found: dict[Origin, str] = {}
    for url in starts:
        if (host := (url.raw_host or "").lower()) in by_host:
            found[(url.scheme, host, url.port)] = by_host[host]
    reached = {host for _, host, _ in found}
    found.update((("https", host, 443), header) for host, header in by_host.items()
                 if host not in reached)
    found.update(by_origin)  # the user's own words for an origin come last
    return found


def request_headers(extra: Mapping[str, str] | None, url: URL, auth: Mapping[Origin, str],
                    proxy: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """One request's own headers with its credentials: basic auth for its origin, exactly
    (never a subdomain, another port or scheme: each redirect hop is a request of its own,
    to its own origin), and an http target's Proxy-Authorization (an https one's goes in
    the CONNECT, never inside the tunnel to the target)."""
    headers = dict(extra or {})
    authorization = auth.get((url.scheme, (url.raw_host or "").lower(), url.port))
    if authorization is not None:
        for name in [name for name in headers if name.lower() == "authorization"]:
            del headers[name]  # the crawl's `headers` may spell it in lower case
        headers["Authorization"] = authorization
    if proxy is not None and url.scheme == "http":
        headers.update(proxy)
    return headers or None


def merged(own: Sequence[tuple[str, str]],
           crawls: Mapping[str, str] | None) -> Sequence[tuple[str, str]]:
    """A request's own headers, then those of the crawl's it does not name: its own win (its
    Authorization over the crawl's basic auth too, as Scrapy's HttpAuthMiddleware), and a
    name given by both would be sent twice."""
    if not crawls:
        return own
    named = {name.lower() for name, _ in own}
    return [*own, *((name, value) for name, value in crawls.items()
                    if name.lower() not in named)]


def proxy_for(config: CrawlConfig) -> tuple[URL | None, CIMultiDict[str] | None]:
    """The crawl-wide proxy without its credentials, and the Proxy-Authorization header that
    carries them (this aiohttp reads no credentials from a proxy's URL). The header goes to
    the proxy only: in the CONNECT of an https target (`proxy_headers`), in the request
    itself for an http one, which the proxy reads and does not pass on."""
    if config.proxy is None:
        return None, None
    url = URL(config.proxy)
    if url.user is None:
        return url, None
    auth = aiohttp.encode_basic_auth(url.user, url.password or "")
    return url.with_user(None), CIMultiDict({"Proxy-Authorization": auth})


def refuse_private_target(url: URL) -> None:
    """Through a proxy, our sockets go to the proxy only: a target that is a private IP
    address is refused here. A name is resolved by the proxy, which we cannot watch."""
    kind = private_kind(url.raw_host or "")
    if kind is not None and kind != "not an IP address":
        raise PrivateAddress(f"refused to send a request for {url.host}, a {kind} address, "
                             "through the proxy: the crawl's start URLs are public "
                             "(--allow-private allows private networks)", url=str(url))
