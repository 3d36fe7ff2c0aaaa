"""`--send-log FILE`: a line appended as each request goes out (CLOCK_MONOTONIC seconds, the
host's frontier key, the process id), for checking politeness from the crawler's side: a
site's own log stamps a request when the site gets to it, late by as much as it queued, so
on a busy machine its gaps look shorter than the crawler made them. Crawl processes may
share one file (each line is one O_APPEND write, whole among processes); the monotonic
clock is the machine's, so their lines compare with each other and with a local site's.
bench/processes.py reads it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Protocol

from crawler.errors import ConfigError


class Observed(Protocol):
    """What tells of sends (crawler.policy.frontier.Frontier)."""

    on_sent: Callable[[str, float], None] | None


class SendLog:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pid = os.getpid()

    def sent(self, key: str, at: float) -> None:
        os.write(self._fd, f"{at:.6f}\t{key}\t{self._pid}\n".encode())

    @classmethod
    @contextlib.contextmanager
    def kept(cls, path: str | None, frontier: Observed) -> Iterator[None]:
        """While the block runs, every send the frontier is told of goes to `path`."""
        if path is None:
            yield
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"--send-log {path}: {exc.strerror}") from None
        frontier.on_sent = cls(fd).sent
        try:
            yield
        finally:
            frontier.on_sent = None
            os.close(fd)
