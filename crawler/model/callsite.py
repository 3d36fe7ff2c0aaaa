"""Where in the user's own code a call into the library came from, for error messages: a
mistake is reported at the spider's line, not at a line inside the crawler."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType

# The crawler package's folder, as imported and with links resolved.
_PACKAGE = (str(Path(__file__).parent.parent) + "/",
            str(Path(__file__).resolve().parent.parent) + "/")


def in_library(filename: str) -> bool:
    return filename.startswith(_PACKAGE)


def user_line() -> str:
    """` (at FILE:LINE)` of the innermost frame outside the crawler package, or ""."""
    frame: FrameType | None = sys._getframe(1)  # nothing was raised: no traceback to read
    while frame is not None and in_library(frame.f_code.co_filename):
        frame = frame.f_back
    return "" if frame is None else f" (at {frame.f_code.co_filename}:{frame.f_lineno})"
