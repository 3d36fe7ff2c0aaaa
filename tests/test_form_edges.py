"""Form edge cases of HTML's "constructing the entry list", each checked by what a real
server on 127.0.0.1 receives when a spider submits the page's form: the crawl runs once for
the module, and each case is one form of the page, posted to /submit?f=CASE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler import Response, Spider
from tests.crawling import crawl
from tests.sites.serve import serve

CASES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    # name: (the form's inner HTML, what the server must receive)
    "empty_values": (
        '<input type="checkbox" name="c" value="" checked>'
        '<input type="radio" name="r" value="" checked>'
        '<input type="checkbox" name="on" checked>',
        [("c", ""), ("r", ""), ("on", "on")]),
    "radio_groups": (
        '<input type="radio" name="p" value="a" checked>'
        '<input type="radio" name="q" value="x" checked>'
        '<input type="radio" name="p" value="b" checked>'
        '<input type="radio" name="p" value="c">',
        [("q", "x"), ("p", "b")]),
    "optgroups": (
        '<select name="chosen_in_group"><optgroup label="g" disabled>'
        '<option value="a" selected>A</option></optgroup><option value="b">B</option></select>'
        '<select name="first_enabled"><optgroup label="g" disabled><option value="a">A</option>'
        '</optgroup><option value="b">B</option><option value="c">C</option></select>'
        '<select name="chosen_disabled"><option value="a" selected disabled>A</option>'
        '<option value="b">B</option></select>'
        '<select name="many" multiple><optgroup label="g" disabled>'
        '<option selected>x</option></optgroup><option selected>y</option></select>',
        [("first_enabled", "b"), ("many", "y")]),
    "unselected": (
        '<select name="multi" multiple><option>a</option></select>'
        '<select name="listbox" size="3"><option>a</option></select>'
        '<select name="dropdown" size="1"><option>a</option></select>',
        [("dropdown", "a")]),
    "fieldsets": (
        '<fieldset disabled><legend><input name="in_legend" value="1"></legend>'
        '<input name="fenced" value="2"><legend><input name="second_legend" value="3">'
        '</legend><fieldset><input name="nested" value="4"></fieldset></fieldset>'
        '<fieldset><input name="open" value="5"></fieldset>',
        [("in_legend", "1"), ("open", "5")]),
    "not_sent": (
        '<input type="image" name="img"><input type="file" name="upload">'
        '<input type="reset" name="rs" value="r"><input type="button" name="bt" value="b">'
        '<button name="bn" value="v">x</button><input type="submit" name="sb" value="s">'
        '<input name="kept" value="k">',
        [("kept", "k")]),
    "textareas": (
        '<textarea name="t">\nfirst line\nsecond &amp; last</textarea>'
        '<textarea name="empty"></textarea>',
        [("t", "first line\nsecond & last"), ("empty", "")]),
}

# Controls that belong to a form by its id, from outside it; one inside it belongs elsewhere.
OWNED = """<form id="owner" method="post" action="/submit?f=owner">
  <input name="inside" value="1"><input name="lent" value="x" form="other">
</form>
<input name="outside" value="2" form="owner"><textarea name="notes" form="owner">n</textarea>
<input name="stray" value="3">
<button name="go" value="clicked" form="owner" formaction="/submit?f=button">Go</button>
<form id="other"></form>"""
OWNED_SENT = [("inside", "1"), ("outside", "2"), ("notes", "n")]


def page() -> str:
    forms = "".join(f'<form id="{case}" method="post" action="/submit?f={case}">{html}</form>'
                    for case, (html, _) in CASES.items())
    return f"<html><body>{forms}{OWNED}</body></html>"


class Forms(Spider):
    name = "forms"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for case in [*CASES, "owner"]:
            yield response.form(f"form#{case}").submit(self.done)
        yield response.form("#owner").submit(self.done, button="go")

    async def done(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url}


async def _received(path: Path) -> dict[str, list[tuple[str, str]]]:
    got: dict[str, list[tuple[str, str]]] = {}

    async def home(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=page())

    async def submit(request: web.Request) -> web.Response:
        got[request.query["f"]] = [(k, str(v)) for k, v in (await request.post()).items()]
        return web.Response(content_type="text/html", text="ok")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_post("/submit", submit)
    async with serve(app) as base:
        await crawl(Forms([base + "/"]), path)
    return got


@pytest.fixture(scope="module")
def received(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str]]]:
    return asyncio.run(_received(tmp_path_factory.mktemp("forms") / "forms.db"))


@pytest.mark.parametrize("case", list(CASES))
def test_the_server_receives_what_a_browser_sends(
        case: str, received: dict[str, list[tuple[str, str]]]) -> None:
    assert received[case] == CASES[case][1]


def test_controls_belong_to_the_form_their_form_attribute_names(
        received: dict[str, list[tuple[str, str]]]) -> None:
    assert received["owner"] == OWNED_SENT
    assert received["button"] == [*OWNED_SENT, ("go", "clicked")]
