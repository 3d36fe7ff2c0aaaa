"""Where in the user's own code a call into the library came from, for error messages: a
mistake is reported at the spider's line, not at a line inside the crawler.

Only ever called when raising: walking the stack costs more than building a request."""

from __future__ import annotations

import functools
import inspect
import re
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, ParamSpec, TypeVar

from crawler.errors import SpiderError

# The crawler package's folder, as imported and with links resolved.
_PACKAGE = (str(Path(__file__).parent.parent) + "/",
            str(Path(__file__).resolve().parent.parent) + "/")
# Python's own modules (asyncio's event loop above a crawl's first frame), not the
# packages installed beside them (where a spider may live).
_STDLIB = tuple({sysconfig.get_paths()[key] + "/" for key in ("stdlib", "platstdlib")})
_INSTALLED = tuple({sysconfig.get_paths()[key] + "/" for key in ("purelib", "platlib")})
_LOCATED = re.compile(r" \(at [^()]+:\d+\)$")  # what user_line() and start_line() end with

P = ParamSpec("P")
T = TypeVar("T")


def in_library(filename: str) -> bool:
    return filename.startswith(_PACKAGE)


def _runtime(filename: str) -> bool:
    """Python's own code, or code with no file: no line of the user's."""
    return filename.startswith("<") or (
        filename.startswith(_STDLIB) and not filename.startswith(_INSTALLED))


def user_line() -> str:
    """` (at FILE:LINE)` of the innermost frame outside the crawler package, or "" when the
    call came from the crawler itself (the event loop is the first frame outside it)."""
    frame: FrameType | None = sys._getframe(1)  # nothing was raised: no traceback to read
    while frame is not None and in_library(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None or _runtime(frame.f_code.co_filename):
        return ""
    return f" (at {frame.f_code.co_filename}:{frame.f_lineno})"


def located(exc: SpiderError, where: str | None = None) -> SpiderError:
    """`exc` as it leaves the model: saying the spider's line (`where`, by default the
    caller's), once: an error that already names one, from a nested call, is kept."""
    if _LOCATED.search(str(exc)):
        return exc
    where = user_line() if where is None else where
    return SpiderError(f"{exc}{where}") if where else exc


def locating(method: Callable[P, T]) -> Callable[P, T]:
    """A public entry of the model (not on the hot path) whose SpiderErrors are `located`."""
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except SpiderError as exc:
            raise located(exc) from None
    return wrapper


def start_line(requests: Any, spider: object) -> str:
    """Where a spider's `start_requests()` stands: the line of its last `yield`, or, for
    the default one (which yields the `start_urls`), where the spider's class is written."""
    frame = getattr(requests, "ag_frame", None)
    if frame is not None and not in_library(frame.f_code.co_filename):
        return f" (at {frame.f_code.co_filename}:{frame.f_lineno})"
    cls = type(spider)
    code = getattr(getattr(cls, "start_requests", None), "__code__", None)
    if code is None or not in_library(code.co_filename):
        return ""  # the spider's own start_requests, closed by its error (which says where)
    try:
        path, line = inspect.getsourcefile(cls), inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return ""
    if path is None or in_library(path):
        return ""
    return f" (in {cls.__name__}.start_urls, at {path}:{line})"
