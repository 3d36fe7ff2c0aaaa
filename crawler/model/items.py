"""Turning what a callback yields into stored JSON."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from crawler.errors import SpiderError, message


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
            "dataclass instances or Requests (or give the spider a converter for "
            f"{type(value).__name__}: converters = {{{type(value).__name__}: ...}})"
        )
    return _dumps(data, _default)


def _dumps(data: Any, default: Callable[[Any], Any]) -> str:
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=default,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SpiderError(f"item cannot be stored as JSON: {exc}") from None
    problem = not_unicode(text, data)
    if problem:
        raise SpiderError(f"item cannot be stored: {problem}")
    return text


Converter = Callable[[Any], Any]


class ItemEncoder:
    """`encode(item)` with the spider's `converters`: {type: function} making a value of
    that type (or a subclass) JSON-able. An item of such a type becomes what its converter
    returns (a dict), and so does a value of such a type inside an item (anything JSON)."""

    def __init__(self, converters: Mapping[type, Converter], spider: str) -> None:
        if not isinstance(converters, Mapping):
            raise SpiderError(f"{spider}.converters must be a dict of type: function, not "
                              f"{type(converters).__name__}")
        for cls, convert in converters.items():
            if not isinstance(cls, type) or not callable(convert):
                raise SpiderError(f"{spider}.converters: {cls!r}: {convert!r} is not a type "
                                  "and a function")
        self._converters = dict(converters)
        self._found: dict[type, Converter | None] = {}  # by exact type: the MRO walked once

    @classmethod
    def of(cls, spider: object) -> Callable[[object], str]:
        """The spider's encoder: the plain `encode_item` when it has no converters."""
        converters = getattr(spider, "converters", None)
        if not converters:
            return encode_item
        return cls(converters, type(spider).__name__).encode

    def _converter(self, kind: type) -> Converter | None:
        try:
            return self._found[kind]
        except KeyError:
            found = next((self._converters[c] for c in kind.__mro__ if c in self._converters),
                         None)
            self._found[kind] = found
            return found

    def _convert(self, value: Any, convert: Converter) -> Any:
        try:
            return convert(value)
        except Exception as exc:
            raise SpiderError(f"the converter for {type(value).__name__} failed: "
                              f"{message(exc)}") from exc

    def _default(self, value: Any) -> Any:
        convert = self._converter(type(value))
        return _default(value) if convert is None else self._convert(value, convert)

    def encode(self, value: object) -> str:
        convert = self._converter(type(value))
        if convert is None:
            return self._plain(value)
        data = self._convert(value, convert)
        if dataclasses.is_dataclass(data) and not isinstance(data, type):
            data = dataclasses.asdict(data)
        if not isinstance(data, Mapping):
            raise SpiderError(f"the converter for {type(value).__name__} returned "
                              f"{type(data).__name__} {data!r:.80}; an item converts to a dict")
        return _dumps(dict(data), self._default)

    def _plain(self, value: object) -> str:
        """A dict or dataclass item, whose values may need the converters."""
        if isinstance(value, Mapping):
            return _dumps(dict(value), self._default)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _dumps(dataclasses.asdict(value), self._default)
        return encode_item(value)  # the error that says what an item may be


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
