"""The nesting cap's reading of a page: tag by tag through `TagReader`, but passing over at
once the copies of what was just read that leave the model as it was, and stripping the rest
of a page that has been read long enough. Its edits make the flattened page."""

from __future__ import annotations

import re

from crawler.html.copies import MAX_SEEN, apply_edits, repeats, same_after
from crawler.html.markup import ATTRIBUTES, END_NAMES, TOKEN
from crawler.html.tags import TagReader

MAX_UNIT = 4096  # characters of the longest text whose copies are passed over at once
COPIES = 4  # copies it must be followed by, at least
SHORT_TOKEN = 12  # characters
WAIT_AFTER_MISS = 16  # tokens read before copies are looked for again, after a miss
RECREATED = 500_000
"""Elements the re-opening of formatting elements may make, at most, before a page is read
by `flatten` (about 200 MB of lexbor's tree, at the 390 bytes an element it takes)."""
DEEP_TOKENS = 100_000  # tags read past half the cap before the rest of a page is stripped
READ_TOKENS = 500_000  # tags read at all (about a second) before the rest is stripped
_KEPT_WHEN_STRIPPED = (  # start tags that cannot make the parser search its stack
    "a|area|base|basefont|bgsound|br|col|embed|frame|image|img|input|keygen|link|meta|param|"
    "source|track|wbr")
_STRIPPED = re.compile(  # every end tag, and the other start tags
    rf"<(?:/|(?!(?i:{_KEPT_WHEN_STRIPPED})[\t\n\f\r />]))[A-Za-z][^\t\n\f\r />]*+"
    rf"{ATTRIBUTES}/?>")


class Flattener:
    """Reads one page, once: `run` gives the markup with the cap's edits made."""

    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.max_depth = max_depth
        self.tags = TagReader(text, max_depth)
        self.model = self.tags.model

    def run(self) -> str:
        text, pos, search = self.text, 0, TOKEN.search
        model, edits, fast, step = self.model, self.tags.edits, self.tags.fast, self.tags.step
        # Where each token was last seen (and the depth then): text from there to the same
        # token again, at the same depth, that is written several times more right after is
        # a page of a million copies; it is read in a few steps (see `_copies`).
        seen: dict[str, tuple[int, int]] = {}
        stack, wait, deep, read, half = model.stack, 0, 0, 0, self.max_depth // 2
        opened = ""  # the element the token before pushed, if any
        while (found := search(text, pos)) is not None:
            start = found.start()
            if start > pos:
                model.text()
            depth = len(stack)
            if (depth >= half and (deep := deep + 1) > DEEP_TOKENS) \
                    or model.recreated > RECREATED or (read := read + 1) > READ_TOKENS:
                # A page that spent so many tags deep down, or that made the parser re-open
                # so many formatting elements (a few open ones, then "<p>t" a million
                # times), is hostile, no doubt; one of over half a million tags is past
                # what reading it may cost (its links and text are kept).
                rest = _stripped(text, start, model.in_foreign())
                edits.append((start, len(text), rest))
                break
            # Copies are looked for deep down, where a hostile page spends its length, and
            # for short tags (a flood of "<br>" or "<a>" is millions of them).
            if depth >= half or found.end() - start <= SHORT_TOKEN:
                token = found.group()
                last = seen.get(token)
                seen[token] = (start, depth)
                if last is not None and last[1] == depth and not wait \
                        and start - last[0] <= MAX_UNIT and \
                        text.startswith(text[last[0] : start] * COPIES, start):
                    pos, skipped = self._copies(last[0], start)
                    wait = 0 if skipped else WAIT_AFTER_MISS
                    seen.clear()
                    continue
                if wait:
                    wait -= 1
                if len(seen) > MAX_SEEN:
                    seen.clear()
            # The two commonest tokens, read here without the general path's calls (a
            # hostile page may hold millions of tokens): an end tag closing the current
            # element, and a plain start tag below the cap.
            end_tag, name, _, _, _ = found.groups()
            if name is not None and fast(end_tag, (name := name.lower()), start, found.end()):
                pos = same_after(text, model, name, end_tag=end_tag, opened=opened,
                                 pos=found.end())
                opened = "" if end_tag else name
                continue
            opened = ""
            pos = step(found, start)
            if pos < 0:
                break  # a tag that never ends: the rest of the page is inside it
        return apply_edits(text, edits, 0, len(text)) if edits else text

    def _copies(self, unit_start: int, pos: int) -> tuple[int, bool]:
        """text[unit_start:pos] comes again at `pos`. Read that copy; if the model is then
        as before it (start tags left out past the cap aside), every further copy does the
        same (reading is deterministic), and they are passed over at once, with the copy's
        edits repeated. Returns where to go on, and whether copies were passed over."""
        text, size, model, tags = self.text, pos - unit_start, self.model, self.tags
        before, dropped = model.snapshot(), dict(tags.dropped)
        recreated = model.recreated
        edits, tags.barrier = len(tags.edits), pos
        copy_end, at = pos + size, pos
        while at < copy_end and (found := TOKEN.search(text, at)) is not None \
                and found.start() < copy_end:
            at = tags.step(found, at)
            if at < 0:
                return len(text), False
        if at < copy_end and TOKEN.search(text, at, copy_end) is None:
            model.text()  # the copy ends in text
            at = copy_end
        if at != copy_end or model.snapshot() != before:
            return max(at, copy_end), False
        grown = {k: v - dropped.get(k, 0) for k, v in tags.dropped.items()
                 if v != dropped.get(k, 0)}
        # A count that grows must not be one an end tag in the copy reads.
        if grown and grown.keys() & {n.lower() for n in END_NAMES.findall(text, pos, at)}:
            return at, False
        more = repeats(text, text[pos:copy_end], copy_end)
        per_copy = model.recreated - recreated
        if per_copy:  # copies that re-open elements are passed over to the limit, no further
            more = min(more, max(0, RECREATED - model.recreated) // per_copy + 1)
            model.recreated += per_copy * more
        for name, growth in grown.items():
            tags.dropped[name] += growth * more
        copy = apply_edits(text, tags.edits[edits:], pos, copy_end)
        if more and copy != text[pos:copy_end]:
            tags.edits.append((copy_end, copy_end + size * more, copy * more))
        return copy_end + size * more, True


def _stripped(text: str, start: int, foreign: bool) -> str:
    """Replace every tag from `start` on by a space, but the start tags of links and
    void elements: those neither deepen the tree nor make the parser search it (a space
    cannot join "<" to a letter: no new tag appears). For a page that spent its first
    DEEP_TOKENS tags deep down, the rest of it is not worth the model's time."""
    # An <object> is a marker in the list of active formatting elements: the parser re-opens
    # none of those before it, so the links kept cannot make it re-open them again and again.
    rest = "<object>" + _STRIPPED.sub(" ", text[start:])
    if foreign:
        rest = "<br>" + rest  # ends SVG or MathML content, where an <a> may nest
    return rest
