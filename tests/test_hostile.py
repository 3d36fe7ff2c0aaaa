"""Hostile servers: every trap ends in the outcome the README's failure table promises, and the
rest of the crawl (the other pages of the same site) is neither lost nor stored twice.

Servers are aiohttp.web apps on 127.0.0.1, or a raw `asyncio.start_server` on 127.0.0.1 where
aiohttp.web cannot misbehave the way a trap needs (a reset mid-body, a silent keep-alive close).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import sys
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
from aiohttp import web

from crawler import CrawlConfig, CrawlStatus
from spiders.site import SiteSpider
from storage import RequestState
from tests.crawling import Outcome, crawl, read_items, read_rows
from tests.sites.serve import check_loopback, serve

DONE, FAILED = RequestState.DONE, RequestState.FAILED
ROOT = Path(__file__).resolve().parent.parent
#: No crawl here may take longer than this: a trap that hangs the crawler fails the test.
CRAWL_LIMIT = 60.0


def _config(**overrides: object) -> CrawlConfig:
    settings: dict[str, object] = {
        "delay": 0.0, "retry_backoff": 0.01, "max_retries": 1, "per_host": 4, "workers": 8,
        "timeout": 5.0, "obey_robots": False,
    }
    settings.update(overrides)
    return CrawlConfig(**settings)  # type: ignore[arg-type]


async def _crawl(base: str, path: Path, config: CrawlConfig) -> Outcome:
    return await asyncio.wait_for(crawl(SiteSpider([base + "/"]), path, config), CRAWL_LIMIT)


def _page(title: str, links: Iterable[str] = ()) -> bytes:
    anchors = "".join(f'<a href="{href}">{href}</a>' for href in links)
    return f"<html><head><title>{title}</title></head><body>{anchors}</body></html>".encode()


def _html(body: bytes, **kwargs: object) -> web.Response:
    return web.Response(body=body, content_type="text/html", **kwargs)  # type: ignore[arg-type]


def _assert_good_pages(out: Outcome, base: str, titles: dict[str, str]) -> None:
    """Each good page is done (200) with exactly one item carrying its title."""
    items = Counter(i["url"] for i in out.items)
    got = {i["url"]: i["title"] for i in out.items}
    for path, title in titles.items():
        url = base + path
        assert out.rows[url][:2] == (DONE, 200), (path, out.rows[url])
        assert items[url] == 1, f"{path} stored {items[url]} times"
        assert got[url] == title


def _assert_only(out: Outcome, base: str, paths: Iterable[str]) -> None:
    """The crawl finished, saw exactly these URLs, and stored no item twice."""
    assert out.result.status is CrawlStatus.FINISHED
    assert set(out.rows) == {base + p for p in paths}
    urls = [i["url"] for i in out.items]
    assert len(urls) == len(set(urls)), "an item was stored twice"


# -- a raw HTTP/1.1 server, for traps aiohttp.web will not set -------------------------------

RawHandler = Callable[[str, asyncio.StreamWriter], Awaitable[bool]]


def _raw(body: bytes, *, status: str = "200 OK", headers: dict[str, str] | None = None) -> bytes:
    fields = {"Content-Type": "text/html", "Content-Length": str(len(body)), **(headers or {})}
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n").encode("latin-1") + body


@asynccontextmanager
async def raw_serve(handler: RawHandler, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Keep-alive GET server; `handler(path, writer)` answers and says whether to go on."""
    check_loopback(host)
    tasks: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode("latin-1")
                if not await handler(path, writer):
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down; a cancelled callback task would be logged by asyncio.streams
        finally:
            writer.close()
            tasks.discard(task)  # type: ignore[arg-type]

    server = await asyncio.start_server(connection, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# -- 1. the connection is reset mid-body -------------------------------------------------------


async def test_connection_reset_mid_body_is_a_protocol_failure(tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    good = ["/good/1", "/good/2", "/good/3"]

    async def handle(path: str, writer: asyncio.StreamWriter) -> bool:
        hits[path] += 1
        if path == "/":
            writer.write(_raw(_page("root", ["/reset", *good])))
        elif path == "/reset":
            # Promises 100 kB, sends 1 kB of it, then RST (abort, not a clean FIN).
            head = _raw(b"", headers={"Content-Length": "100000"})
            writer.write(head + b"<html><title>reset</title>" + b"x" * 1000)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.transport.abort()
            return False
        else:
            writer.write(_raw(_page(path)))
        await writer.drain()
        return True

    async with raw_serve(handle) as base:
        # One request at a time: the good pages come after the reset, on the same host.
        out = await _crawl(base, tmp_path / "reset.db", _config(per_host=1))
    _assert_only(out, base, ["/", "/reset", *good])
    state, status, error, attempts = out.rows[base + "/reset"]
    assert (state, status, attempts) == (FAILED, None, 2), out.rows[base + "/reset"]
    assert error is not None and error.startswith("protocol:"), error
    assert hits["/reset"] == 2, "retried once (max_retries=1), then given up"
    _assert_good_pages(out, base, {"/": "root", **{p: p for p in good}})
    assert out.result.counts.failed == 1


# -- 1b. bytes beyond a response's end poison the pooled connection ---------------------------


@pytest.mark.parametrize("trap", ["longer-than-content-length", "body-on-204"])
async def test_bytes_beyond_a_response_do_not_fail_the_next_page(tmp_path: Path,
                                                                  trap: str) -> None:
    """A server sends more than the response it framed: surplus bytes after Content-Length,
    or a body after a 204. They arrive once the response is complete, so the keep-alive
    connection is back in the pool: the next page fetched on it must not pay for them."""
    hits: Counter[str] = Counter()
    good = ["/a", "/b", "/c"]

    async def handle(path: str, writer: asyncio.StreamWriter) -> bool:
        hits[path] += 1
        if path == "/":
            writer.write(_raw(_page("root", ["/sloppy", *good])))
        elif path == "/sloppy":
            body = _page("sloppy")
            if trap == "body-on-204":
                head, surplus = b"HTTP/1.1 204 No Content\r\n\r\n", body
            else:
                head = _raw(body[:-20], headers={"Content-Length": str(len(body) - 20)})
                surplus = body[-20:]
            writer.write(head)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(surplus)
        else:
            writer.write(_raw(_page(path)))
        await writer.drain()
        return True

    # One connection, reused: the page after /sloppy goes out on the very same socket.
    async with raw_serve(handle) as base:
        out = await _crawl(base, tmp_path / "surplus.db", _config(per_host=1, workers=1))
    _assert_only(out, base, ["/", "/sloppy", *good])
    # The sloppy page itself was complete when its framing said so.
    assert out.rows[base + "/sloppy"][:2] == (DONE, 204 if trap == "body-on-204" else 200)
    _assert_good_pages(out, base, {"/": "root", **{p: p for p in good}})
    assert out.result.counts.failed == 0, {
        u.removeprefix(base): r[2] for u, r in out.rows.items() if r[0] == FAILED}


# -- 2. keep-alive connections closed at random ------------------------------------------------


async def test_keepalive_connections_closed_by_the_server_lose_nothing(tmp_path: Path) -> None:
    served: Counter[str] = Counter()  # complete responses sent, by path
    dropped: Counter[str] = Counter()  # requests read, then hung up on without an answer
    closes: Counter[str] = Counter()
    doomed: set[asyncio.StreamWriter] = set()  # connections whose next request is dropped
    answered = 0

    def links(i: int) -> list[str]:
        if i == 0:
            return [f"/p/{n}" for n in range(1, 11)]
        return [f"/p/{n}" for n in (i + 10, (2 * i) % 50, (i * 7) % 50) if 0 < n < 50]

    async def handle(path: str, writer: asyncio.StreamWriter) -> bool:
        nonlocal answered
        if writer in doomed:
            # The idle-close race: the server closes a keep-alive connection just as the
            # client reuses it, so the request dies unanswered on a pooled socket.
            doomed.discard(writer)
            dropped[path] += 1
            return False
        i = 0 if path == "/" else int(path.rsplit("/", 1)[1])
        answered += 1
        nth = answered
        announced = nth % 3 == 0
        headers = {"Connection": "close"} if announced else {}
        writer.write(_raw(_page(f"page {i}", links(i)), headers=headers))
        await writer.drain()
        served[path] += 1
        if announced:  # says so, then closes
            closes["announced"] += 1
            return False
        if nth % 5 == 0:  # keep-alive promised, then hangs up at once: a stale pooled socket
            closes["silent"] += 1
            return False
        if nth % 7 == 0:  # keep-alive promised; the next request on it is never answered
            doomed.add(writer)
        return True

    # A request lost on a dying socket is retried (protocol:); three retries are plenty.
    config = _config(per_host=4, max_retries=3)
    async with raw_serve(handle) as base:
        out = await _crawl(base, tmp_path / "keepalive.db", config)
    paths = ["/", *(f"/p/{n}" for n in range(1, 50))]
    _assert_only(out, base, paths)
    assert len(out.items) == 50
    _assert_good_pages(out, base, {p: f"page {0 if p == '/' else p.rsplit('/', 1)[1]}"
                                   for p in paths})
    assert out.result.counts.failed == 0
    # Every page was answered in full exactly once: nothing was fetched twice.
    assert served == Counter(paths)
    assert closes["announced"] and closes["silent"] and dropped, (closes, dropped)
    # Only dropped requests were tried again (aiohttp itself resends an idempotent request
    # that dies on a reused connection, so the crawler may never see a failed attempt).
    retried = {url.removeprefix(base): row[3] for url, row in out.rows.items() if row[3]}
    assert all(n <= dropped[path] for path, n in retried.items()), (retried, dropped)


# -- 3. pages that drip, and one that stalls ---------------------------------------------------


async def test_dripping_or_stalled_pages_time_out_and_the_rest_is_crawled(tmp_path: Path) -> None:
    hits: Counter[str] = Counter()
    good = ["/p/1", "/p/2", "/p/3"]
    slow = ["/drip-body", "/drip-headers", "/stall"]

    async def handle(path: str, writer: asyncio.StreamWriter) -> bool:
        hits[path] += 1
        if path == "/":
            writer.write(_raw(_page("root", [*slow, *good])))
        elif path in slow:
            # Two and a half minutes of a byte every 0.25 s (never idle long enough for a
            # read timeout), in the body or in the headers; or the start of a body, then
            # silence.
            if path == "/drip-headers":
                writer.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            else:
                writer.write(_raw(b"<html><title>slow</title>",
                                  headers={"Content-Length": "100000"})[:-1])
            await writer.drain()
            for _ in range(600):
                if path != "/stall":
                    writer.write(b"x")
                    await writer.drain()
                await asyncio.sleep(0.25)
            return False
        else:
            writer.write(_raw(_page(path)))
        await writer.drain()
        return True

    # The drips are only stopped by the whole-request timeout, the stall by the read timeout.
    config = _config(timeout=1.0, read_timeout=0.6)
    started = time.monotonic()
    async with raw_serve(handle) as base:
        out = await _crawl(base, tmp_path / "slow.db", config)
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"the crawl took {elapsed:.1f}s against endless drips"
    _assert_only(out, base, ["/", *slow, *good])
    for path in slow:
        state, status, error, attempts = out.rows[base + path]
        assert (state, status, attempts) == (FAILED, None, 2), (path, out.rows[base + path])
        assert error is not None and error.startswith("timeout:"), (path, error)
        assert hits[path] == 2
    _assert_good_pages(out, base, {"/": "root", **{p: p for p in good}})
    assert out.result.counts.failed == len(slow)


# -- 4. decompression bombs --------------------------------------------------------------------

BOMB_SIZE = 50_000_000
BOMB_CAP = 1_000_000
RSS_LIMIT = 40 * 1024 * 1024


def _compress(encoding: str) -> bytes:
    """BOMB_SIZE bytes (a title, then zeros) compressed, built without holding them all."""
    head = b"<html><head><title>bomb</title></head><body>"
    zero = bytes(1_000_000)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]  # noqa: PLC0415 (only if present)

        compressor = brotli.Compressor()
        parts = [compressor.process(head)]
        parts += [compressor.process(zero) for _ in range(BOMB_SIZE // len(zero))]
        return b"".join([*parts, compressor.finish()])
    wbits = {"gzip": 31, "deflate": 15}[encoding]
    zobj = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [zobj.compress(head)] + [zobj.compress(zero) for _ in range(BOMB_SIZE // len(zero))]
    return b"".join([*parts, zobj.flush()])


def _encodings() -> list[str]:
    # gzip and deflate always; br only when brotli (or brotlicffi) is importable, since aiohttp
    # can only decode br then. Nothing is installed for this test and nothing is skipped.
    found = ["gzip", "deflate"]
    for module in ("brotli", "brotlicffi"):
        with contextlib.suppress(ImportError):
            __import__(module)
            found.append("br")
            break
    return found


# The crawl runs in a child process: ru_maxrss is a high-water mark, and earlier tests in this
# process may already have pushed it far above what a bomb would add, which would make the
# check vacuous. A fresh process measures the crawl alone.
_CHILD = """
import asyncio, json, resource, sys
from pathlib import Path
from crawler import CrawlConfig
from spiders.site import SiteSpider
from tests.crawling import crawl

async def main(base, db, cap):
    config = CrawlConfig(delay=0, max_retries=1, retry_backoff=0.01, max_body=cap,
                         timeout=10, obey_robots=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await crawl(SiteSpider([base + "/"]), Path(db), config)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before": before, "after": after}))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


@pytest.mark.parametrize("encoding", _encodings())
async def test_a_decompression_bomb_is_too_large_and_memory_stays_bounded(
        tmp_path: Path, encoding: str) -> None:
    bomb = _compress(encoding)
    assert len(bomb) < BOMB_CAP, "the compressed body itself is under the cap"
    hits: Counter[str] = Counter()
    good = ["/p/1", "/p/2"]

    async def handle(request: web.Request) -> web.Response:
        hits[request.path] += 1
        if request.path == "/":
            return _html(_page("root", ["/bomb", *good]))
        if request.path == "/bomb":
            return web.Response(body=bomb, headers={"Content-Type": "text/html",
                                                    "Content-Encoding": encoding})
        return _html(_page(request.path))

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    db = tmp_path / "bomb.db"
    async with serve(app) as base:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, base, str(db), str(BOMB_CAP), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(child.communicate(), CRAWL_LIMIT)
    assert child.returncode == 0, stderr.decode()
    rss = json.loads(stdout.decode().strip().splitlines()[-1])
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    growth = (rss["after"] - rss["before"]) * unit
    assert growth < RSS_LIMIT, f"peak RSS grew by {growth / 2**20:.0f} MiB on a {encoding} bomb"

    rows = read_rows(db)
    assert set(rows) == {base + p for p in ["/", "/bomb", *good]}
    state, _, error, attempts = rows[base + "/bomb"]
    assert (state, attempts) == (FAILED, 1), rows[base + "/bomb"]
    assert error is not None and error.startswith("too_large:"), error
    assert hits["/bomb"] == 1, "a body over the cap is not fetched again"
    items = {i["url"]: i["title"] for i in read_items(db)}
    assert items == {base + "/": "root", **{base + p: p for p in good}}


# -- 5. bodies over the cap, declared or not ---------------------------------------------------


async def test_bodies_over_the_cap_are_too_large_with_or_without_a_length(tmp_path: Path) -> None:
    cap = 100_000
    hits: Counter[str] = Counter()
    written: Counter[str] = Counter()
    exact = b"<title>exact</title>"
    exact += b"." * (cap - len(exact))  # exactly at the cap: allowed

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        hits[path] += 1
        if path == "/":
            return _html(_page("root", ["/declared", "/chunked", "/exact-length",
                                        "/exact-chunked", "/p/1"]))
        if path == "/exact-length":
            return _html(exact)
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        if path == "/declared":
            # Declares 1 GB and sends almost none of it: a client that reads instead of
            # refusing at the header would hang here until its timeout.
            resp.content_length = 10**9
            await resp.prepare(request)
            await resp.write(b"<title>declared</title>")
            await asyncio.sleep(600)
        elif path == "/chunked":
            resp.enable_chunked_encoding()  # no length, and it never ends
            await resp.prepare(request)
            with contextlib.suppress(ConnectionError):
                while written[path] < 2**30:
                    await resp.write(b"<p>" + b"y" * 65_533)
                    written[path] += 65_536
        elif path == "/exact-chunked":
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for start in range(0, cap, 10_000):
                await resp.write(exact[start:start + 10_000])
        else:
            return _html(_page(path))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    config = _config(max_body=cap, timeout=3.0, read_timeout=2.0)
    async with serve(app, shutdown_timeout=0.1) as base:
        out = await _crawl(base, tmp_path / "cap.db", config)
    _assert_only(out, base, ["/", "/declared", "/chunked", "/exact-length", "/exact-chunked",
                             "/p/1"])
    for path in ("/declared", "/chunked"):
        state, status, error, attempts = out.rows[base + path]
        assert (state, status, attempts) == (FAILED, None, 1), (path, out.rows[base + path])
        assert error is not None and error.startswith("too_large:"), (path, error)
        assert hits[path] == 1
    assert written["/chunked"] < 2**30, "the endless chunked body was read to its end"
    _assert_good_pages(out, base, {"/": "root", "/exact-length": "exact",
                                   "/exact-chunked": "exact", "/p/1": "/p/1"})
    assert out.result.counts.failed == 2


# -- 6. wrong, missing and conflicting character sets ------------------------------------------

# path -> (Content-Type, body, the title the README's rules give:
#          BOM, then the Content-Type charset, then <meta charset>, then UTF-8; bad bytes U+FFFD)
HOME = b'<a href="/">home</a>'
CHARSET_PAGES: dict[str, tuple[str, bytes, str]] = {
    # No charset anywhere: read as UTF-8, the latin-1 bytes become U+FFFD.
    "/latin1-bare": ("text/html", b"<title>Caf\xe9 cr\xe8me</title>" + HOME,
                     "Caf\ufffd cr\ufffdme"),
    # <meta> says latin-1, the header says UTF-8: the header wins.
    "/meta-vs-header": ("text/html; charset=utf-8",
                        b'<meta charset="iso-8859-1"><title>Caf\xe9 na\xc3\xafve</title>' + HOME,
                        "Caf\ufffd na\u00efve"),
    # Only <meta>: it is obeyed (latin-1 labels mean windows-1252), also as http-equiv.
    "/meta-only": ("text/html",
                   b'<meta charset="iso-8859-1"><title>Caf\xe9 \x80</title>' + HOME,
                   "Caf\u00e9 \u20ac"),
    "/meta-http-equiv": ("text/html",
                         b'<meta http-equiv="Content-Type" content="text/html; '
                         b'charset=iso-8859-1"><title>Caf\xe9</title>' + HOME,
                         "Caf\u00e9"),
    # Invalid UTF-8 under a UTF-8 header.
    "/invalid-utf8": ("text/html; charset=utf-8",
                      b"<title>ok \xff\xfe bad \xc3( end \xed\xa0\x80</title>" + HOME,
                      "ok \ufffd\ufffd bad \ufffd( end \ufffd\ufffd\ufffd"),
    # A UTF-8 BOM under a header that says latin-1: the BOM wins.
    "/bom-vs-header": ("text/html; charset=iso-8859-1",
                       b"\xef\xbb\xbf<title>na\xc3\xafve \xe2\x80\x94 ok</title>" + HOME,
                       "na\u00efve \u2014 ok"),
    # A UTF-16 BOM under a header that says UTF-8: the BOM wins.
    "/utf16-bom-vs-header": ("text/html; charset=utf-8",
                             b"\xff\xfe" + ("<title>wide \u00e9</title>"
                                             '<a href="/">home</a>').encode("utf-16-le"),
                             "wide \u00e9"),
    # An unknown label in the header is ignored: <meta> then applies.
    "/bogus-label": ("text/html; charset=x-no-such-charset",
                     b'<meta charset="windows-1252"><title>\x93quoted\x94</title>' + HOME,
                     "\u201cquoted\u201d"),
}


async def test_wrong_and_missing_charsets_decode_by_the_rules(tmp_path: Path) -> None:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/":
            return _html(_page("root", CHARSET_PAGES))
        content_type, body, _ = CHARSET_PAGES[request.path]
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with serve(app) as base:
        out = await _crawl(base, tmp_path / "charsets.db", _config())
    _assert_only(out, base, ["/", *CHARSET_PAGES])
    assert out.result.counts.failed == 0
    _assert_good_pages(out, base, {"/": "root",
                                   **{p: title for p, (_, _, title) in CHARSET_PAGES.items()}})
    assert all(i["links"] == 1 for i in out.items if i["url"] != base + "/")


# -- 7. binary junk, one huge line, deep nesting -----------------------------------------------


async def test_binary_junk_huge_lines_and_deep_nesting_are_parsed(tmp_path: Path) -> None:
    junk = random.Random(7).randbytes(200_000)
    assert not junk.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))
    targets = [f"/t/{n}" for n in range(50)]
    anchors = 20_000
    parts = [b"<html><head><title>huge</title></head><body>"]
    parts += [f'<a href="{targets[n % 50]}">{n}</a><span>{"z" * 470}</span>'.encode()
              for n in range(anchors)]
    huge = b"".join([*parts, b"</body></html>"])
    assert len(huge) > 10_000_000 and b"\n" not in huge
    depth = 50_000
    deep = (b"<html><head><title>deep</title></head><body>" + b"<div>" * depth
            + b'<a href="/deep-target">down here</a>' + b"</div>" * depth + b"</body></html>")

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if path == "/":
            return _html(_page("root", ["/junk", "/huge", "/deep"]))
        if path == "/junk":
            return web.Response(body=junk, headers={"Content-Type": "text/html"})
        if path == "/huge":
            return _html(huge)
        if path == "/deep":
            return _html(deep)
        return _html(_page(path))

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    config = _config(max_body=20_000_000, timeout=20.0)
    async with serve(app) as base:
        out = await _crawl(base, tmp_path / "odd.db", config)
    _assert_only(out, base, ["/", "/junk", "/huge", "/deep", "/deep-target", *targets])
    assert out.result.counts.failed == 0
    _assert_good_pages(out, base, {"/": "root", "/junk": "", "/huge": "huge", "/deep": "deep",
                                   "/deep-target": "/deep-target", **{t: t for t in targets}})
    links = {i["url"]: i["links"] for i in out.items}
    assert links[base + "/junk"] == 0
    assert links[base + "/huge"] == anchors
    assert links[base + "/deep"] == 1


# -- 8. 429 with Retry-After as an HTTP date ---------------------------------------------------


async def test_429_with_an_http_date_is_retried_no_sooner_than_asked(tmp_path: Path) -> None:
    arrivals: dict[str, list[float]] = {}
    retry_at: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        arrivals.setdefault(path, []).append(time.time())
        if path == "/":
            return _html(_page("root", ["/limited", "/p/1"]))
        if path == "/limited" and len(arrivals[path]) == 1:
            when = math.ceil(time.time()) + 2  # a whole second: HTTP dates have no fraction
            retry_at.append(when)
            date = formatdate(when, usegmt=True)
            assert parsedate_to_datetime(date).timestamp() == when
            return web.Response(status=429, headers={"Retry-After": date})
        return _html(_page(path))

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with serve(app) as base:
        out = await _crawl(base, tmp_path / "429.db", _config())
    _assert_only(out, base, ["/", "/limited", "/p/1"])
    assert len(arrivals["/limited"]) == 2
    early = retry_at[0] - arrivals["/limited"][1]
    assert early <= 0.05, f"retried {early:.2f}s before the Retry-After date"
    state, status, _, attempts = out.rows[base + "/limited"]
    assert (state, status, attempts) == (DONE, 200, 1)
    _assert_good_pages(out, base, {"/": "root", "/limited": "/limited", "/p/1": "/p/1"})
    assert out.result.counts.failed == 0


# -- 9. a burst of 503s ------------------------------------------------------------------------


async def test_a_503_burst_then_recovery_loses_nothing(tmp_path: Path) -> None:
    pages = [f"/p/{n}" for n in range(1, 13)]
    hits: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    burst = 5
    seen = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal seen
        path = request.path
        hits[path] += 1
        seen += 1
        if path == "/":
            return _html(_page("root", pages))
        if 1 < seen <= 1 + burst:  # the five requests after the start page, in a row
            refused[path] += 1
            return web.Response(status=503, text="busy")
        return _html(_page(path))

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    # Enough retries even if every refused request were one page's.
    config = _config(per_host=8, workers=8, max_retries=burst)
    async with serve(app) as base:
        out = await _crawl(base, tmp_path / "503.db", config)
    _assert_only(out, base, ["/", *pages])
    assert sum(refused.values()) == burst
    assert out.result.counts.failed == 0
    _assert_good_pages(out, base, {"/": "root", **{p: p for p in pages}})
    for path in pages:
        # Retried exactly as often as refused; each page answered 200 once.
        assert out.rows[base + path][3] == refused[path], (path, out.rows[base + path])
        assert hits[path] == refused[path] + 1


async def test_a_pathological_page_does_not_stall_the_other_requests(tmp_path: Path) -> None:
    deep = b"<html><body>" + b"<div>" * 40_000 + b"<a href='/x'>x</a>" + b"</div>" * 40_000

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/":
            return web.Response(body=deep, content_type="text/html")
        return web.Response(text="<title>x</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    async with serve(app) as base:
        out = await crawl(SiteSpider([base + "/"]), tmp_path / "deep.db",
                          CrawlConfig(delay=0, obey_robots=False))
    done.set()
    await beat
    assert {i["url"] for i in out.items} == {base + "/", base + "/x"}
    # Parsing the page takes seconds, but in a thread: the event loop keeps its beat.
    assert max(gaps) < 1.0, f"the event loop stalled for {max(gaps):.1f}s"
