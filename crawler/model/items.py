"""Turning what a callback yields into stored JSON."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any

from crawler.errors import SpiderError


def _default(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode_item(value: object) -> str:
    """JSON text for an item (a dict or a dataclass instance)."""
    if isinstance(value, Mapping):
        data: Any = dict(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    else:
        raise SpiderError(
            f"a callback yielded {type(value).__name__!s} {value!r:.80}; yield dicts, "
            "dataclass instances or Requests"
        )
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_default,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SpiderError(f"item cannot be stored as JSON: {exc}") from None
    problem = not_unicode(text, data)
    if problem:
        raise SpiderError(f"item cannot be stored: {problem}")
    return text


def not_unicode(text: str, data: Any) -> str | None:
    """What in `data` (encoded as `text`) is not Unicode text, or None if nothing is.

    A lone surrogate ("\ud800", which JSON APIs do send, and which bytes decoded with
    surrogateescape give) is a str that no UTF-8 text can hold, so it can't be stored."""
    if text.isascii():  # O(1) in CPython: most items end here
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ascii(exc.object[exc.start])
        where = _find(data, char_at=exc.object[exc.start]) or "a value"
        return (f"{where} holds a lone surrogate {char}, which is not Unicode text (decode "
                "bytes with errors='replace', or leave that character out)")
    return None


def _find(value: Any, *, char_at: str, path: str = "") -> str | None:
    """The path ("field 'links'[3]") of the first string or key holding `char_at`."""
    if isinstance(value, str):
        return (f"field {path}" if path else "the value") if char_at in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key!a}" if path else ascii(key)
            if isinstance(key, str) and char_at in key:
                return f"the field name {here}"
            found = _find(item, char_at=char_at, path=here)
            if found:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for n, item in enumerate(value):
            found = _find(item, char_at=char_at, path=f"{path}[{n}]")
            if found:
                return found
    return None
