"""How items are written out: JSON Lines, a JSON array or CSV. The same encoders serve the
feeds written while crawling and `crawl export`, so a feed and an export of the same state
file are the same bytes.

A file of items is a head, rows and a tail. The head and the rows are kept as written (a
feed appends rows after them); the tail (a JSON array's closing bracket) is written again
after each append, so the file is whole after every write.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from crawler.config import OUTPUT_FORMATS
from crawler.errors import ConfigError

FORMATS = OUTPUT_FORMATS
_OUTPUT_EXTENSIONS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv"}
STDOUT = "-"
"""The output that is the standard output."""


def output_format(target: str, given: str | None) -> str:
    """The format an output is written in: the one given, else its file's extension's
    (JSON Lines for the standard output)."""
    if given is not None:
        return given
    if target == STDOUT:
        return "jsonl"
    fmt = _OUTPUT_EXTENSIONS.get(PurePath(target).suffix.lower())
    if fmt is None:
        raise ConfigError(f"output {target}: cannot tell its format from its extension (use "
                          ".jsonl, .json or .csv, or give the format: --output-format)")
    return fmt


class Encoder:
    """JSON Lines: each item's stored text on a line of its own (no re-encoding)."""

    format = "jsonl"

    def head(self) -> str:
        return ""

    def rows(self, items: Sequence[str], first: bool) -> str:
        """The text of `items`; `first`: no item is in the file yet."""
        return "\n".join(items) + "\n" if items else ""

    def tail(self, empty: bool) -> str:
        return ""

    @property
    def needs_columns(self) -> bool:
        """Whether the head depends on every item (CSV's columns): see `widen`."""
        return False

    def widen(self, items: Sequence[str]) -> bool:
        """Take in the fields of `items`; whether the head has changed (then a file written
        with the old head must be written anew)."""
        return False

    @property
    def state(self) -> str:
        """What a feed keeps to go on with this encoder after a resume (CSV: its columns)."""
        return ""

    def restore(self, state: str) -> None:
        """Go on as the encoder whose `state` this was."""


class JsonArray(Encoder):
    """One JSON array, an item a line: `[`, the items, `]`. Valid after every write."""

    format = "json"

    def head(self) -> str:
        return "["

    def rows(self, items: Sequence[str], first: bool) -> str:
        if not items:
            return ""
        return ("\n" if first else ",\n") + ",\n".join(items)

    def tail(self, empty: bool) -> str:
        return "]\n" if empty else "\n]\n"


class Csv(Encoder):
    """One column for each field seen in any item, in first-seen order, CRLF rows as RFC
    4180 has them. A cell a spreadsheet would run as a formula is defused."""

    format = "csv"

    def __init__(self) -> None:
        self.columns: dict[str, None] = {}

    @property
    def needs_columns(self) -> bool:
        return True

    def widen(self, items: Sequence[str]) -> bool:
        known = len(self.columns)
        for text in items:
            self.columns.update(dict.fromkeys(_as_dict(text)))
        return len(self.columns) > known

    def head(self) -> str:
        return self._text([[_cell(name) for name in self.columns]])  # names come from sites

    def rows(self, items: Sequence[str], first: bool) -> str:
        return self._text([[_cell(item.get(name)) for name in self.columns]
                           for item in map(_as_dict, items)])

    @staticmethod
    def _text(rows: list[list[Any]]) -> str:
        out = io.StringIO()
        # RFC 4180's CRLF: with "\n" alone, the csv module leaves a field holding a lone
        # "\r" unquoted, and readers end the row there.
        csv.writer(out, lineterminator="\r\n").writerows(rows)
        return out.getvalue()

    @property
    def state(self) -> str:
        return json.dumps(list(self.columns))

    def restore(self, state: str) -> None:
        self.columns = dict.fromkeys(json.loads(state))


def encoder(fmt: str) -> Encoder:
    """A new encoder of the format `fmt` (one of FORMATS)."""
    kinds: dict[str, type[Encoder]] = {"jsonl": Encoder, "json": JsonArray, "csv": Csv}
    try:
        return kinds[fmt]()
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}") \
            from None


def _as_dict(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV
# Injection"); the text of a crawled page must never do that.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _cell(value: Any) -> Any:
    """A CSV cell: nested values as JSON, text that a spreadsheet would take for a formula
    behind a single quote (as OWASP recommends). Numbers, and text that is just a number
    such as "-5", are left as they are: a spreadsheet reads them as numbers, nothing more."""
    if value is None or isinstance(value, int | float):
        return value
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
