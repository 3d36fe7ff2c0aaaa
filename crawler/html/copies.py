"""Passing over copies at once: a hostile page is a few tags written a million times, and the
nesting cap's model reads about a microsecond a tag. What is found here is what reading the
copies one by one would give (tests/test_nesting.py compares the two)."""

from __future__ import annotations

import re

from crawler.html.elements import VOID
from crawler.html.markup import ATTRIBUTES
from crawler.html.tree_model import TreeModel

MAX_SEEN = 10_000  # distinct tokens remembered
_LINK_RUN = re.compile(rf"(?:[^<]*+<[aA](?=[\t\n\f\r />]){ATTRIBUTES}/?>)++")
_VOID_RUN = re.compile(
    rf"(?:[^<]*+<(?i:{'|'.join(sorted(VOID))})(?=[\t\n\f\r />]){ATTRIBUTES}/?>)++")
_PAIR_RUNS: dict[str, re.Pattern[str]] = {}  # by name: <x ...>text</x>, over and over


def same_after(text: str, model: TreeModel, name: str, *, end_tag: str, opened: str,
               pos: int) -> int:
    """Past the tokens after `pos` that would leave the model as it is now: more links
    after a link (each closes the one before), more void elements after one, more
    <x>text</x> after one just closed. A flood of them is read at once. (Text between
    them changes nothing either: formatting elements are all open again by now.)"""
    if end_tag:
        if name != opened:
            return pos
        runs = _PAIR_RUNS.get(name)
        if runs is None:
            if len(_PAIR_RUNS) >= MAX_SEEN:
                return pos
            runs = _PAIR_RUNS[name] = re.compile(
                rf"(?:[^<]*+<{re.escape(name)}(?:[\t\n\f\r /]{ATTRIBUTES})?>[^<]*+"
                rf"</{re.escape(name)}[\t\n\f\r ]*+>)++", re.IGNORECASE)
    elif name == "a":
        runs = _LINK_RUN
    elif name in VOID:
        runs = _VOID_RUN
    else:
        return pos
    frame = model.frames[-1]
    if frame and not frame[-1].on_stack:
        return pos
    found = runs.match(text, pos)
    return pos if found is None else found.end()


def apply_edits(text: str, edits: list[tuple[int, int, str]], start: int, end: int) -> str:
    """text[start:end] with the edits (all within it, in order) made."""
    parts, last = [], start
    for cut_start, cut_end, replacement in edits:
        parts.append(text[last:cut_start])
        parts.append(replacement)
        last = cut_end
    parts.append(text[last:end])
    return "".join(parts)


def repeats(text: str, unit: str, pos: int) -> int:
    """How many copies of `unit` follow one another in `text` from `pos`: by doubling
    steps, so a million copies cost some forty string comparisons."""
    count, step, size = 0, 1, len(unit)
    while step:
        if text.startswith(unit * step, pos):
            pos += size * step
            count += step
            step *= 2
        else:
            step //= 2
    return count
