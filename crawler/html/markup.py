"""Reading markup as the HTML tokenizer does, by position: whole tags (quoted attribute values
may hold "<" and ">"), comments and declarations, raw text (<script>, <style>, <title>, ...)
and the attributes of one tag. Nothing is built; the nesting cap reads pages with it."""

from __future__ import annotations

import re

# A whole tag as the tokenizer reads it (attribute values in quotes may hold "<" and ">"),
# else what else "<" starts: a tag that never ends, a declaration or comment, or "</" junk.
ATTRIBUTES = (r"(?:[\t\n\f\r ]++|/(?!>)|[^\t\n\f\r />][^\t\n\f\r />=]*+"
              r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"|'[^']*+'|(?=>)"
              r"|[^\t\n\f\r >\"'][^\t\n\f\r >]*+))?)*+")
TAG = re.compile(rf"<(/?)([A-Za-z][^\t\n\f\r />]*+){ATTRIBUTES}(/?)>")
TOKEN = re.compile(rf"<(?:(/?)([A-Za-z][^\t\n\f\r />]*+){ATTRIBUTES}(/?)>|([A-Za-z])|([!?/]))")
END_NAMES = re.compile(r"</([A-Za-z][^\t\n\f\r />]*)")
_ATTRIBUTE = re.compile(r"[\t\n\f\r /]([^\t\n\f\r />=][^\t\n\f\r />=]*)"
                        r"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(\"[^\"]*\"|'[^']*'|[^\t\n\f\r >]*))?")
_SCRIPT_MARK = re.compile(r"<!--|-->|<(/?)script[\t\n\f\r />]", re.IGNORECASE)
_COMMENT_END = re.compile(r"--!?>")


def skip_declaration(text: str, start: int, foreign: bool) -> int:
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


def raw_text_end(text: str, name: str, end: int) -> int:
    """Past the content of <script>, <style>, <title>, ... and their end tag. The element
    is pushed and popped at once: it cannot hold other elements."""
    if name == "plaintext":
        return len(text)
    if name == "script":
        return _script_end(text, end)
    closing = re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE).search(text, end)
    if closing is None:
        return len(text)
    tag = TAG.match(text, closing.start())
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
                tag = TAG.match(text, mark.start())
                return len(text) if tag is None else tag.end()
            double = False
            pos = mark.start() + 8
        elif escaped:  # <script inside "<!--": its "</script>" does not end this one
            double = True
            pos = mark.start() + 7
    return len(text)


def attributes(text: str, start: int, end: int) -> dict[str, str]:
    """The attributes of the tag text[start:end], names lower-cased."""
    return {m.group(1).lower(): (m.group(2) or "").strip("\"'")
            for m in _ATTRIBUTE.finditer(text, start, end)}


def integration(text: str, namespace: str, name: str, start: int, end: int) -> bool:
    """Whether a foreign element's content is read as HTML (<foreignObject>, <mi>, ...)."""
    if namespace == "svg":
        return name in ("foreignobject", "desc", "title")
    if name == "annotation-xml":
        encoding = attributes(text, start, end).get("encoding", "").lower()
        return encoding in ("text/html", "application/xhtml+xml")
    return name in ("mi", "mo", "mn", "ms", "mtext")

