"""The element categories of the HTML spec's tree construction that the nesting cap's model
of the parser needs: which tags are void, raw text, formatting, markers, special, which close
a <p>, which bound a scope search. Names are lower-case, as the tokenizer gives them."""

from __future__ import annotations


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


KEPT_AT_CAP = _names(  # HTML start tags kept past the cap: no depth added, or cannot nest
    "a area base basefont bgsound br col embed frame image img input keygen link meta param "
    "source track wbr style xmp iframe noembed noframes textarea title script plaintext")
# Start tags read by `TagReader.fast`: no implied closes but a <p>'s, not raw text, not foreign, not
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
# End tags the parser never pops to (and a </form> may take its element from the middle).
NOT_POPPED_TO = frozenset({"html", "body", "br", "form"})
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
GROUPS = {"boundary": BOUNDARY, "table": TABLE_BOUNDARY, "special": SPECIAL,
          "heading": HEADINGS, "list": frozenset({"ol", "ul"}), "button": frozenset({"button"})}
GROUPS_OF = {name: tuple(g for g, names in GROUPS.items() if name in names)
             for names in GROUPS.values() for name in names}
