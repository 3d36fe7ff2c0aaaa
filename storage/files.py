"""The state file as a file: may it be written, who holds it, what the disk says when a
write fails. Plain OS calls; nothing here knows SQLite."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from storage.base import Refused, StateLocked

LOW_SPACE = 1 << 20  # a write that fails with less than this free is taken for a full disk
LOCK_TRIES = 5  # a reader's probe holds the lock for microseconds: try again, briefly


class StateFileUnavailable(Refused):
    """The state file can't be reached, read or written: a missing folder, a read-only file
    or folder, no permission, a full disk. Nothing is wrong with the file itself."""


def describe(path: Path) -> str:
    return f"'{path}'"


def why_not_writable(path: Path) -> str:
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "on a read-only file system" if read_only else "no permission to write it"


def check_writable(path: Path) -> None:
    """Refuse, with what is wrong, a state file a crawl could not write: before anything is
    created or locked, so nothing is left behind."""
    folder = path.parent
    if not folder.is_dir():
        raise StateFileUnavailable(
            f"cannot create {describe(path)}: the folder '{folder}' does not exist")
    if path.is_file() and not os.access(path, os.W_OK):
        raise StateFileUnavailable(
            f"{describe(path)} is read-only ({why_not_writable(path)}); a crawl writes its "
            "state file (crawl stats and crawl export can read it as it is)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StateFileUnavailable(
            f"the folder '{folder}' is read-only ({why_not_writable(folder)}); a crawl "
            f"writes {describe(path)} and its journal (-wal, -shm files) beside it")


def writable(path: Path) -> bool:
    """Can this process write the file and create its SQLite side files?"""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def disk_full(path: Path) -> str | None:
    """'the disk is full (N bytes free)' when the disk holding `path` has (almost) no room."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    return f"the disk is full ({free:,} bytes free)" if free < LOW_SPACE else None


def remove(path: Path) -> None:
    """Delete a state file and its journal files (one this process made and never used)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def open_failure(path: Path, exc: OSError) -> StateFileUnavailable:
    """An OSError met reaching the state file, in words."""
    return StateFileUnavailable(f"cannot open {describe(path)}: {exc.strerror or exc}")


# -- the lock a running crawl holds ----------------------------------------------------------


def lock(path: Path) -> int:
    """Hold an exclusive flock on the state file for as long as the descriptor is open."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise open_failure(path, exc) from exc
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if attempt + 1 < LOCK_TRIES:
                time.sleep(0.02)
    os.close(fd)
    raise StateLocked(
        f"another crawl is running on {describe(path)}; stop it first "
        "(or wait for it to finish)"
    )


def unlock(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing the descriptor drops the flock


def held(path: Path) -> bool:
    """Does a live process hold the state file's lock (a crawl is running on it)? Asked
    without waiting: a shared lock taken and dropped at once on a descriptor of our own. A
    process that died, even by kill -9, holds nothing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the shared lock, if we got it
    return False
