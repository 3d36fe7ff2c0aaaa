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
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


MAX_DEPTH = 512
MAX_FORMATTING = 32  # open formatting elements (<b>, <font>, ...) since the last table cell

_WS = "\t\n\f\r "
# A whole tag as the tokenizer reads it (attribute values in quotes may hold "<" and ">"),
# else what else "<" starts: a tag that never ends, a declaration or comment, or "</" junk.
_ATTRIBUTES = (r"(?:[\t\n\f\r ]++|/(?!>)|[^\t\n\f\r />][^\t\n\f\r />=]*+"
               r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"|'[^']*+'|(?=>)"
               r"|[^\t\n\f\r >\"'][^\t\n\f\r >]*+))?)*+")
_TAG = re.compile(rf"<(/?)([A-Za-z][^\t\n\f\r />]*+){_ATTRIBUTES}(/?)>")
KEPT_AT_CAP = _names(  # start tags kept past the cap: they add no depth, or cannot nest
    "a area base basefont bgsound br col embed frame image img input keygen link meta param "
    "source track wbr style iframe noembed noframes textarea title script plaintext")
# Start tags, back to back, that the cap leaves out (no text between: one cut for all).
_DROPPABLE_RUN = re.compile(
    rf"(?:<(?!(?i:{'|'.join(sorted(KEPT_AT_CAP))})[\t\n\f\r />])[A-Za-z][^\t\n\f\r />]*+"
    rf"{_ATTRIBUTES}/?>)++")
_NOT_POPPED_TO = frozenset({"html", "body", "br", "form"})
_TOKEN = re.compile(rf"<(?:(/?)([A-Za-z][^\t\n\f\r />]*+){_ATTRIBUTES}(/?)>|([A-Za-z])|([!?/]))")
_SCRIPT_MARK = re.compile(r"<!--|-->|<(/?)script[\t\n\f\r />]", re.IGNORECASE)

VOID = _names("area base basefont bgsound br col embed frame hr image img input keygen "
                 "link meta param source track wbr")
RAW = _names("style xmp iframe noembed noframes textarea title")
FORMATTING = _names("a b big code em font i nobr s small strike strong tt u")
MARKERS = _names("applet marquee object template td th caption")
# Elements that end the "in scope" search, and those of table scope.
BOUNDARY = _names("applet caption html table td th marquee object template mi mo mn ms "
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
INTEGRATION = _names("foreignobject desc title mi mo mn ms mtext")
# Groups whose topmost open element the scope checks ask for, in O(1).
_GROUPS = {"boundary": BOUNDARY, "table": TABLE_BOUNDARY, "special": SPECIAL,
           "heading": HEADINGS, "list": frozenset({"ol", "ul"}), "button": frozenset({"button"})}
_GROUPS_OF = {name: tuple(g for g, names in _GROUPS.items() if name in names)
              for names in _GROUPS.values() for name in names}
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_COMMENT_END = re.compile(r"--!?>")


@dataclass(slots=True)
class _Entry:
    """A formatting element in the list of active formatting elements."""

    name: str
    on_stack: bool = True


@dataclass(slots=True)
class _Element:
    name: str
    foreign: bool  # SVG or MathML, whose <style>, <title> and <script> are not raw text
    entry: _Entry | None = None


@dataclass(slots=True)
class _Model:
    """The parser's stack of open elements, with positions by name for O(1) scope checks."""

    stack: list[_Element] = field(default_factory=list)
    where: dict[str, list[int]] = field(default_factory=dict)
    groups: dict[str, list[int]] = field(default_factory=lambda: {g: [] for g in _GROUPS})
    frames: list[list[_Entry]] = field(default_factory=lambda: [[]])

    def top_is(self, name: str) -> bool:
        return bool(self.stack) and self.stack[-1].name == name

    def last(self, name: str) -> int:
        found = self.where.get(name)
        return found[-1] if found else -1

    def last_of(self, group: str) -> int:
        found = self.groups[group]
        return found[-1] if found else -1

    def push(self, name: str, foreign: bool, entry: _Entry | None = None) -> None:
        position = len(self.stack)
        self.where.setdefault(name, []).append(position)
        for group in _GROUPS_OF.get(name, ()):
            self.groups[group].append(position)
        self.stack.append(_Element(name, foreign, entry))
        if name in MARKERS:
            self.frames.append([])

    def pop(self) -> None:
        element = self.stack.pop()
        self.where[element.name].pop()
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
        """Whether the next tag is read as SVG/MathML content (not an integration point)."""
        return bool(self.stack) and self.stack[-1].foreign \
            and self.stack[-1].name not in INTEGRATION

    def reconstruct(self) -> None:
        """Re-open the formatting elements a block's end closed (the parser does this before
        text and most start tags): the tail of the list that is off the stack."""
        frame = self.frames[-1]
        start = len(frame)
        while start > 0 and not frame[start - 1].on_stack:
            start -= 1
        for entry in frame[start:]:
            entry.on_stack = True
            self.push(entry.name, False, entry)


class _Flattener:
    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.max_depth = max_depth
        self.model = _Model()
        self.dropped: dict[str, int] = {}  # start tags left out, by name: their end tags go too
        self.cuts: list[tuple[int, int]] = []

    def run(self) -> str:
        text, pos = self.text, 0
        token = _TOKEN.search
        model, stack, cap, dropped = self.model, self.model.stack, self.max_depth, self.dropped
        while (found := token(text, pos)) is not None:
            start = found.start()
            if start > pos:
                frame = model.frames[-1]
                if frame and not frame[-1].on_stack:
                    model.reconstruct()  # text: the parser re-opens formatting elements
            end_tag, name, _, never_ends, _ = found.groups()
            if name is None:
                if never_ends:
                    break  # a tag that never ends: the rest of the page is inside it
                pos = self._skip_declaration(start)
                continue
            pos = found.end()
            name = name.lower()
            if end_tag:
                pos = self._end_tag(name, start, pos)
            elif len(stack) >= cap and name not in KEPT_AT_CAP:
                pos = self._drop(name, start, pos)  # the common case of a hostile page
            else:
                tag_end = pos
                pos = self._start_tag(name, bool(found.group(3)), start, pos)
                if pos == tag_end and (name == "a" or name in VOID):
                    # Copies that follow change nothing more: an <a> closes the one before.
                    pos += (pos - start) * _repeats(text, text[start:pos], pos)
        if not self.cuts:
            return text
        parts, last = [], 0
        for cut_start, cut_end in self.cuts:
            parts.append(text[last:cut_start])
            last = cut_end
        parts.append(text[last:])
        return "".join(parts)

    def _cut(self, start: int, end: int) -> None:
        """Leave out text[start:end] (joined to the cut before it when they touch)."""
        cuts = self.cuts
        if cuts and cuts[-1][1] == start:
            cuts[-1] = (cuts[-1][0], end)
        else:
            cuts.append((start, end))

    def _drop(self, name: str, start: int, end: int) -> int:
        """Leave out a start tag past the cap, and the copies of it (or of it and its end
        tag) that follow, and any other start tags the cap refuses right after it, all at
        once. Returns where the cut ends."""
        text, dropped = self.text, self.dropped
        unit = text[start:end]
        copies = _repeats(text, unit, end)
        dropped[name] = dropped.get(name, 0) + 1 + copies
        end += len(unit) * copies
        if text.startswith("</", end):
            closing = _TAG.match(text, end)
            if closing is not None and closing.group(1) and closing.group(2).lower() == name:
                # <x></x>, <x></x>, ...: each pair leaves nothing behind
                pair = text[end - len(unit) : closing.end()]
                dropped[name] -= 1
                end = closing.end() + len(pair) * _repeats(text, pair, closing.end())
        elif text.startswith("<", end) and text[end + 1 : end + 2] in _ALPHA:
            end = self._drop_run(end)
        self._cut(start, end)
        return end

    def _drop_run(self, start: int) -> int:
        """Leave out the start tags from `start` on that the cap refuses, back to back, all
        at once; their end tags go too. Returns where the run ends."""
        text = self.text
        run = _DROPPABLE_RUN.match(text, start)
        if run is None:
            return start
        end = run.end()
        names = map(str.lower, map(itemgetter(1), _TAG.findall(text, start, end)))
        for name, count in Counter(names).items():
            self.dropped[name] = self.dropped.get(name, 0) + count
        self._cut(start, end)
        return end

    def _skip_declaration(self, start: int) -> int:
        """Past a comment, doctype, CDATA section or bogus comment starting at `start`."""
        text = self.text
        if text.startswith("</", start):  # "</>" is nothing, "</1...>" a bogus comment
            end = text.find(">", start)
            return len(text) if end < 0 else end + 1
        if text.startswith("<!--", start):
            if text.startswith(">", start + 4) or text.startswith("->", start + 4):
                return start + (5 if text[start + 4] == ">" else 6)  # <!--> and <!--->
            found = _COMMENT_END.search(text, start + 4)
            return len(text) if found is None else found.end()
        if text.startswith("<![CDATA[", start) and self.model.in_foreign():
            end = text.find("]]>", start + 9)
            return len(text) if end < 0 else end + 3
        end = text.find(">", start + 2)
        return len(text) if end < 0 else end + 1

    def _start_tag(self, name: str, self_closing: bool, start: int, end: int) -> int:
        model = self.model
        foreign = model.in_foreign()
        if foreign:
            if not self_closing:
                self._push_or_drop(name, True, start, end)
            return end
        if name in VOID:
            model.reconstruct()
            return end
        if name in RAW or name in {"script", "plaintext"}:
            return self._raw_text(name, end)
        self._implied_closes(name)
        if name in FOREIGN_ROOTS:
            if not self_closing:
                self._push_or_drop(name, True, start, end)
            return end
        if name in FORMATTING:
            self._formatting(name, start, end)
            return end
        if name not in CLOSES_P and name not in TABLE_PARTS:
            model.reconstruct()
        self._push_or_drop(name, False, start, end)
        return end

    def _push_or_drop(self, name: str, foreign: bool, start: int, end: int,
                      entry: _Entry | None = None) -> bool:
        model = self.model
        implied: tuple[str, ...] = ()
        if name in ("td", "th", "tr") and model.stack:
            parent = model.stack[-1].name  # cells and rows get the parents they lack
            if parent == "table":
                implied = ("tbody",) if name == "tr" else ("tbody", "tr")
            elif parent in ("tbody", "thead", "tfoot") and name != "tr":
                implied = ("tr",)
        if len(model.stack) + len(implied) >= self.max_depth:
            self.dropped[name] = self.dropped.get(name, 0) + 1
            self._cut(start, end)
            return False
        for parent in implied:
            model.push(parent, False)
        model.push(name, foreign, entry)
        return True

    def _formatting(self, name: str, start: int, end: int) -> None:
        model = self.model
        frame = model.frames[-1]
        if name == "a":
            # An open <a> is closed by the next: links never nest, so one is always kept.
            old = next((e for e in reversed(frame) if e.name == "a"), None)
            if old is not None:
                frame.remove(old)
                if model.top_is("a") and model.stack[-1].entry is old:
                    model.pop()
        elif len(frame) >= MAX_FORMATTING:
            self.dropped[name] = self.dropped.get(name, 0) + 1
            self._cut(start, end)
            return
        model.reconstruct()
        entry = _Entry(name)
        if name == "a" and len(model.stack) >= self.max_depth:
            model.push(name, False, entry)  # kept past the cap: <a> cannot nest in <a>
            frame.append(entry)
        elif self._push_or_drop(name, False, start, end, entry):
            frame.append(entry)

    def _implied_closes(self, name: str) -> None:
        """What a start tag surely closes first (only the sure cases: the model must never
        be shallower than the parser's stack)."""
        model = self.model
        if name in CLOSES_P:
            self._close_p()
        if name in {"li", "dd", "dt"}:
            if model.stack and model.stack[-1].name in ("li", "dd", "dt") and \
                    (name == "li") == (model.stack[-1].name == "li"):
                model.pop()
        elif name in HEADINGS:
            if model.stack and model.stack[-1].name in HEADINGS:
                model.pop()
        elif name in {"option", "optgroup"}:
            if model.top_is("option"):
                model.pop()
            if name == "optgroup" and model.top_is("optgroup"):
                model.pop()
        elif name in ("td", "th", "tr", "tbody", "thead", "tfoot"):
            if model.stack and model.stack[-1].name in ("td", "th"):
                model.pop()
            if name not in {"td", "th"}:
                if model.top_is("tr"):
                    model.pop()
                if name != "tr" and model.stack and \
                        model.stack[-1].name in ("tbody", "thead", "tfoot"):
                    model.pop()

    def _close_p(self) -> None:
        model = self.model
        p = model.last("p")
        if p >= 0 and p > max(model.last_of("boundary"), model.last("button")):
            model.pop_to(p)

    def _end_tag(self, name: str, start: int, end: int) -> int:
        """Returns where to go on from (past copies of this end tag treated at once)."""
        model, text = self.model, self.text
        pending = self.dropped.get(name)
        if pending:  # the end of a start tag left out: left out too, and its copies
            taken = 1 + min(pending - 1, _repeats(text, text[start:end], end))
            self.dropped[name] = pending - taken
            end = start + (end - start) * taken
            self._cut(start, end)
            return end
        if model.top_is(name) and name not in {"html", "body"}:
            element = model.stack[-1]
            if element.entry is not None and element.entry in model.frames[-1]:
                model.frames[-1].remove(element.entry)  # closed by its own end tag
            model.pop()
            return end
        # The parser does not pop html, body or br, and a </form> may take one from the middle.
        target = -1 if name in _NOT_POPPED_TO else self._pop_target(name)
        if target >= 0:
            model.pop_to(target)
        elif len(model.stack) >= self.max_depth // 2:
            # Unmatched: the parser would search the deep stack for it, then ignore it (or add
            # an empty <p> or <br>). Left out, that search is not paid for; copies too.
            end += (end - start) * _repeats(text, text[start:end], end)
            self._cut(start, end)
        return end

    def _pop_target(self, name: str) -> int:
        """Where the parser surely pops to for this end tag (not the top), or -1."""
        model = self.model
        if name in FORMATTING:
            return -1  # the adoption agency: it may keep what is above; popping nothing is sure
        # The topmost element of a group may be the target itself: only those above it
        # block (positions grow up the stack).
        if name in HEADINGS:
            found = model.last_of("heading")
            return found if found >= 0 and model.last_of("boundary") <= found else -1
        found = model.last(name)
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
        return -1 if any(model.last_of(g) > found for g in blocking) else found

    def _raw_text(self, name: str, end: int) -> int:
        """Past the content of <script>, <style>, <title>, ... and their end tag. The element
        is pushed and popped at once: it cannot hold other elements."""
        text = self.text
        self.model.reconstruct()
        if name == "plaintext":
            return len(text)
        if name == "script":
            return self._script_end(end)
        closing = re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE).search(text, end)
        if closing is None:
            return len(text)
        tag = _TAG.match(text, closing.start())
        return len(text) if tag is None else tag.end()

    def _script_end(self, pos: int) -> int:
        """The end of a script's content, through its escape states (a "<!--" with a nested
        "<script>" keeps the first "</script>" from ending it)."""
        text = self.text
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


def flatten(text: str, max_depth: int = MAX_DEPTH) -> str:
    """The markup with start tags past `max_depth` left out (see the module's docstring);
    the text itself when nothing was. A page of fewer tags than that is never read."""
    if text.count("<") <= max_depth:
        return text
    return _Flattener(text, max_depth).run()
