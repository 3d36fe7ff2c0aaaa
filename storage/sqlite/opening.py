"""Finding out what a file is, and connecting to it, without changing it: a file that is
not a state file (or one this version cannot read) is refused before anything is written."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from storage.base import NotAStateFile, SchemaMismatch, StoreError
from storage.files import (
    StateFileUnavailable,
    check_writable,
    describe,
    disk_full,
    lock,
    open_failure,
    remove,
    unlock,
    writable,
)
from storage.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION, known

SQLITE_MAGIC = b"SQLite format 3\x00"


def inspect(path: Path, uri: str | None = None) -> int | None:
    """Check an existing file without writing to it (through `uri`, a read-only URI for it).
    Returns its schema version, or None when it is new or empty."""
    if not path.exists():
        return None
    # A device (--state /dev/null) reads as empty: refused before SQLite writes beside it.
    if not path.is_file():
        raise NotAStateFile(f"{describe(path)} is not a regular file")
    try:
        if path.stat().st_size == 0:
            return None
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise open_failure(path, exc) from exc
    if header != SQLITE_MAGIC:
        raise NotAStateFile(f"{describe(path)} is not a crawl state file (not an SQLite database)")
    try:
        conn = sqlite3.connect(uri or inspection_uri(path), uri=True)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise refusal(path, exc, "is damaged or not a crawl state file") from exc
    if app_id == 0 and tables == 0:
        return None
    if app_id != APPLICATION_ID:
        raise NotAStateFile(
            f"{describe(path)} is an SQLite database, but not a crawl state file; "
            "it was left untouched"
        )
    if not known(version):
        newer = "a newer" if version > SCHEMA_VERSION else "an older"
        raise SchemaMismatch(
            f"{describe(path)} uses state-file schema {version}, made by {newer} version of the "
            f"crawler; this version reads schema {SCHEMA_VERSION}. The file was left untouched."
        )
    return int(version)


async def open_to_write(path: Path) -> tuple[aiosqlite.Connection, int, int | None, bool]:
    """The state file checked, locked and connected for a crawl: the connection, the lock's
    descriptor, the file's schema version (None: it holds no crawl yet) and whether the
    file existed before."""
    await asyncio.to_thread(check_writable, path)
    existed = await asyncio.to_thread(path.exists)
    # The lock first: it alone says, at once, whether a crawl runs on the file. Reading the
    # file before it could wait on that crawl's SQLite locks, then find its crawl finished.
    lock_fd = lock(path)
    try:
        version = await asyncio.to_thread(inspect, path)
        conn = await connect(path, readonly=False)
    except BaseException:
        if not existed:  # the lock made it: nothing is left behind
            await asyncio.to_thread(remove, path)
        unlock(lock_fd)
        raise
    return conn, lock_fd, version, existed


async def connect(path: Path | str, *, readonly: bool, uri: bool = False,
                  shown: Path | None = None) -> aiosqlite.Connection:
    # A read-only *connection* to a WAL file would leave -wal/-shm files behind that it may
    # not delete. Our own, already validated state file is instead opened normally with
    # writes switched off, so closing it tidies up like any other connection. Only a file
    # we may not write is read through a read-only URI (see ReadSource).
    shown = shown or Path(path)
    try:
        conn = await aiosqlite.connect(str(path), isolation_level=None, uri=uri)
    except sqlite3.Error as exc:
        raise refusal(shown, exc, "cannot be opened") from exc
    try:
        await conn.execute("PRAGMA busy_timeout = 10000")
        if readonly:
            await conn.execute("PRAGMA query_only = ON")
        else:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            # 8 MiB of page cache: more buys no speed (`crawl bench --pages 20000`) and would
            # grow memory with the size of the frontier.
            await conn.execute("PRAGMA cache_size = -8192")
        # Rows are read as plain tuples: a state file's columns never change under us.
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise refusal(shown, exc, "is damaged") from exc
    except BaseException:
        await conn.close()
        raise
    return conn


def refusal(path: Path, exc: sqlite3.Error, damaged: str) -> StoreError:
    """Why SQLite could not open or read `path`: the disk or the permissions if they are to
    blame, else the file (`damaged` says how)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
        return StateFileUnavailable(f"cannot use {describe(path)}: {disk_full(path) or exc}")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return StateFileUnavailable(f"cannot open {describe(path)}: {exc}")
    return NotAStateFile(f"{describe(path)} {damaged}: {exc}")


@dataclass(slots=True)
class ReadSource:
    """How to read a state file for `crawl stats`/`export`, changing nothing.

    A file we may write is opened as usual (`uri` None). One we may not (a read-only file,
    folder or medium) is read through a read-only URI: `immutable` when there is no -wal
    (nothing is writing it), plain `mode=ro` when its -wal and -shm are there to be read. A
    -wal with no -shm beside it, which can't be created, is one SQLite cannot read in place:
    the file and its -wal are copied to a scratch folder, read there, and the copy deleted.
    """

    target: Path
    inspected: Path
    uri: str | None = None
    scratch: Path | None = None

    @classmethod
    def of(cls, path: Path) -> ReadSource:
        if not path.is_file() or writable(path):
            return cls(path, path)
        base = f"{path.resolve().as_uri()}?mode=ro"
        wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
        if not wal.exists():
            return cls(path, path, base + "&immutable=1")
        if shm.exists() and _readable(base):
            return cls(path, path, base)
        scratch = Path(tempfile.mkdtemp(prefix="crawl-read-"))
        try:
            copy = scratch / path.name
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return cls(copy, copy, None, scratch)

    def discard(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def _readable(uri: str) -> bool:
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return True


def inspection_uri(path: Path) -> str:
    """A URI that reads a file we have not validated yet without creating anything beside it.

    With no -wal file, `immutable` reads the main file alone and makes no -wal/-shm files.
    With one, its content matters (a crawl that is running, or was killed before a
    checkpoint), so the file is read as SQLite normally would, in read-only mode.
    """
    # as_uri() percent-encodes '#', '?' and '%', which would otherwise end the path.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    return uri if wal.exists() else uri + "&immutable=1"
