"""Logging for the command line: plain text for people, JSON lines for log collectors.

Everything goes through the standard `logging` module. Messages for the person running the
crawl (it started, how far it got, how it ended) come from the `crawler.status` logger,
which speaks at INFO even when `--log-level` is WARNING; `--quiet` silences the progress
lines and the summary (`crawler.status.report`).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
from typing import Any, TextIO

FORMATS = ("text", "json")
STATUS = "crawler.status"
REPORT = "crawler.status.report"  # progress lines and the summary: what --quiet silences
# --log-level is for the crawler's loggers and the user's spiders'. The libraries the crawl
# runs on stay at WARNING whatever it says: their DEBUG lines flood, and print the values
# they handle (aiosqlite: every statement with its parameters, which hold stored passwords,
# headers, bodies and cookies).
QUIET_LIBRARIES = ("aiosqlite", "asyncio", "aiohttp", "aiodns", "aiohappyeyeballs",
                   "charset_normalizer", "multidict", "protego", "rich", "selectolax",
                   "uvloop", "yarl")

# What a terminal would act on rather than show: C0 controls but tab and newline (ESC starts
# colour, title, clipboard (OSC 52) and screen sequences), DEL, C1 controls (0x9b is CSI on
# its own) and the bidi overrides that reorder what a line shows. A crawled page's text
# reaches messages (a callback's exception quoting it, a title, a header, a drop reason).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with what a terminal would act on written as escapes (`\\x1b`), so that a
    crawled page's text can be printed as it is."""
    if text.isascii() and text.isprintable():  # the common case, without the regex
        return text
    return _UNSAFE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _CurrentStderr(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time, so that a live display that takes over
    stderr prints log lines above itself instead of being torn by them."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


class TextFormatter(logging.Formatter):
    """`crawl: ...` for status messages; time, level and logger for the rest."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if record.name.startswith(STATUS):
            text = "\n".join(f"crawl: {line}" for line in record.getMessage().split("\n"))
        else:
            text = super().format(record)
        return terminal_safe(text)


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def setup(level: str, fmt: str = "text", *, quiet: bool = False) -> None:
    handler = _CurrentStderr()
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    wanted = getattr(logging, level)
    root.setLevel(wanted)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, wanted))
    status = wanted if quiet else min(logging.INFO, wanted)
    logging.getLogger(STATUS).setLevel(status)
    logging.getLogger(REPORT).setLevel(max(logging.WARNING, status) if quiet else status)
