"""One exception tree. Everything the crawler raises on purpose is a `CrawlError`."""

from __future__ import annotations


class CrawlError(Exception):
    """Root of every error the crawler raises on purpose."""


class ConfigError(CrawlError):
    """A setting is out of range or contradicts another one."""


class SpiderError(CrawlError):
    """A spider cannot be loaded, or it made an invalid request or item."""


class StateFileError(CrawlError):
    """A state file was refused (foreign, damaged, newer schema, other spider, in use).
    The file is always left untouched."""


class FetchError(CrawlError):
    """A request could not be fetched. `retryable` says whether trying again may help."""

    retryable: bool = False
    kind: str = "fetch"

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class ConnectError(FetchError):
    """No connection could be made (refused, reset before a response, DNS failure)."""

    retryable = True
    kind = "connect"


class TLSError(FetchError):
    """The TLS handshake failed (e.g. a bad certificate): retrying will not fix it."""

    kind = "tls"


class FetchTimeout(FetchError):
    """The server did not answer, or not fast enough."""

    retryable = True
    kind = "timeout"


class ProtocolError(FetchError):
    """The connection broke mid-response or the server spoke broken HTTP."""

    retryable = True
    kind = "protocol"


class BadResponse(FetchError):
    """The response can never be used as it is (e.g. oversized headers); retrying won't help."""

    kind = "bad_response"


class BodyTooLarge(FetchError):
    """The body exceeds the size cap (declared or actually read, after decompression)."""

    kind = "too_large"


class OutOfScope(FetchError):
    """Not sent: the URL is outside the crawl's hosts and ports (e.g. an old state file's)."""

    kind = "offsite"


class PrivateAddress(FetchError):
    """Not sent: the host's address is in a private network, and the crawl's start URLs are
    public (`allow_private` allows it)."""

    kind = "private_address"


class TooManyRedirects(FetchError):
    """A redirect chain is longer than the hop limit."""

    kind = "redirects"


class HTTPStatusError(FetchError):
    """The server answered with a status worth retrying (429, 5xx) too many times."""

    kind = "http_status"

    def __init__(self, status: int, *, url: str | None = None) -> None:
        super().__init__(f"HTTP {status}", url=url)
        self.status = status

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in RETRYABLE_STATUSES


RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 522, 524})


def describe(exc: BaseException) -> str:
    """`kind: message`, the form an error is stored in. A lone surrogate in the message (a
    callback's exception may quote a page's broken text) is written as an escape: it is not
    Unicode text, and the state file holds only that."""
    text = f"{exc.kind}: {exc}" if isinstance(exc, FetchError) else f"{type(exc).__name__}: {exc}"
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")
