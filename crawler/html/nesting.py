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
passed over at once (`Flattener._copies`, `copies.same_after`), and a page that spends
100,000 tags deep down has the rest of its tags but links and void elements replaced by
spaces.

The modules, in the order a page meets them: `defused` and `flatten` here; flattener.py
reads the page and passes over copies (copies.py); tags.py reads one tag into the model of
the parser (tree_model.py), by the element categories of elements.py, finding tags with
markup.py.
"""

from __future__ import annotations

import re

from crawler.html.elements import FORMATTING
from crawler.html.flattener import RECREATED, Flattener
from crawler.html.markup import ATTRIBUTES

MAX_DEPTH = 512
# Pages of fewer tags are parsed as they are: at worst they cost lexbor milliseconds.
FLATTEN_ABOVE = 1024
DEEP_ABOVE = 50_000
"""Tags a page must have before its nesting alone can cost lexbor much: 50,000 nested
elements, the worst shape, take it about 2 s (2 to 5 s on this VM, by its load). Fewer
tags are read by `flatten` only for their formatting elements (see `defused`)."""
# A formatting start tag, attributes and all (quoted values may hold ">"). The letter class
# is every formatting element's first letter; names are checked after.
_FORMATTING_START = re.compile(r"<[bcefinstuBCEFINSTU][^\t\n\f\r />]*+" + ATTRIBUTES + r"/?>")
_TAG_NAME = re.compile(r"<([^\t\n\f\r />]+)")
_COUNTED = FORMATTING - {"a"}


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
    return Flattener(text, MAX_DEPTH).run()  # `flatten` without counting the tags again


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
    return Flattener(text, max_depth).run()
