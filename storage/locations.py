"""What a `--state` location names: an SQLite file (a path) or a crawl in a PostgreSQL
database (a `postgresql://` URL). Plain text work: no driver.

A PostgreSQL URL names its crawl with `?crawl=NAME`; each crawl is a schema of its own in
the database, so many crawls share one. The crawler adds the name it would give the crawl's
SQLite file (`name_crawl`) when the user gave none. A URL's password is never shown:
`Location.shown` is the URL without it, and `redact` takes it out of any message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
DEFAULT_LEASE = 30.0  # seconds a process holds a host without renewing it
DEFAULT_RECONNECT = 300.0  # seconds a store keeps trying to reach its lost server
# Ours, not libpq's: kept out of the driver's URL.
_OWN_PARAMS = ("crawl", "lease", "renew", "reconnect")
MAX_IDENTIFIER = 63  # PostgreSQL's limit on a name, in bytes
SCHEMA_PREFIX = "crawl_"
_SECRET_PARAMS = ("password", "sslpassword")


def is_postgres(location: str) -> bool:
    return location.split("://", 1)[0].lower() in SCHEMES and "://" in location


def name_crawl(location: str, name: str) -> str:
    """`location`, naming the crawl `name` if it is a PostgreSQL URL that names none. `name`
    may be a default SQLite file name ("books.crawl.db"): its suffixes go."""
    if not is_postgres(location):
        return location
    parts = urlsplit(location)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "crawl" for key, _ in query):
        return location
    name = name.removesuffix(".db").removesuffix(".crawl")
    query.append(("crawl", name))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def shown(location: str) -> str:
    """`location` as messages may show it: a PostgreSQL URL without its password."""
    return Location.parse(location).shown if is_postgres(location) else location


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed PostgreSQL location: `dsn` for the driver (the password kept, no `crawl`),
    `shown` for people (no password), `crawl` the crawl's name if the URL gave one."""

    dsn: str
    shown: str
    crawl: str | None
    secrets: tuple[str, ...]
    lease: float = DEFAULT_LEASE
    """`?lease=SECONDS`: how long a process holds a host without renewing it; a killed
    process's hosts and requests go to the others after this long."""
    renew: bool = True
    """`?renew=0` turns host lease renewal off: for tests of a takeover only."""
    reconnect: float = DEFAULT_RECONNECT
    """`?reconnect=SECONDS`: how long a store whose connection was lost (the server
    restarted, the network cut) keeps trying to connect again before it gives up; 0: never."""

    @classmethod
    def parse(cls, text: str) -> Location:
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
        crawl = next((value for key, value in query if key == "crawl"), None)
        rest = [(k, v) for k, v in query if k not in _OWN_PARAMS]
        lease = float(next((v for k, v in query if k == "lease"), DEFAULT_LEASE))
        if not 0 < lease < 1e6:
            raise ValueError(f"lease={lease:g}: a lease is a number of seconds above 0")
        renew = next((v for k, v in query if k == "renew"), "1") not in ("0", "off", "no")
        reconnect = float(next((v for k, v in query if k == "reconnect"), DEFAULT_RECONNECT))
        if not 0 <= reconnect < 1e6:
            raise ValueError(f"reconnect={reconnect:g}: a number of seconds, 0 or more")
        secrets = [v for k, v in rest if k in _SECRET_PARAMS and v]
        if parts.password:
            secrets += [parts.password, unquote(parts.password)]
        dsn = urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote)))
        netloc = parts.netloc.rsplit("@", 1)
        if len(netloc) == 2:
            netloc[0] = netloc[0].split(":", 1)[0]
        shown_query = [(k, v) for k, v in query if k not in _SECRET_PARAMS]
        shown = urlunsplit(parts._replace(netloc="@".join(netloc),
                                          query=urlencode(shown_query, quote_via=quote)))
        return cls(dsn, shown, crawl or None, tuple(sorted(set(secrets), key=len, reverse=True)),
                   lease, renew, reconnect)

    def redact(self, text: str) -> str:
        """`text` (a driver's message, say) with the URL's password taken out."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def with_crawl(self, crawl: str) -> str:
        """`shown`, naming `crawl`."""
        return name_crawl(self.shown, crawl)


def schema_name(crawl: str) -> str:
    """The PostgreSQL schema a crawl lives in: crawl_NAME, quoted wherever it is used (any
    character may be in it); a name too long for PostgreSQL keeps its start and a digest."""
    name = SCHEMA_PREFIX + crawl
    if len(name.encode()) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(crawl.encode()).hexdigest()[:12]
    head = name.encode()[: MAX_IDENTIFIER - 13].decode(errors="ignore")
    return f"{head}_{digest}"


def crawl_of(schema: str) -> str:
    return schema.removeprefix(SCHEMA_PREFIX)


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'

