"""Caps the depth of the tree an HTML page builds, as browsers do (Chromium: 512), before
lexbor parses it.

lexbor's tree building walks the stack of open elements for many tokens (a <div> looks for an
open <p>, an unmatched end tag looks for its element), so its cost grows with the square of
the nesting depth: 200,000 nested <div>s, 2.2 MB, took 90 s of CPU. And formatting elements
that a block end tag closes are re-created at the next text ("reconstruct the active
formatting elements"): 16 KB of such markup made 640,000 elements. Both need depth.

`flatten` reads the markup as the HTML tokenizer does (comments, raw text such as <script>
and <title>, quoted attributes holding < or >, foreign SVG and MathML content) and keeps a
model of the parser's stack of open elements and list of formatting elements. The model
only ever pops what the parser surely pops, so it is never shallower than the real tree.
A start tag that would take the model past `max_depth` is left out (and its end tag too),
so its content joins the element at the cap, as Chromium does; links (<a>), void elements
and raw-text elements are always kept. A page the cap does not touch is returned as it is.

The model is Python, about a microsecond a tag, so a 16 MiB page of millions of tags must
not be read tag by tag: copies of what was just read that leave the model as it was are
passed over at once (`_copies`, `_same_after`), and a page that spends 100,000 tags deep
down has the rest of its tags but links and void elements replaced by spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


MAX_DEPTH = 512
# Pages of fewer tags are parsed as they are: at worst they cost lexbor milliseconds.
FLATTEN_ABOVE = 1024
MAX_UNIT = 4096  # characters of the longest text whose copies are passed over at once
COPIES = 4  # copies it must be followed by, at least
MAX_SEEN = 10_000  # distinct tokens remembered
SHORT_TOKEN = 12  # characters
WAIT_AFTER_MISS = 16  # tokens read before copies are looked for again, after a miss
MAX_FORMATTING = 32  # open formatting elements (<b>, <font>, ...) since the last table cell

_WS = "\t\n\f\r "
# A whole tag as the tokenizer reads it (attribute values in quotes may hold "<" and ">"),
# else what else "<" starts: a tag that never ends, a declaration or comment, or "</" junk.
_ATTRIBUTES = (r"(?:[\t\n\f\r ]++|/(?!>)|[^\t\n\f\r />][^\t\n\f\r />=]*+"
               r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"|'[^']*+'|(?=>)"
               r"|[^\t\n\f\r >\"'][^\t\n\f\r >]*+))?)*+")
_TAG = re.compile(rf"<(/?)([A-Za-z][^\t\n\f\r />]*+){_ATTRIBUTES}(/?)>")
KEPT_AT_CAP = _names(  # HTML start tags kept past the cap: no depth added, or cannot nest
    "a area base basefont bgsound br col embed frame image img input keygen link meta param "
    "source track wbr style xmp iframe noembed noframes textarea title script plaintext")
_END_NAMES = re.compile(r"</([A-Za-z][^\t\n\f\r />]*)")
# Start tags read by `_fast`: no implied closes but a <p>'s, not raw text, not foreign, not
# formatting, not table parts (which may add parents), not markers.
PLAIN = _names(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer header hgroup main menu nav ol p search section summary ul pre listing "
    "span label abbr cite q sub sup var kbd samp dfn ins del mark time data output progress "
    "meter bdi bdo ruby rb rt rp rtc picture video audio canvas map slot")
# HTML start tags that end SVG/MathML content.
BREAKOUT = _names(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i "
    "img li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u "
    "ul var")
_ATTRIBUTE = re.compile(r"[\t\n\f\r /]([^\t\n\f\r />=][^\t\n\f\r />=]*)"
                        r"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(\"[^\"]*\"|'[^']*'|[^\t\n\f\r >]*))?")
DEEP_TOKENS = 100_000  # tags read past half the cap before the rest of a page is stripped
READ_TOKENS = 500_000  # tags read at all (about a second) before the rest is stripped
_KEPT_WHEN_STRIPPED = (  # start tags that cannot make the parser search its stack
    "a|area|base|basefont|bgsound|br|col|embed|frame|image|img|input|keygen|link|meta|param|"
    "source|track|wbr")
_STRIPPED = re.compile(  # every end tag, and the other start tags
    rf"<(?:/|(?!(?i:{_KEPT_WHEN_STRIPPED})[\t\n\f\r />]))[A-Za-z][^\t\n\f\r />]*+"
    rf"{_ATTRIBUTES}/?>")
_NOT_POPPED_TO = frozenset({"html", "body", "br", "form"})
_TOKEN = re.compile(rf"<(?:(/?)([A-Za-z][^\t\n\f\r />]*+){_ATTRIBUTES}(/?)>|([A-Za-z])|([!?/]))")
_SCRIPT_MARK = re.compile(r"<!--|-->|<(/?)script[\t\n\f\r />]", re.IGNORECASE)

VOID = _names("area base basefont bgsound br col embed frame hr image img input keygen "
                 "link meta param source track wbr")
RAW = _names("style xmp iframe noembed noframes textarea title")
FORMATTING = _names("a b big code em font i nobr s small strike strong tt u")
MARKERS = _names("applet marquee object template td th caption")
# Elements that end the "in scope" search, and those of table scope.
BOUNDARY = _names("applet caption html table td th marquee object template select mi mo mn ms "
                     "mtext annotation-xml foreignobject desc title")
TABLE_BOUNDARY = frozenset({"html", "table", "template"})
HEADINGS = _names("h1 h2 h3 h4 h5 h6")
# Start tags that close an open <p> (in button scope).
CLOSES_P = _names(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer header hgroup main menu nav ol p search section summary ul h1 h2 h3 h4 h5 "
    "h6 pre listing form table hr xmp li dd dt plaintext")
# End tags that pop everything above their element when it is in scope.
POPS_TO = _names(
    "address article aside blockquote button center details dialog dir div dl fieldset "
    "figcaption figure footer header hgroup listing main menu nav ol pre search section "
    "summary ul dd dt applet marquee object template select")
TABLE_PARTS = _names("table tbody thead tfoot tr td th caption")
SPECIAL = _names(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form "
    "frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li "
    "link listing main marquee menu meta nav noembed noframes noscript object ol p param "
    "plaintext pre script search section select source style summary table tbody td template "
    "textarea tfoot th thead title tr track ul wbr xmp mi mo mn ms mtext annotation-xml "
    "foreignobject desc")
FOREIGN_ROOTS = frozenset({"svg", "math"})
# Groups whose topmost open element the scope checks ask for, in O(1).
_GROUPS = {"boundary": BOUNDARY, "table": TABLE_BOUNDARY, "special": SPECIAL,
           "heading": HEADINGS, "list": frozenset({"ol", "ul"}), "button": frozenset({"button"})}
_GROUPS_OF = {name: tuple(g for g, names in _GROUPS.items() if name in names)
              for names in _GROUPS.values() for name in names}
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_COMMENT_END = re.compile(r"--!?>")


_LINK_RUN = re.compile(rf"(?:[^<]*+<[aA](?=[\t\n\f\r />]){_ATTRIBUTES}/?>)++")
_VOID_RUN = re.compile(
    rf"(?:[^<]*+<(?i:{'|'.join(sorted(VOID))})(?=[\t\n\f\r />]){_ATTRIBUTES}/?>)++")
_PAIR_RUNS: dict[str, re.Pattern[str]] = {}  # by name: <x ...>text</x>, over and over


@dataclass(slots=True, eq=False)  # compared by identity: one per formatting element
class _Entry:
    """A formatting element in the list of active formatting elements."""

    name: str
    on_stack: bool = True


@dataclass(slots=True)
class _Element:
    name: str
    foreign: str  # "svg" or "math" ("" for HTML): there <style> and <script> are not raw text
    entry: _Entry | None = None
    integration: bool = False  # foreign, but what it holds is read as HTML (<foreignObject>)


@dataclass(slots=True)
class _Model:
    """The parser's stack of open elements, with positions by name for O(1) scope checks."""

    stack: list[_Element] = field(default_factory=list)
    where: dict[str, list[int]] = field(default_factory=dict)
    groups: dict[str, list[int]] = field(default_factory=lambda: {g: [] for g in _GROUPS})
    frames: list[list[_Entry]] = field(default_factory=lambda: [[]])
    html: list[int] = field(default_factory=list)  # positions of the HTML elements
    recreated: int = 0  # formatting elements re-opened so far: the parser makes each anew

    def top_is(self, name: str) -> bool:
        return bool(self.stack) and self.stack[-1].name == name

    def last(self, name: str) -> int:
        found = self.where.get(name)
        return found[-1] if found else -1

    def last_of(self, group: str) -> int:
        found = self.groups[group]
        return found[-1] if found else -1

    def push(self, name: str, foreign: str = "", entry: _Entry | None = None,
             integration: bool = False) -> None:
        position = len(self.stack)
        self.where.setdefault(name, []).append(position)
        if foreign:
            self.stack.append(_Element(name, foreign, entry, integration))
            return  # foreign elements are in no group, and are no markers
        self.html.append(position)
        for group in _GROUPS_OF.get(name, ()):
            self.groups[group].append(position)
        self.stack.append(_Element(name, foreign, entry))
        if name in MARKERS:
            self.frames.append([])

    def pop(self) -> None:
        element = self.stack.pop()
        self.where[element.name].pop()
        if element.foreign:
            return
        self.html.pop()
        for group in _GROUPS_OF.get(element.name, ()):
            self.groups[group].pop()
        if element.entry is not None:
            element.entry.on_stack = False
        if element.name in MARKERS and len(self.frames) > 1:
            self.frames.pop()

    def pop_to(self, index: int) -> None:
        while len(self.stack) > index:
            self.pop()

    def in_foreign(self) -> bool:
        """Whether the next start tag is read as SVG/MathML content."""
        return bool(self.stack) and bool(self.stack[-1].foreign) \
            and not self.stack[-1].integration

    def break_out(self) -> None:
        """An HTML tag in SVG/MathML content: the parser closes the foreign elements."""
        while self.in_foreign():
            self.pop()

    def reconstruct(self) -> None:
        """Re-open the formatting elements a block's end closed (the parser does this before
        text and most start tags): the tail of the list that is off the stack."""
        frame = self.frames[-1]
        start = len(frame)
        while start > 0 and not frame[start - 1].on_stack:
            start -= 1
        self.recreated += len(frame) - start
        for entry in frame[start:]:
            entry.on_stack = True
            self.push(entry.name, "", entry)


    def push_html(self, name: str, entry: _Entry | None = None) -> None:
        """Push an HTML element, with the table parents the parser adds. Past the cap only
        by what the tag's own effects added (re-opened formatting elements): a tag is left
        out before it changes anything, by the reader (`_Flattener._step`)."""
        implied: tuple[str, ...] = ()
        if name in ("td", "th", "tr") and self.stack:
            parent = self.stack[-1].name  # cells and rows get the parents they lack
            if parent == "table":
                implied = ("tbody",) if name == "tr" else ("tbody", "tr")
            elif parent in ("tbody", "thead", "tfoot") and name != "tr":
                implied = ("tr",)
        for parent in implied:
            self.push(parent)
        self.push(name, "", entry)

    def open_formatting(self, name: str) -> None:
        frame = self.frames[-1]
        if name == "a":
            # An open <a> is closed by the next: links never nest, so one is kept even past
            # the cap (see KEPT_AT_CAP).
            old = next((e for e in reversed(frame) if e.name == "a"), None)
            if old is not None:
                frame.remove(old)
                if self.top_is("a") and self.stack[-1].entry is old:
                    self.pop()
        self.reconstruct()
        entry = _Entry(name)
        self.push_html(name, entry)
        frame.append(entry)

    def implied_closes(self, name: str) -> None:
        """What a start tag surely closes first (only the sure cases: the model must never
        be shallower than the parser's stack)."""
        if name in CLOSES_P:
            self.close_p()
        if name in {"li", "dd", "dt"}:
            if self.stack and self.stack[-1].name in ("li", "dd", "dt") and \
                    (name == "li") == (self.stack[-1].name == "li"):
                self.pop()
        elif name in HEADINGS:
            if self.stack and self.stack[-1].name in HEADINGS:
                self.pop()
        elif name in {"option", "optgroup"}:
            if self.top_is("option"):
                self.pop()
            if name == "optgroup" and self.top_is("optgroup"):
                self.pop()
        elif name in ("td", "th", "tr", "tbody", "thead", "tfoot"):
            if self.stack and self.stack[-1].name in ("td", "th"):
                self.pop()
            if name not in {"td", "th"}:
                if self.top_is("tr"):
                    self.pop()
                if name != "tr" and self.stack and \
                        self.stack[-1].name in ("tbody", "thead", "tfoot"):
                    self.pop()

    def close_p(self) -> None:
        p = self.last("p")
        if p >= 0 and p > max(self.last_of("boundary"), self.last("button")):
            self.pop_to(p)

    def pop_target(self, name: str) -> int:
        """Where the parser surely pops to for this end tag (not the top), or -1."""
        if name in FORMATTING:
            return -1  # the adoption agency: it may keep what is above; popping nothing is sure
        # The topmost element of a group may be the target itself: only those above it
        # block (positions grow up the stack).
        if name in HEADINGS:
            found = self.last_of("heading")
            return found if found >= 0 and self.last_of("boundary") <= found else -1
        found = self.last(name)
        if found < 0:
            return -1
        blocking: tuple[str, ...]
        if name in TABLE_PARTS:
            blocking = ("table",)
        elif name == "p":
            blocking = ("boundary", "button")
        elif name == "li":
            blocking = ("boundary", "list")
        elif name in POPS_TO:
            blocking = ("boundary",)
        else:  # any other end tag: not through a special element
            blocking = ("boundary", "special")
        return -1 if any(self.last_of(g) > found for g in blocking) else found

    def snapshot(self) -> tuple[object, ...]:
        """The model's state, all that reading the next tokens depends on."""
        index = {id(entry): (f, i) for f, frame in enumerate(self.frames)
                 for i, entry in enumerate(frame)}
        return (tuple((e.name, e.foreign, index.get(id(e.entry))) for e in self.stack),
                tuple(tuple((e.name, e.on_stack) for e in f) for f in self.frames))

    def text(self) -> None:
        """Text: the parser re-opens the formatting elements a block's end closed."""
        frame = self.frames[-1]
        if frame and not frame[-1].on_stack and not self.in_foreign():
            self.reconstruct()


class _Flattener:
    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.max_depth = max_depth
        self.model = _Model()
        self.dropped: dict[str, int] = {}  # start tags left out, by name: their end tags go too
        self.edits: list[tuple[int, int, str]] = []  # (start, end, replacement), in order
        self._barrier = 0  # a cut never joins one that started before this

    def run(self) -> str:
        text, pos, search = self.text, 0, _TOKEN.search
        # Where each token was last seen (and the depth then): text from there to the same
        # token again, at the same depth, that is written several times more right after is
        # a page of a million copies; it is read in a few steps (see `_copies`).
        seen: dict[str, tuple[int, int]] = {}
        stack, wait, deep, read, half = self.model.stack, 0, 0, 0, self.max_depth // 2
        opened = ""  # the element the token before pushed, if any
        while (found := search(text, pos)) is not None:
            start = found.start()
            if start > pos:
                self.model.text()
            depth = len(stack)
            if (depth >= half and (deep := deep + 1) > DEEP_TOKENS) \
                    or self.model.recreated > RECREATED or (read := read + 1) > READ_TOKENS:
                # A page that spent so many tags deep down, or that made the parser re-open
                # so many formatting elements (a few open ones, then "<p>t" a million
                # times), is hostile, no doubt; one of over half a million tags is past
                # what reading it may cost (its links and text are kept).
                rest = _stripped(text, start, self.model.in_foreign())
                self.edits.append((start, len(text), rest))
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
            if name is not None and self._fast(end_tag, (name := name.lower()), start,
                                               found.end()):
                pos = _same_after(text, self.model, name, end_tag=end_tag, opened=opened,
                                 pos=found.end())
                opened = "" if end_tag else name
                continue
            opened = ""
            pos = self._step(found, start)
            if pos < 0:
                break  # a tag that never ends: the rest of the page is inside it
        return _apply(self.text, self.edits, 0, len(self.text)) if self.edits else self.text

    def _fast(self, end_tag: str, name: str, start: int, end: int) -> bool:
        """Read the token if it is a plain case; False leaves it to `_step`, which reads
        every case the same way (this only saves calls)."""
        model = self.model
        stack = model.stack
        if end_tag:
            if not stack or stack[-1].name != name or name in _NOT_POPPED_TO \
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
            self._edit(start, end)
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

    def _step(self, found: re.Match[str], pos: int) -> int:
        """Read the token `found` (text since `pos` before it); where to go on, -1 to stop."""
        model, start = self.model, found.start()
        if start > pos:
            self.model.text()
        end_tag, name, self_closing, never_ends, _ = found.groups()
        if name is None:
            if never_ends:
                return -1
            return _skip_declaration(self.text, start, self.model.in_foreign())
        end, name = found.end(), name.lower()
        if end_tag:
            return self._end_tag(name, start, end)
        if len(model.stack) >= self.max_depth and (name not in KEPT_AT_CAP
                                                   or model.in_foreign()):
            self.dropped[name] = self.dropped.get(name, 0) + 1  # past the cap: left out
            self._edit(start, end)
            return end
        return self._start_tag(name, bool(self_closing), start, end)

    def _copies(self, unit_start: int, pos: int) -> tuple[int, bool]:
        """text[unit_start:pos] comes again at `pos`. Read that copy; if the model is then
        as before it (start tags left out past the cap aside), every further copy does the
        same (reading is deterministic), and they are passed over at once, with the copy's
        edits repeated. Returns where to go on, and whether copies were passed over."""
        text, size = self.text, pos - unit_start
        before, dropped = self.model.snapshot(), dict(self.dropped)
        recreated = self.model.recreated
        edits, self._barrier = len(self.edits), pos
        copy_end, at = pos + size, pos
        while at < copy_end and (found := _TOKEN.search(text, at)) is not None \
                and found.start() < copy_end:
            at = self._step(found, at)
            if at < 0:
                return len(text), False
        if at < copy_end and _TOKEN.search(text, at, copy_end) is None:
            self.model.text()  # the copy ends in text
            at = copy_end
        if at != copy_end or self.model.snapshot() != before:
            return max(at, copy_end), False
        grown = {k: v - dropped.get(k, 0) for k, v in self.dropped.items()
                 if v != dropped.get(k, 0)}
        # A count that grows must not be one an end tag in the copy reads.
        if grown and grown.keys() & {n.lower() for n in _END_NAMES.findall(text, pos, at)}:
            return at, False
        more = _repeats(text, text[pos:copy_end], copy_end)
        per_copy = self.model.recreated - recreated
        if per_copy:  # copies that re-open elements are passed over to the limit, no further
            more = min(more, max(0, RECREATED - self.model.recreated) // per_copy + 1)
            self.model.recreated += per_copy * more
        for name, step in grown.items():
            self.dropped[name] += step * more
        copy = _apply(text, self.edits[edits:], pos, copy_end)
        if more and copy != text[pos:copy_end]:
            self.edits.append((copy_end, copy_end + size * more, copy * more))
        return copy_end + size * more, True

    def _edit(self, start: int, end: int, replacement: str = "") -> None:
        """Replace text[start:end] (a cut joins the cut before it when they touch)."""
        edits = self.edits
        if not replacement and edits and edits[-1][1] == start and not edits[-1][2] \
                and edits[-1][0] >= self._barrier:
            edits[-1] = (edits[-1][0], end, "")
        else:
            edits.append((start, end, replacement))

    def _start_tag(self, name: str, self_closing: bool, start: int, end: int) -> int:
        model = self.model
        if name in FORMATTING and name != "a" and len(model.frames[-1]) >= MAX_FORMATTING:
            # Decided before anything else: a tag left out must change nothing in the model.
            self.dropped[name] = self.dropped.get(name, 0) + 1
            self._edit(start, end)
            return end
        if model.in_foreign():
            if name not in BREAKOUT and (name != "font" or not _attributes(
                    self.text, start, end).keys() & {"color", "face", "size"}):
                if not self_closing:
                    namespace = model.stack[-1].foreign
                    model.push(name, namespace, None,
                               _integration(self.text, namespace, name, start, end))
                return end
            model.break_out()
        if name in VOID:
            model.reconstruct()
            return end
        if name in RAW or name in {"script", "plaintext"}:
            model.reconstruct()  # pushed and popped at once: it holds no elements
            return _raw_text_end(self.text, name, end)
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
            taken = 1 + min(pending - 1, _repeats(text, text[start:end], end))
            self.dropped[name] = pending - taken
            end = start + (end - start) * taken
            self._edit(start, end)
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
        target = -1 if name in _NOT_POPPED_TO else self.model.pop_target(name)
        if target >= 0:
            model.pop_to(target)
        elif len(model.stack) == depth >= self.max_depth // 2:
            # Unmatched: the parser would search the deep stack for it, then ignore it (or add
            # an empty <p> or <br>). Left out, that search is not paid for; copies too.
            end += (end - start) * _repeats(text, text[start:end], end)
            self._edit(start, end)
        return end



def _skip_declaration(text: str, start: int, foreign: bool) -> int:
    """Past a comment, doctype, CDATA section or bogus comment starting at `start`."""
    if text.startswith("</", start):  # "</>" is nothing, "</1...>" a bogus comment
        end = text.find(">", start)
        return len(text) if end < 0 else end + 1
    if text.startswith("<!--", start):
        if text.startswith(">", start + 4) or text.startswith("->", start + 4):
            return start + (5 if text[start + 4] == ">" else 6)  # <!--> and <!--->
        found = _COMMENT_END.search(text, start + 4)
        return len(text) if found is None else found.end()
    if text.startswith("<![CDATA[", start) and foreign:
        end = text.find("]]>", start + 9)
        return len(text) if end < 0 else end + 3
    end = text.find(">", start + 2)
    return len(text) if end < 0 else end + 1


def _raw_text_end(text: str, name: str, end: int) -> int:
    """Past the content of <script>, <style>, <title>, ... and their end tag. The element
    is pushed and popped at once: it cannot hold other elements."""
    if name == "plaintext":
        return len(text)
    if name == "script":
        return _script_end(text, end)
    closing = re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE).search(text, end)
    if closing is None:
        return len(text)
    tag = _TAG.match(text, closing.start())
    return len(text) if tag is None else tag.end()


def _script_end(text: str, pos: int) -> int:
    """The end of a script's content, through its escape states (a "<!--" with a nested
    "<script>" keeps the first "</script>" from ending it)."""
    escaped = double = False
    while (mark := _SCRIPT_MARK.search(text, pos)) is not None:
        pos = mark.end()
        token = mark.group(0)
        if token == "<!--":
            if not escaped:
                escaped = True
                pos -= 2  # its dashes may end it: "<!-->" and "<!--->" open and close
        elif token == "-->":
            escaped = double = False
        elif mark.group(1):  # </script
            if not double:
                tag = _TAG.match(text, mark.start())
                return len(text) if tag is None else tag.end()
            double = False
            pos = mark.start() + 8
        elif escaped:  # <script inside "<!--": its "</script>" does not end this one
            double = True
            pos = mark.start() + 7
    return len(text)


def _attributes(text: str, start: int, end: int) -> dict[str, str]:
    """The attributes of the tag text[start:end], names lower-cased."""
    return {m.group(1).lower(): (m.group(2) or "").strip("\"'")
            for m in _ATTRIBUTE.finditer(text, start, end)}


def _integration(text: str, namespace: str, name: str, start: int, end: int) -> bool:
    """Whether a foreign element's content is read as HTML (<foreignObject>, <mi>, ...)."""
    if namespace == "svg":
        return name in ("foreignobject", "desc", "title")
    if name == "annotation-xml":
        encoding = _attributes(text, start, end).get("encoding", "").lower()
        return encoding in ("text/html", "application/xhtml+xml")
    return name in ("mi", "mo", "mn", "ms", "mtext")


def _same_after(text: str, model: _Model, name: str, *, end_tag: str, opened: str,
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
                rf"(?:[^<]*+<{re.escape(name)}(?:[\t\n\f\r /]{_ATTRIBUTES})?>[^<]*+"
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


def _apply(text: str, edits: list[tuple[int, int, str]], start: int, end: int) -> str:
    """text[start:end] with the edits (all within it, in order) made."""
    parts, last = [], start
    for cut_start, cut_end, replacement in edits:
        parts.append(text[last:cut_start])
        parts.append(replacement)
        last = cut_end
    parts.append(text[last:end])
    return "".join(parts)


def _repeats(text: str, unit: str, pos: int) -> int:
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


DEEP_ABOVE = 50_000
"""Tags a page must have before its nesting alone can cost lexbor much: 50,000 nested
elements, the worst shape, take it about 2 s (2 to 5 s on this VM, by its load). Fewer
tags are read by `flatten` only for their formatting elements (see `defused`)."""
# A formatting start tag, attributes and all (quoted values may hold ">"). The letter class
# is every formatting element's first letter; names are checked after.
_FORMATTING_START = re.compile(r"<[bcefinstuBCEFINSTU][^\t\n\f\r />]*+" + _ATTRIBUTES + r"/?>")
_TAG_NAME = re.compile(r"<([^\t\n\f\r />]+)")
_COUNTED = FORMATTING - {"a"}
RECREATED = 500_000
"""Elements the re-opening of formatting elements may make, at most, before a page is read
by `flatten` (about 200 MB of lexbor's tree, at the 390 bytes an element it takes)."""


def defused(text: str) -> str:
    """The markup to give lexbor: `text` itself when its shape cannot cost much, else
    `flatten(text)`. Reading a page as `flatten` does costs several times lexbor's own
    parse, so ordinary pages must not pay it. Two bounds decide, both counted, not parsed:

    - depth: no more elements can be open than there are tags, so a page of DEEP_ABOVE
      tags or fewer cannot nest deeply enough to cost much;
    - re-opening: the formatting elements the parser re-opens after a block closed them
      are its list of active ones, which holds at most three alike ("Noah's Ark") of each
      distinct start tag, and each tag can make it re-open them all once. Ordinary pages
      have a handful of distinct ones (<code>, <em>, <b class=x>); the bomb has thousands.
    """
    tags = text.count("<")
    if tags <= max(MAX_DEPTH, FLATTEN_ABOVE):
        return text
    if tags <= DEEP_ABOVE and (3 * _formatting_kinds(text) + 1) * tags <= RECREATED:
        return text
    return _Flattener(text, MAX_DEPTH).run()  # `flatten` without counting the tags again


def _formatting_kinds(text: str) -> int:
    """Distinct formatting start tags (<a> left out: a new <a> closes the open one, so the
    list holds one at most; `defused` counts it on its own). Tags in
    comments, scripts or attribute values only add to the count: it stays an upper bound."""
    return sum(1 for tag in set(_FORMATTING_START.findall(text))
               if (name := _TAG_NAME.match(tag)) and name.group(1).lower() in _COUNTED)


def flatten(text: str, max_depth: int = MAX_DEPTH, *, above: int = FLATTEN_ABOVE) -> str:
    """The markup with start tags past `max_depth` left out (see the module's docstring);
    the text itself when nothing was. A page of `above` tags or fewer is not read."""
    if text.count("<") <= max(max_depth, above):
        return text
    return _Flattener(text, max_depth).run()
