"""What one tag does to the model of the parser's tree (tree_model.py), and whether the
nesting cap leaves it out: the token-level half of the cap's reading, which flattener.py
drives over a page."""

from __future__ import annotations

import re

from crawler.html.copies import repeats
from crawler.html.elements import (
    BREAKOUT,
    CLOSES_P,
    FOREIGN_ROOTS,
    FORMATTING,
    KEPT_AT_CAP,
    NOT_POPPED_TO,
    PLAIN,
    RAW,
    TABLE_PARTS,
    VOID,
)
from crawler.html.markup import attributes, integration, raw_text_end, skip_declaration
from crawler.html.tree_model import TreeModel

MAX_FORMATTING = 32  # open formatting elements (<b>, <font>, ...) since the last table cell


class TagReader:
    """Reads one tag at a time into the model, and records the edits that leave tags out:
    start tags past the cap (and their end tags), unmatched end tags deep down."""

    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.max_depth = max_depth
        self.model = TreeModel()
        self.dropped: dict[str, int] = {}  # start tags left out, by name: their end tags go too
        self.edits: list[tuple[int, int, str]] = []  # (start, end, replacement), in order
        self.barrier = 0  # a cut never joins one that started before this

    def fast(self, end_tag: str, name: str, start: int, end: int) -> bool:
        """Read the token if it is a plain case; False leaves it to `step`, which reads
        every case the same way (this only saves calls)."""
        model = self.model
        stack = model.stack
        if end_tag:
            if not stack or stack[-1].name != name or name in NOT_POPPED_TO \
                    or self.dropped.get(name):
                return False
            entry, frame = stack[-1].entry, model.frames[-1]
            if entry is not None and entry in frame:
                frame.remove(entry)  # a formatting element closed by its own end tag
            model.pop()
            return True
        if stack and stack[-1].foreign:
            return False
        if name in VOID or name in FORMATTING:
            return self._fast_inline(name)
        if name not in PLAIN:
            return False
        if len(stack) >= self.max_depth:
            self.dropped[name] = self.dropped.get(name, 0) + 1  # past the cap: left out
            self.edit(start, end)
            return True
        if name in CLOSES_P:
            if model.where.get("p"):
                self.model.close_p()
        else:
            frame = model.frames[-1]
            if frame and not frame[-1].on_stack:
                model.reconstruct()
        model.push(name)
        return True

    def _fast_inline(self, name: str) -> bool:
        """A void element, or a formatting one below the cap and its frame's limit."""
        model = self.model
        frame = model.frames[-1]
        if name in VOID:
            if frame and not frame[-1].on_stack:
                model.reconstruct()
            return True
        if name != "a" and (len(model.stack) >= self.max_depth
                            or len(frame) >= MAX_FORMATTING):
            return False
        self.model.open_formatting(name)
        return True

    def step(self, found: re.Match[str], pos: int) -> int:
        """Read the token `found` (text since `pos` before it); where to go on, -1 to stop."""
        model, start = self.model, found.start()
        if start > pos:
            self.model.text()
        end_tag, name, self_closing, never_ends, _ = found.groups()
        if name is None:
            if never_ends:
                return -1
            return skip_declaration(self.text, start, self.model.in_foreign())
        end, name = found.end(), name.lower()
        if end_tag:
            return self._end_tag(name, start, end)
        if len(model.stack) >= self.max_depth and (name not in KEPT_AT_CAP
                                                   or model.in_foreign()):
            self.dropped[name] = self.dropped.get(name, 0) + 1  # past the cap: left out
            self.edit(start, end)
            return end
        return self._start_tag(name, bool(self_closing), start, end)

    def edit(self, start: int, end: int, replacement: str = "") -> None:
        """Replace text[start:end] (a cut joins the cut before it when they touch)."""
        edits = self.edits
        if not replacement and edits and edits[-1][1] == start and not edits[-1][2] \
                and edits[-1][0] >= self.barrier:
            edits[-1] = (edits[-1][0], end, "")
        else:
            edits.append((start, end, replacement))

    def _start_tag(self, name: str, self_closing: bool, start: int, end: int) -> int:
        model = self.model
        if name in FORMATTING and name != "a" and len(model.frames[-1]) >= MAX_FORMATTING:
            # Decided before anything else: a tag left out must change nothing in the model.
            self.dropped[name] = self.dropped.get(name, 0) + 1
            self.edit(start, end)
            return end
        if model.in_foreign():
            if name not in BREAKOUT and (name != "font" or not attributes(
                    self.text, start, end).keys() & {"color", "face", "size"}):
                if not self_closing:
                    namespace = model.stack[-1].foreign
                    model.push(name, namespace, None,
                               integration(self.text, namespace, name, start, end))
                return end
            model.break_out()
        if name in VOID:
            model.reconstruct()
            return end
        if name in RAW or name in {"script", "plaintext"}:
            model.reconstruct()  # pushed and popped at once: it holds no elements
            return raw_text_end(self.text, name, end)
        model.implied_closes(name)
        if name in FOREIGN_ROOTS:
            if not self_closing:
                model.push(name, name)
            return end
        if name in FORMATTING:
            self.model.open_formatting(name)
            return end
        if name not in CLOSES_P and name not in TABLE_PARTS:
            model.reconstruct()
        self.model.push_html(name)
        return end

    def _end_tag(self, name: str, start: int, end: int) -> int:
        """Returns where to go on from (past copies of this end tag treated at once)."""
        model, text = self.model, self.text
        depth = len(model.stack)
        pending = self.dropped.get(name)
        if pending:  # the end of a start tag left out: left out too, and its copies
            taken = 1 + min(pending - 1, repeats(text, text[start:end], end))
            self.dropped[name] = pending - taken
            end = start + (end - start) * taken
            self.edit(start, end)
            return end
        if model.stack and model.stack[-1].foreign:
            if name in ("br", "p"):
                model.break_out()
            else:  # the parser looks down the foreign elements for it, then reads it as HTML
                found = model.last(name)
                if found >= 0 and model.stack[found].foreign and \
                        found > (model.html[-1] if model.html else -1):
                    model.pop_to(found)
                    return end
        if model.top_is(name) and name not in {"html", "body"}:
            element = model.stack[-1]
            if element.entry is not None and element.entry in model.frames[-1]:
                model.frames[-1].remove(element.entry)  # closed by its own end tag
            model.pop()
            return end
        # The parser does not pop html, body or br, and a </form> may take one from the middle.
        target = -1 if name in NOT_POPPED_TO else self.model.pop_target(name)
        if target >= 0:
            model.pop_to(target)
        elif len(model.stack) == depth >= self.max_depth // 2:
            # Unmatched: the parser would search the deep stack for it, then ignore it (or add
            # an empty <p> or <br>). Left out, that search is not paid for; copies too.
            end += (end - start) * repeats(text, text[start:end], end)
            self.edit(start, end)
        return end
