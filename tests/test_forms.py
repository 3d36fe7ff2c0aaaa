"""`response.form(...)`: a page's form as a browser would submit it. The tests check the
Request built (method, URL, decoded fields); one search form is submitted to a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiohttp import web
from yarl import URL

from crawler import Request, Response, Spider
from crawler.errors import SpiderError
from tests.crawling import crawl
from tests.sites.serve import serve

PAGE = "http://shop.test/account/login?next=/home"

LOGIN = """<html><body>
<form id="search" action="/search?old=1"><input name="q"></form>
<form id="login" method="POST" action="session">
  <input type="hidden" name="csrf" value="t0k3n">
  <input name="user" value="guest">
  <input type="password" name="password">
  <input type="checkbox" name="remember" checked>
  <input type="checkbox" name="news" value="yes">
  <input type="radio" name="plan" value="free">
  <input type="radio" name="plan" value="pro" checked>
  <select name="lang"><option value="en">English</option><option>  Fran\u00e7ais  </option></select>
  <select name="tz"><option value="utc">UTC</option>
    <option value="cet" selected>CET</option></select>
  <select name="tags" multiple><option selected>a</option><option>b</option>
    <option selected value="c">C</option></select>
  <select name="none" multiple><option>x</option></select>
  <textarea name="note">line one
line two</textarea>
  <input name="off" value="x" disabled>
  <fieldset disabled><input name="fenced" value="x"></fieldset>
  <input type="file" name="upload">
  <input name="" value="nameless">
  <input type="submit" name="go" value="Log in">
  <button name="alt" value="other" formaction="/other" formmethod="get">Other</button>
  <input type="image" name="pic" src="x.png">
  <button type="reset" name="reset">Reset</button>
</form>
</body></html>"""


def page(html: str = LOGIN, url: str = PAGE) -> Response:
    return Response(URL(url), 200, {"Content-Type": "text/html; charset=utf-8"},
                    html.encode())


def sent(request: Request) -> list[tuple[str, str]]:
    """The fields a request sends: its body (POST) or its query (GET), decoded."""
    if request.method == "POST":
        return parse_qsl(request.body.decode("ascii"), keep_blank_values=True)
    return parse_qsl(urlsplit(request.url).query, keep_blank_values=True)


DEFAULTS = [("csrf", "t0k3n"), ("user", "guest"), ("password", ""), ("remember", "on"),
            ("plan", "pro"), ("lang", "en"), ("tz", "cet"), ("tags", "a"), ("tags", "c"),
            ("note", "line one\nline two")]


def test_a_form_keeps_its_hidden_and_default_fields_as_a_browser_sends_them() -> None:
    form = page().form("form#login")
    assert form.fields == DEFAULTS
    assert form.method == "POST"
    assert form.action == "http://shop.test/account/session"
    request = form.submit()
    assert (request.method, request.url) == ("POST", "http://shop.test/account/session")
    assert sent(request) == DEFAULTS


def test_fill_sets_replaces_repeats_removes_and_adds_fields_and_chains() -> None:
    form = page().form("#login")
    same = form.fill(user="me", password="pw", tags=["x", "y"], note=None, page=2)
    assert same is form
    form.fill({"lang": "fr", "user[name]": "Me"})
    assert sent(form.submit()) == [
        ("csrf", "t0k3n"), ("user", "me"), ("password", "pw"), ("remember", "on"),
        ("plan", "pro"), ("lang", "fr"), ("tz", "cet"), ("tags", "x"), ("tags", "y"),
        ("page", "2"), ("user[name]", "Me")]
    assert form.get("user") == "me" and form.get("note") is None


def test_a_get_form_puts_its_fields_in_the_query_in_place_of_the_actions() -> None:
    response = page()
    request = response.form().fill(q="desk lamp & shade").submit(response.follow("/").callback)
    assert request.method == "GET"
    assert request.url == "http://shop.test/search?q=desk+lamp+%26+shade"
    assert sent(request) == [("q", "desk lamp & shade")]


def test_the_clicked_button_is_sent_and_its_formaction_and_formmethod_apply() -> None:
    form = page().form(index=1)
    assert sent(form.submit(button="go"))[-1] == ("go", "Log in")
    other = form.submit(button="alt")
    assert other.method == "GET"
    assert urlsplit(other.url).path == "/other"
    assert sent(other)[-1] == ("alt", "other")
    assert sent(form.submit(button="pic"))[-2:] == [("pic.x", "0"), ("pic.y", "0")]
    with pytest.raises(SpiderError, match=r"no enabled submit button named 'reset'.*'alt', 'go'"):
        form.submit(button="reset")


def test_an_option_without_a_value_sends_its_text_and_a_select_always_sends_one() -> None:
    html = """<form><select name="a"><option disabled>-</option><option> Français
      </option></select><select name="b"><option selected>1</option><option selected>2
      </option></select><select name="c"></select></form>"""
    assert page(html).form().fields == [("a", "Français"), ("b", "2")]


@pytest.mark.parametrize(("html", "url", "action"), [
    ('<form method="post"><input name="a" value="1"></form>', PAGE, PAGE),
    ('<form action="  " method="post"></form>', PAGE, PAGE),
    ('<base href="http://cdn.test/x/"><form action="go" method="post"></form>', PAGE,
     "http://cdn.test/x/go"),
    ('<form action="https://Other.test:443/p#frag" method="post"></form>', PAGE,
     "https://other.test/p"),
])
def test_the_action_resolves_against_the_base_url_and_empty_is_the_page(
        html: str, url: str, action: str) -> None:
    request = page(html, url).form().submit()
    assert request.url == action


def test_request_keywords_pass_through_and_the_callback_is_checked() -> None:
    class Shop(Spider):
        async def after(self, response: Response) -> AsyncIterator[Any]:
            yield {}

    request = page().form("#login").submit(Shop().after, cb_kwargs={"k": 1}, priority=3)
    assert (request.callback, request.cb_kwargs_json, request.priority) == \
        ("after", '{"k":1}', 3)
    with pytest.raises(SpiderError, match="method of the spider"):
        page().form("#login").submit(print)
    with pytest.raises(SpiderError, match="takes the method from the form"):
        page().form("#login").submit(method="PUT")


def test_a_selector_that_matches_no_form_names_the_spiders_line_and_counts_forms() -> None:
    response = page()
    with pytest.raises(SpiderError) as info:
        response.form("form#nope")
    line = info.tb.tb_lineno  # the test's own line, where it called form()
    assert str(info.value) == (f"no <form> matches 'form#nope' on {PAGE}; the page has "
                               f"2 forms (at {__file__}:{line})")


@pytest.mark.parametrize(("selector", "index", "message"), [
    (None, 2, "no form #2 (there are 2 forms) on "),
    ("#login", 1, "no form #1 (there are 1 matching '#login') on "),
    ("input", 0, "no <form> matches 'input' (it matches 14 other elements) on "),
    ("[[", 0, "bad form selector '[['"),
])
def test_an_index_out_of_range_or_a_bad_selector_is_refused(
        selector: str | None, index: int, message: str) -> None:
    with pytest.raises(SpiderError, match=r"test_forms\.py:") as info:
        page().form(selector, index=index)
    assert message in str(info.value)


def test_a_page_that_is_not_html_has_no_forms() -> None:
    response = Response(URL(PAGE), 200, {"Content-Type": "application/json"}, b"{}")
    with pytest.raises(SpiderError, match="the page has no forms: it is not HTML"):
        response.form()


@pytest.mark.parametrize(("html", "message"), [
    ('<form method="post" enctype="multipart/form-data"></form>',
     r"posts as multipart/form-data, which submit\(\) does not support"),
    ('<form method="dialog"></form>', "method=dialog form"),
    ('<form action="mailto:a@b.test"></form>', "action 'mailto:a@b.test' is not an http"),
])
def test_forms_the_crawler_cannot_submit_are_refused(html: str, message: str) -> None:
    with pytest.raises(SpiderError, match=message):
        page(html).form().submit()


def test_a_multipart_get_form_submits_its_query() -> None:
    html = '<form enctype="multipart/form-data"><input name="a" value="1"></form>'
    assert page(html).form().submit().url == "http://shop.test/account/login?a=1"


def test_a_bad_field_value_is_refused() -> None:
    with pytest.raises(SpiderError, match="form field 'user' must be text"):
        page().form("#login").fill(user={"a": 1})  # type: ignore[arg-type]


class Search(Spider):
    name = "search"

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        yield response.form("form.search").fill(q="desk lamp").submit(self.results)

    async def results(self, response: Response) -> AsyncIterator[Any]:
        yield {"url": response.url, "title": response.title}


async def test_a_get_search_form_reaches_the_server_with_its_query(tmp_path: Path) -> None:
    seen: list[list[tuple[str, str]]] = []

    async def home(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="""<html><body>
            <form class="search" action="/find?ignored=1">
              <input type="hidden" name="lang" value="en">
              <input name="q" value="chair"><input type="submit" name="go" value="Go">
            </form></body></html>""")

    async def find(request: web.Request) -> web.Response:
        seen.append(list(request.query.items()))
        return web.Response(content_type="text/html",
                            text=f"<title>results for {request.query['q']}</title>")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/find", find)
    async with serve(app) as base:
        out = await crawl(Search([base + "/"]), tmp_path / "search.db")
    assert seen == [[("lang", "en"), ("q", "desk lamp")]]
    assert out.items == [{"url": f"{base}/find?lang=en&q=desk+lamp",
                          "title": "results for desk lamp"}]
