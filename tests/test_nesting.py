"""The nesting cap (crawler/html/nesting.py): hostile nesting is flattened before lexbor builds
its tree, and markup that needs no flattening comes back exactly as it was."""

from __future__ import annotations

import random

import pytest
from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler.html import flattener, nesting
from crawler.html.nesting import flatten
from crawler.html.tags import MAX_FORMATTING


def _depth(html: str) -> int:
    """The depth of the tree lexbor builds (html is 1)."""
    tree = LexborHTMLParser(html)
    assert tree.root is not None
    best, todo = 0, [(tree.root, 1)]
    while todo:
        node, depth = todo.pop()
        best = max(best, depth)
        todo.extend((child, depth + 1) for child in node.iter())
    return best


def _links(html: str) -> list[str | None]:
    return [a.attrs.get("href") for a in LexborHTMLParser(html).tags("a")]


def _title(html: str) -> str | None:
    node: LexborNode | None = LexborHTMLParser(html).css_first("title")
    return None if node is None else node.text()


# Markup whose reading depends on the tokenizer's states: comments, raw text, script escapes,
# quoted attributes with < and >, foreign content (SVG's <style> holds tags), CDATA.
TRICKY = """<!DOCTYPE html><html><head><title>T <b>not a tag</b></title>
<style>div > a { color: red } </div></div></style>
<script>if (a < b && c > d) document.write("</div><div>"); // <a href="/no1">
var s = "<!--<script>"; </script> still script </script>
<script><!-- <script> </script> --> </script>
<textarea></div><a href="/no2">x</a></textarea>
</head><body class='a>b' data-x="<div>">
<!-- <div><div><a href="/no3"> --><!--> <a href="/yes1">1</a> <!---> <a href="/yes2">2</a>
<p title="</p><div>">para <a href='/yes3' title='>'>3</a>
<svg><style><a href="/svg-style">s</a></style><![CDATA[<div>]]><g/><a href="/in-svg">4</a></svg>
<math><mi><style><a href="/no4"></a></style></mi></math>
<table><tr><td><a href="/cell">5</a><td>6</table>
<ul><li>one<li>two<a href="/li">7</a></ul>
<div a=1 b="2" c='3' d=e/f></div><br/><img src="x>y"><a href=/unquoted>8</a>
<xmp><a href="/no5"></xmp><iframe><a href="/no6"></iframe>
<noscript><a href="/noscript">9</a></noscript>
<? bogus ?><!bogus><a href="/yes4">10</a></ 1><a href="/yes5">11</a>
<plaintext><a href="/no7"></plaintext>"""


def _padded(html: str, tags: int = 1500) -> str:
    """The same page with enough extra (balanced) tags that `flatten` reads it."""
    return html.replace("<body", "<body><div>" + "<span>x</span>" * tags + "</div><x", 1) \
        .replace("<x class", " class", 1)


def test_normal_markup_comes_back_unchanged_with_the_same_links_and_title() -> None:
    page = _padded(TRICKY)
    assert page.count("<") > nesting.FLATTEN_ABOVE
    assert flatten(page) is page, "nothing to flatten: the very same text"
    for cap in (64, 512):  # read to the end at a cap it never reaches
        assert flatten(page, cap, above=0) is page
    assert "/yes5" in _links(page) and "/no7" not in _links(page)


@pytest.mark.parametrize("cap", [8, 12, 24])
def test_tricky_markup_under_a_low_cap_keeps_its_links_and_title(cap: int) -> None:
    # Past the cap an <svg> is left out like any element, and what it held is read as
    # HTML: the SVG and MathML lines are left out here.
    head, body = TRICKY.split("<body", 1)
    body = "\n".join(line for line in body.split("\n") if "<svg>" not in line
                     and "<math>" not in line)
    page = head + "<body" + "<div>" * 40 + body
    flat = flatten(page, cap, above=0)
    assert flat != page
    assert _depth(flat) <= cap + 4  # html, head/body, and the <a> kept past the cap
    assert _links(flat) == _links(page)
    assert _title(flat) == _title(page) == "T <b>not a tag</b>"


def test_a_hundred_thousand_nested_divs_are_capped_and_keep_their_link() -> None:
    page = ("<html><head><title>deep</title></head><body>" + "<div>" * 100_000
            + '<a href="/deep">d</a>' + "</div>" * 100_000 + '<a href="/after">a</a>')
    flat = flatten(page)
    assert len(flat) < 10_000, "the tags past the cap and their end tags are left out"
    assert _depth(flat) <= nesting.MAX_DEPTH + 2
    assert _links(flat) == ["/deep", "/after"]
    assert _title(flat) == "deep"


def test_the_formatting_reconstruction_bomb_is_defused() -> None:
    # A <div> closes 3,000 open formatting elements, and the next text re-opens them all:
    # 3,000 rounds made 9,000,000 elements (about 3.5 GB) out of 60 KB.
    rounds = 3_000
    page = ("<html><body>" + "<div>" * rounds
            + "".join(f"<b a={n}>" for n in range(rounds)) + "</div>x" * rounds)
    flat = flatten(page)
    elements = len(LexborHTMLParser(flat).css("*"))
    assert elements < rounds * (MAX_FORMATTING + 2)


def test_copies_are_passed_over_exactly_as_if_read_one_by_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    units = ["<div>", "<div>x", "<ul><li>", "<div></div>", "<a href=/x>y", "<br>",
             "<i></div>", "<b><table></b></table>", "</span>", "<p>t"]
    pages = ["<html><body>" + "<div>" * 520 + unit * 3000 + "<a href=/end>e</a>"
             for unit in units]
    fast = [flatten(page, above=0) for page in pages]
    monkeypatch.setattr(flattener, "MAX_UNIT", 0)  # no copies looked for: token by token
    slow = [flatten(page, above=0) for page in pages]
    assert fast == slow


def _soup(rng: random.Random, tokens: int) -> str:
    tags = ["div", "span", "b", "i", "a", "p", "li", "ul", "table", "tr", "td", "em", "font",
            "nobr", "button", "select", "option", "form", "h1", "h2", "svg", "math", "g",
            "mi", "foreignObject", "desc", "title", "style", "script", "textarea", "template",
            "caption", "dd", "object", "marquee", "section", "q", "code", "xmp", "plaintext",
            "html", "body", "br", "img", "hr", "col", "annotation-xml"]
    attrs = ["", " a=1", ' x="<div>"', " y='</b>'", " z=a>b", " color=red",
             " encoding=text/html"]
    other = ["<!--", "-->", "<!-- c -->", "<![CDATA[x]]>", "<!x>", "<?p>", "</ x>", "</>",
             "a < b", "<script><!--<script>", "</script>", "<svg><style>", "x", " "]
    out = []
    for _ in range(tokens):
        r, tag = rng.random(), rng.choice(tags)
        if r < 0.6:
            out.append(f"<{tag}{rng.choice(attrs)}>")
        elif r < 0.85:
            out.append(f"</{tag}>")
        else:
            out.append(rng.choice(other))
    return "".join(out)


@pytest.mark.parametrize("deep_tokens", [flattener.DEEP_TOKENS, 50])
def test_random_tag_soup_never_builds_much_past_the_cap(
        monkeypatch: pytest.MonkeyPatch, deep_tokens: int) -> None:
    # The model of the parser's stack must never be shallower than lexbor's: if it were,
    # some soup would go deep. 600 seeded pages, against lexbor itself; and again with the
    # rest of a page stripped early (what a page of 100,000 deep tags gets).
    monkeypatch.setattr(flattener, "DEEP_TOKENS", deep_tokens)
    cap, deepest = 24, 0
    for seed in range(600):
        rng = random.Random(seed)
        page = _soup(rng, rng.choice([300, 1500, 3000]))
        deepest = max(deepest, _depth(flatten(page, cap, above=0)))
    assert deepest <= 2 * cap + 8, deepest


def test_a_page_deep_down_for_long_has_the_rest_of_its_tags_stripped() -> None:
    spans = "".join(f"<span a={n}></span><i b={n}>" for n in range(flattener.DEEP_TOKENS))
    page = ("<html><head><title>t</title></head><body>" + "<div>" * 600 + spans
            + "<svg>" + "<a href=/end>e</a><g>" * 1000 + "<br>x" * 10)
    flat = flatten(page)
    assert flat.count("<") < 30_000, "what comes after the first 100,000 deep tags is stripped"
    assert _depth(flat) <= nesting.MAX_DEPTH + MAX_FORMATTING + 4
    assert _links(flat)[-1] == "/end" and len(_links(flat)) == 1000


def test_floods_of_links_voids_and_pairs_are_read_as_one_by_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    floods = [lambda n: f"<a href=/{n}>{n}", lambda n: f"<br>{n}", lambda n: f"<b>{n}</b>",
              lambda n: f"<div id={n}>{n}</div>", lambda n: f"<i>{n}</i><b>",
              lambda n: f"<p>{n}<span>{n}</span>"]
    pages = ["<html><body><p><b>x</div>y" + "".join(map(flood, range(3000)))
             + "<div>" * 600 + "<a href=/end>e</a>" + "".join(map(flood, range(50)))
             for flood in floods]
    fast = [flatten(page, above=0) for page in pages]
    monkeypatch.setattr(flattener, "same_after",
                        lambda text, model, name, *, end_tag, opened, pos: pos)
    monkeypatch.setattr(flattener, "MAX_UNIT", 0)
    assert fast == [flatten(page, above=0) for page in pages]


def test_ordinary_pages_are_parsed_as_they_are_without_being_read() -> None:
    # Reading a page as `flatten` does costs several times lexbor's parse: a page of many
    # tags with nothing deep and no pile of open formatting elements must not pay it.
    page = ("<html><head><title>t</title></head><body>"
            + "".join(f'<p><a href="/p{n}">x</a> <b>bold</b> <i>it</i><br>' for n in range(5000))
            + "</body></html>")
    assert page.count("<") > nesting.DEEP_ABOVE // 2
    assert nesting.defused(page) is page


def test_shapes_that_cost_lexbor_are_flattened_before_it_parses_them() -> None:
    rounds = 3_000  # the re-opening bomb, in fewer tags than DEEP_ABOVE
    bomb = ("<html><body>" + "<div>" * rounds
            + "".join(f"<b a={n}>" for n in range(rounds)) + "</div>x" * rounds)
    assert bomb.count("<") < nesting.DEEP_ABOVE
    elements = len(LexborHTMLParser(nesting.defused(bomb)).css("*"))
    assert elements < rounds * (MAX_FORMATTING + 2)
    deep = "<div>" * (nesting.DEEP_ABOVE + 1) + '<a href="/x">x</a>'
    flat = nesting.defused(deep)
    assert _depth(flat) <= nesting.MAX_DEPTH + 3 and _links(flat) == ["/x"]  # + html, body, a


@pytest.mark.parametrize("opened", [
    "".join(f"<b class=c{k}>" for k in range(39)),  # more than MAX_FORMATTING, all distinct
    '<a href="/x">',  # one link, re-opened after every block too
])
def test_formatting_elements_are_re_opened_a_bounded_number_of_times(opened: str) -> None:
    # A few open formatting elements, then "<p>t" over and over: each <p> closes them and
    # each "t" re-opens them all. 1.2 MB of it made 9.6 million elements (3.5 GB).
    page = "<p>" + opened + "</p>" + "<p>t" * 300_000
    tree = LexborHTMLParser(nesting.defused(page))
    assert len(tree.css("*")) < 2 * nesting.RECREATED + 1_000
    assert tree.css_first("a") is not None or "href" not in opened


def test_reading_stops_after_so_many_tags_keeping_links_and_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Reading costs about 2 µs a tag: past READ_TOKENS the rest is stripped of every tag
    # but links and void elements, so no page costs more than a second or two to read.
    monkeypatch.setattr(flattener, "READ_TOKENS", 1_000)
    page = "".join(f'<p class="c{n}"><a href="/p{n}">{n}</a>' for n in range(5_000))
    flat = flatten(page, above=0)
    assert _links(flat) == [f"/p{n}" for n in range(5_000)]
    assert flat.count("<p") <= 1_000
    assert "4999" in LexborHTMLParser(flat).text()
