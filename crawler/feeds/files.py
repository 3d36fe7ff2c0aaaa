"""A feed written to a file as items are committed, each exactly once across kill -9 and
resume.

The store keeps the feed's mark (`storage.FeedMark`): the last item written, the length of
the file's head and rows, their CRC-32 and the encoder's state. The file is written first,
the mark is kept after, and the mark is committed with the store's next commit. So on
resume the file holds at least what its mark says: anything beyond (a write the kill cut
off, or whose mark it did not commit) is cut off and written again from the state file. A
file that holds less, or other bytes, than its mark (deleted, truncated, edited) is
written anew from the state file, and the crawl says which and why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import logging
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

from crawler.errors import ConfigError, FeedError
from crawler.feeds.formats import encoder
from crawler.feeds.reading import BATCH, write_body
from crawler.observe import logs
from storage import FeedMark, Store

log = logging.getLogger("crawler")
status_log = logging.getLogger(logs.STATUS)

_CHUNK = 1 << 20  # bytes read at a time to check a file against its mark


class FileFeed:
    """One `-o FILE`. `open()` before the crawl, `catch_up()` after commits, `close()`."""

    def __init__(self, store: Store, path: str, fmt: str) -> None:
        self._store = store
        self.path = Path(os.path.abspath(path))
        self._encoder = encoder(fmt)
        self._mark = FeedMark(str(self.path), fmt, 0, 0, 0, self._encoder.state)
        self._fd: int | None = None

    async def open(self, marks: Mapping[str, FeedMark]) -> None:
        """Go on from the mark if the file still holds what it says, else write anew."""
        mark = marks.get(self._mark.name)
        if mark is None or mark.format != self._mark.format:
            self._fd = self._claimed(self.path, os.O_WRONLY | os.O_CREAT)
            await self._rebuild()  # a new feed: whatever was at that path is written over
            return
        why = await asyncio.to_thread(_mismatch, self.path, mark)
        self._fd = self._claimed(self.path, os.O_WRONLY | os.O_CREAT)
        if why is not None:
            status_log.warning("output %s %s: writing it anew from the state file",
                               self.path, why, extra={"event": "feed_rebuilt",
                                                      "file": str(self.path)})
            await self._rebuild()
            return
        self._encoder.restore(mark.extra)
        self._mark = mark
        extra = os.fstat(self._fd).st_size - mark.length - len(self._tail())
        if extra > 0:
            log.info("output %s: cut off %d bytes written after its last committed item",
                     self.path, extra)
        self._write(b"", mark)  # the tail again, where the mark says the rows end

    async def catch_up(self) -> None:
        """Write the items committed since the mark; keep the new mark for the next commit."""
        start = self._mark
        while batch := await self._store.items_after(self._mark.item, BATCH):
            texts = [text for _, text in batch]
            if self._encoder.widen(texts):  # a new CSV column: the header changes
                await self._rebuild(upto=batch[-1][0])
                # Its mark at once: a kill before it commits would find a file unlike its
                # mark, and write it anew again, saying it was changed.
                await self._store.flush()
                start = self._mark
                continue
            rows = self._encoder.rows(texts, self._mark.item == 0).encode()
            self._write(rows, dataclasses.replace(
                self._mark, item=batch[-1][0], length=self._mark.length + len(rows),
                checksum=zlib.crc32(rows, self._mark.checksum)))
        if self._mark != start:
            self._store.keep_feed_mark(self._mark)

    async def finish(self) -> None:
        """Called once the run's last commit is made."""
        await self.catch_up()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _tail(self) -> bytes:
        return self._encoder.tail(self._mark.item == 0).encode()

    def _write(self, rows: bytes, mark: FeedMark) -> None:
        """Write `rows` and the tail where the mark's rows end, and take the new mark."""
        assert self._fd is not None
        old = self._mark
        self._mark = mark
        data = rows + self._tail()
        try:
            os.pwrite(self._fd, data, old.length)
            os.ftruncate(self._fd, old.length + len(data))  # anything after is cut off
        except OSError as exc:
            self._mark = old
            raise FeedError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    async def _rebuild(self, upto: int | None = None) -> None:
        """Write the file anew from the state file (items up to `upto`, or all): aside, then
        renamed into place, so a kill meanwhile leaves the file as it was."""
        tmp = self.path.with_name(f".{self.path.name}.partial")
        fd = self._claimed(tmp, os.O_WRONLY | os.O_CREAT)
        os.ftruncate(fd, 0)  # only once it is ours (`crawl export -o` writes aside there too)
        if upto is None:
            self._encoder = encoder(self._mark.format)
        crc, length = 0, 0

        def write(text: str) -> None:
            nonlocal crc, length
            data = text.encode()
            os.write(fd, data)
            crc, length = zlib.crc32(data, crc), length + len(data)

        try:
            _, last = await write_body(self._store, self._encoder, write, upto)
            mark = FeedMark(self._mark.name, self._mark.format, last, length, crc,
                            self._encoder.state)
            os.write(fd, self._encoder.tail(last == 0).encode())
            os.replace(tmp, self.path)
        except BaseException as exc:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            # The file and its mark are as they were: so is the encoder (CSV's columns).
            self._encoder = encoder(self._mark.format)
            self._encoder.restore(self._mark.extra)
            if isinstance(exc, OSError):
                raise FeedError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            raise
        self.close()
        self._fd, self._mark = fd, mark
        self._store.keep_feed_mark(mark)

    def _claimed(self, path: Path, flags: int) -> int:
        """`path` opened and locked: two crawls must not write one feed (the lock dies with
        its process, as the state file's does)."""
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as exc:
            raise FeedError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"output {self.path} is being written by another process (a "
                              "crawl or an export); give this crawl another file") from None
        return fd


def _mismatch(path: Path, mark: FeedMark) -> str | None:
    """Why the file does not hold what its mark says was written to it; None if it does."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing"
    if size < mark.length:
        return f"is shorter ({size:,} bytes) than what was written to it ({mark.length:,})"
    crc, left = 0, mark.length
    with path.open("rb") as fh:
        while left > 0:
            chunk = fh.read(min(left, _CHUNK))
            if not chunk:
                break
            crc, left = zlib.crc32(chunk, crc), left - len(chunk)
    if left or crc != mark.checksum:
        return "was changed since it was written"
    return None
