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
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_default,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SpiderError(f"item cannot be stored as JSON: {exc}") from None
