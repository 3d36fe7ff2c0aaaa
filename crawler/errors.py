"""One exception tree. Everything the crawler raises on purpose is a `CrawlError`."""

from __future__ import annotations

import enum


class FailureKind(enum.StrEnum):
    """What made a request fail for good: stored in a column of its own, so the failures
    can be grouped and filtered without parsing messages."""

    FETCH = "fetch"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    BAD_RESPONSE = "bad_response"
    TOO_LARGE = "too_large"
    OFFSITE = "offsite"
    PRIVATE_ADDRESS = "private_address"
    REDIRECTS = "redirects"
    HTTP_STATUS = "http_status"
    ROBOTS = "robots"  # robots.txt could not be had, and the crawl gave up on the origin
    CALLBACK = "callback"  # the spider's callback raised
    PIPELINE = "pipeline"  # one of the spider's item pipelines raised (not DropItem)
    SPIDER = "spider"  # the spider has no such callback
    INTERNAL = "internal"  # a bug of ours, confined to one request
    STORE = "store"  # the store could not encode the outcome (the store names it so)


class CrawlError(Exception):
    """Root of every error the crawler raises on purpose."""


class ConfigError(CrawlError):
    """A setting is out of range or contradicts another one."""


class SpiderError(CrawlError):
    """A spider cannot be loaded, or it made an invalid request or item."""


class DropItem(CrawlError):
    """Raised by an item pipeline's `process(item)` to leave the item out. Not a failure:
    the item is not stored and is counted under its reason (`DropItem("no price")`), which
    `crawl stats` shows. Give a reason that names a kind of item, not one item, since each
    distinct reason is a counter of its own."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        # DropItem(404) or DropItem(exc) is a reason too; counted under its text
        self.reason = reason if isinstance(reason, str) else str(reason)


class StateFileError(CrawlError):
    """A state file was refused (foreign, damaged, newer schema, other spider, in use).
    The file is always left untouched."""


class StateWriteError(CrawlError):
    """The state file failed while the crawl was using it: a full disk, an I/O error, a
    value it cannot hold. The crawl stops; the file can be resumed once the cause is gone."""


class FeedError(CrawlError):
    """A feed (`-o FILE`) could not be written: a full disk, a folder gone. The crawl
    stops; run it again to resume it, feed included."""


class FetchError(CrawlError):
    """A request could not be fetched. `retryable` says whether trying again may help."""

    retryable: bool = False
    kind: FailureKind = FailureKind.FETCH

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class ConnectError(FetchError):
    """No connection could be made (refused, reset before a response, DNS failure)."""

    retryable = True
    kind = FailureKind.CONNECT


class TLSError(FetchError):
    """The TLS handshake failed (e.g. a bad certificate): retrying will not fix it."""

    kind = FailureKind.TLS


class FetchTimeout(FetchError):
    """The server did not answer, or not fast enough."""

    retryable = True
    kind = FailureKind.TIMEOUT


class ProtocolError(FetchError):
    """The connection broke mid-response or the server spoke broken HTTP."""

    retryable = True
    kind = FailureKind.PROTOCOL


class BadResponse(FetchError):
    """The response can never be used as it is (e.g. oversized headers); retrying won't help."""

    kind = FailureKind.BAD_RESPONSE


class BodyTooLarge(FetchError):
    """The body exceeds the size cap (declared or actually read, after decompression)."""

    kind = FailureKind.TOO_LARGE


class OutOfScope(FetchError):
    """Not sent: the URL is outside the crawl's hosts and ports (e.g. an old state file's)."""

    kind = FailureKind.OFFSITE


class PrivateAddress(FetchError):
    """Not sent: the host's address is in a private network, and the crawl's start URLs are
    public (`allow_private` allows it)."""

    kind = FailureKind.PRIVATE_ADDRESS


class TooManyRedirects(FetchError):
    """A redirect chain is longer than the hop limit."""

    kind = FailureKind.REDIRECTS


class HTTPStatusError(FetchError):
    """The server answered with a status worth retrying (429, 5xx) too many times."""

    kind = FailureKind.HTTP_STATUS

    def __init__(self, status: int, *, url: str | None = None) -> None:
        super().__init__(f"HTTP {status}", url=url)
        self.status = status

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in RETRYABLE_STATUSES


RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 522, 524})


def describe(exc: BaseException) -> str:
    """`kind: message`, the form an error is logged in."""
    return f"{exc.kind}: {message(exc)}" if isinstance(exc, FetchError) else message(exc)


# An exception's message can quote a whole page (ValueError(f"bad price {text!r}")): it is
# stored with each failure, logged and shown by `crawl stats`, so it is cut at this length.
MESSAGE_CHARS = 2000


def message(exc: BaseException) -> str:
    """What went wrong, without the kind (stored beside it): a fetch error's own message,
    or any other exception's type and message."""
    text = str(exc) if isinstance(exc, FetchError) else f"{type(exc).__name__}: {exc}"
    if len(text) > MESSAGE_CHARS:
        text = f"{text[:MESSAGE_CHARS]}… ({len(text) - MESSAGE_CHARS:,} more characters)"
    return safe_text(text)


def safe_text(text: str) -> str:
    """Text as the state file may hold it. A lone surrogate (a callback's exception may
    quote a page's broken text) is written as an escape: it is not Unicode text."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")
