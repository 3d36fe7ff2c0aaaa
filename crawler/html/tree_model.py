"""A model of the HTML parser's stack of open elements and list of active formatting
elements, kept by the nesting cap as it reads a page. It only ever pops what the parser
surely pops, so it is never shallower than the tree lexbor builds."""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.html.elements import (
    CLOSES_P,
    FORMATTING,
    GROUPS,
    GROUPS_OF,
    HEADINGS,
    MARKERS,
    POPS_TO,
    TABLE_PARTS,
)


@dataclass(slots=True, eq=False)  # compared by identity: one per formatting element
class Entry:
    """A formatting element in the list of active formatting elements."""

    name: str
    on_stack: bool = True


@dataclass(slots=True)
class Element:
    name: str
    foreign: str  # "svg" or "math" ("" for HTML): there <style> and <script> are not raw text
    entry: Entry | None = None
    integration: bool = False  # foreign, but what it holds is read as HTML (<foreignObject>)


@dataclass(slots=True)
class TreeModel:
    """The parser's stack of open elements, with positions by name for O(1) scope checks."""

    stack: list[Element] = field(default_factory=list)
    where: dict[str, list[int]] = field(default_factory=dict)
    groups: dict[str, list[int]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    frames: list[list[Entry]] = field(default_factory=lambda: [[]])
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

    def push(self, name: str, foreign: str = "", entry: Entry | None = None,
             integration: bool = False) -> None:
        position = len(self.stack)
        self.where.setdefault(name, []).append(position)
        if foreign:
            self.stack.append(Element(name, foreign, entry, integration))
            return  # foreign elements are in no group, and are no markers
        self.html.append(position)
        for group in GROUPS_OF.get(name, ()):
            self.groups[group].append(position)
        self.stack.append(Element(name, foreign, entry))
        if name in MARKERS:
            self.frames.append([])

    def pop(self) -> None:
        element = self.stack.pop()
        self.where[element.name].pop()
        if element.foreign:
            return
        self.html.pop()
        for group in GROUPS_OF.get(element.name, ()):
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

    def push_html(self, name: str, entry: Entry | None = None) -> None:
        """Push an HTML element, with the table parents the parser adds. Past the cap only
        by what the tag's own effects added (re-opened formatting elements): a tag is left
        out before it changes anything, by the reader (`TagReader.step`)."""
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
            # the cap (see elements.KEPT_AT_CAP).
            old = next((e for e in reversed(frame) if e.name == "a"), None)
            if old is not None:
                frame.remove(old)
                if self.top_is("a") and self.stack[-1].entry is old:
                    self.pop()
        self.reconstruct()
        entry = Entry(name)
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
