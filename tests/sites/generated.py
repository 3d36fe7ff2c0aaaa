"""A deterministic generated website for testing a site crawler's correctness.

``make_app(pages, seed)`` serves ``pages`` HTML pages (default 2,200) built from a seeded
model; ``expected_pages(base_url, pages, seed)`` says, from that same model, exactly which
canonical URLs a correct same-host crawl starting at ``base_url + "/"`` must find, with the
normalized ``<title>`` and the number of ``<a href>`` elements of each.

Shape of the site (all paths ASCII):

* ``/`` is the root; ``/s<k>/`` are section index pages (trailing slash);
  ``/s<k>/p<i>.html``, ``/s<k>/t<j>/p<i>.html``, ``/s<k>/t<j>/u<m>/p<i>.html`` are pages at
  depth 1-3; ``/s<k>/d<i>/`` are directory pages; ``/s<k>/list?page=<n>`` are paginated list
  pages that exist *only* with their query string (``/s<k>/list`` alone is a 404, and so is
  any page number that is not linked).
* Every page is reachable from ``/`` by construction: a random spanning tree (each page
  links to its children) plus extra links: to the parent, to the root, to itself, to random
  pages, duplicates of the same target written the same way or differently.
* Hrefs come in every form: ``y.html``, ``./y.html``, ``../x/y.html``, ``/x/y.html``,
  ``/a/../x/y.html``, ``http://HOST/x/y.html`` (HOST = the request's Host header),
  ``HTTP://HOST/...``, ``//HOST/...``, ``http://HOST`` (root without a slash), ``?page=4``,
  ``list?page=4``, and any of those with a ``#fragment``; plus ``#top``, ``""``,
  ``mailto:``, ``javascript:``, ``tel:``, ``ftp:``, other hosts (``*.other.invalid``, never to
  be fetched), 404 links and links to non-HTML resources (PDF, PNG, text/plain, one PDF
  without an extension).  ``<a>`` elements without href (``<a name=..>``, ``<a id=..>``) appear
  too, as do links hidden in HTML comments and in ``<script>`` strings (neither counts as a
  link).  Some ``<a>`` tags are upper case or use single quotes.
* Titles have messy whitespace (newlines, tabs, runs of spaces), ``&amp;``/``&lt;`` entities
  and non-ASCII text.  Most pages are UTF-8 with ``Content-Type: text/html; charset=utf-8``;
  a few are ISO-8859-1 or windows-1252 with a plain ``Content-Type: text/html`` and the
  charset declared only in ``<meta charset>`` or ``<meta http-equiv="Content-Type">``; one or
  two are UTF-8 by header while a (wrong) ``<meta charset="iso-8859-1">`` says otherwise: the
  HTTP header wins, as the HTML standard says.

The app counts every request by ``request.path_qs`` in ``app[REQUESTS]`` and logs any
request whose Host header names neither the listening address nor ``localhost`` (nor a name
given in ``make_app(extra_hosts=...)``) in ``app[FOREIGN_REQUESTS]``.
"""

from __future__ import annotations

import functools
import html
import posixpath
import random
import zlib
from collections import Counter, deque
from collections.abc import Collection
from dataclasses import dataclass, field

from aiohttp import web
from yarl import URL

__all__ = [
    "EXTERNAL_HOSTS",
    "FOREIGN_REQUESTS",
    "HOSTS_SEEN",
    "REQUESTS",
    "ExpectedPage",
    "broken_urls",
    "canonical_origin",
    "expected_pages",
    "external_hrefs",
    "make_app",
    "non_html_urls",
    "special_charset_urls",
]

#: Counter of ``request.path_qs`` for every request served (any status).
REQUESTS: web.AppKey[Counter[str]] = web.AppKey("generated_requests", Counter)
#: ``(host header, path_qs)`` of requests whose Host header is not the served host.
FOREIGN_REQUESTS: web.AppKey[list[tuple[str, str]]] = web.AppKey("generated_foreign", list)
#: Counter of raw Host header values seen.
HOSTS_SEEN: web.AppKey[Counter[str]] = web.AppKey("generated_hosts", Counter)
_MODEL: web.AppKey[_Model] = web.AppKey("generated_model")
_EXTRA_HOSTS: web.AppKey[frozenset[str]] = web.AppKey("generated_extra_hosts", frozenset)
_ROBOTS: web.AppKey[bytes | None] = web.AppKey("generated_robots")

#: Host names of "other site" links; none of them may ever be requested.
EXTERNAL_HOSTS = frozenset({"other.invalid", "www.other.invalid"})

_HOST = "\x00"  # placeholder for the request's Host header in pre-rendered pages


@dataclass(frozen=True, slots=True)
class ExpectedPage:
    """What a crawler should record for one HTML page."""

    title: str  # <title> text, whitespace runs collapsed to one space, stripped
    links: int  # number of <a> elements with an href attribute (any value)


# --------------------------------------------------------------------------------------
# Static resources


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    idat = zlib.compress(b"\x00\xff\x80\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
# text/plain that looks like HTML: a crawler must not parse it for links.
_TEXT = (
    "Plain text notes \u2014 not HTML.\n"
    '<a href="/s0/from-text-file.html">this is not a link</a>\n'
).encode()

#: path_qs -> (Content-Type, body)
_RESOURCES: dict[str, tuple[str, bytes]] = {
    "/files/report.pdf": ("application/pdf", _PDF),
    "/files/download?id=7": ("application/pdf", _PDF),
    "/img/logo.png": ("image/png", _png_1x1()),
    "/files/notes.txt": ("text/plain; charset=utf-8", _TEXT),
}

_EXTERNAL_HREFS = (
    "http://other.invalid/",
    "http://other.invalid/s0/p1.html",
    "https://other.invalid/secure.html",
    "//other.invalid/protocol-relative.html",
    "http://www.other.invalid:8080/x.html?y=1",
    "HTTP://OTHER.INVALID/UPPER.html",
)
_OTHER_SCHEME_HREFS = (
    "mailto:webmaster@other.invalid",
    "mailto:someone@other.invalid?subject=Hello",
    "javascript:void(0)",
    "javascript:alert('hi')",
    "tel:+15550100",
    "ftp://other.invalid/pub/file.txt",
)

# --------------------------------------------------------------------------------------
# Titles

_UTF8_WORDS = (
    "Café crème",
    "naïve façade",
    "Straße",
    "Ελληνικά",
    "日本語のページ",
    "Über Ünïcödé",
    "Smörgåsbord",
    "Tom & Jerry",
    "1 < 2 > 0",
    "Zürich — Genève",
    "emoji \U0001f577 spider",
    "plain words",
)
# Only characters that are the same in ISO-8859-1 and windows-1252 (no 0x80-0x9f).
_LATIN1_WORDS = ("Café", "Straße", "Ångström", "£5 señor", "Zürich façade", "Ærø ½")
_CP1252_WORDS = ("\u20ac5 \u201cquoted\u201d \u2014 dash", "\u2018single\u2019 \u2026 ellipsis")
_WS = ("\n  ", "\t", "   ", " \n\t ", " ", "\n\n", "  \t  ")

# Page kinds by charset handling
_UTF8 = "utf8"  # header charset=utf-8, <meta charset="utf-8">
_UTF8_NOMETA = "utf8-nometa"  # header charset=utf-8, no meta
_UTF8_WRONG_META = "utf8-wrong-meta"  # header charset=utf-8, <meta charset="iso-8859-1">
_LATIN1_META = "latin1-meta"  # header text/html, <meta charset="iso-8859-1">
_LATIN1_EQUIV = "latin1-equiv"  # header text/html, <meta http-equiv ... charset=iso-8859-1>
_CP1252_META = "cp1252-meta"  # header text/html, <meta charset="windows-1252">


@dataclass(slots=True)
class _Page:
    pid: int
    path_qs: str
    parent: int
    section: int
    kind: str = _UTF8
    raw_title: str = ""  # title text before HTML escaping
    children: list[int] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (href template, text)
    targets: list[str] = field(default_factory=list)  # same-site path_qs linked
    content_type: str = "text/html; charset=utf-8"
    parts: tuple[bytes, ...] = ()  # rendered body split at the Host placeholder

    @property
    def path(self) -> str:
        return self.path_qs.partition("?")[0]

    @property
    def query(self) -> str:
        return self.path_qs.partition("?")[2]

    @property
    def directory(self) -> str:
        path = self.path
        return path[: path.rfind("/") + 1]


@dataclass(slots=True)
class _Model:
    pages: list[_Page]
    by_path: dict[str, _Page]
    broken: list[str]
    resources: dict[str, tuple[str, bytes]]


def _collapse(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------
# Hrefs


def _relative(src: _Page, target_path_qs: str, dot: bool) -> str:
    tpath, _, tquery = target_path_qs.partition("?")
    if tpath.endswith("/"):
        rel = posixpath.relpath(tpath, src.directory)
        rel = "./" if rel == "." else rel + "/"
    else:
        rel = posixpath.relpath(tpath, src.directory)
        if dot and not rel.startswith("../"):
            rel = "./" + rel
    return rel + ("?" + tquery if tquery else "")


def _href(rng: random.Random, src: _Page, target: str, *, allow_fragment: bool = True) -> str:
    """An href on page ``src`` that resolves to ``target`` (a path_qs on this site)."""
    tpath, _, tquery = target.partition("?")
    forms = ["rel"] * 4 + ["dot"] * 2 + ["root"] * 3 + ["abs"] * 3 + ["ABS", "proto", "dotty"]
    if tquery and tpath == src.path:
        forms += ["qonly", "qonly"]
    if target == "/":
        forms.append("bare-origin")
    form = rng.choice(forms)
    if form == "rel":
        href = _relative(src, target, dot=False)
    elif form == "dot":
        href = _relative(src, target, dot=True)
    elif form == "root":
        href = target
    elif form == "abs":
        href = f"http://{_HOST}{target}"
    elif form == "ABS":
        href = f"HTTP://{_HOST}{target}"
    elif form == "proto":
        href = f"//{_HOST}{target}"
    elif form == "dotty":
        href = f"/s{rng.randrange(3)}/..{target}"
    elif form == "qonly":
        href = "?" + tquery
    else:  # bare-origin: "http://host:port" with an empty path means "/"
        return f"http://{_HOST}"
    if allow_fragment and rng.random() < 0.2:
        href += rng.choice(("#sec", "#top", "#c1", "#"))
    return href


# --------------------------------------------------------------------------------------
# Model


def _assign_paths(rng: random.Random, n: int) -> list[_Page]:
    n_sections = max(1, min(8, (n - 1) // 20))
    pages = [_Page(pid=0, path_qs="/", parent=-1, section=-1)]
    by_section: list[list[int]] = [[] for _ in range(n_sections)]
    last_list: list[int | None] = [None] * n_sections
    list_count = [0] * n_sections
    for pid in range(1, n):
        if pid <= n_sections:
            sec = pid - 1
            pages.append(_Page(pid, f"/s{sec}/", parent=0, section=sec))
            by_section[sec].append(pid)
            continue
        sec = rng.randrange(n_sections)
        r = rng.random()
        parent: int
        if r < 0.08:
            list_count[sec] += 1
            path = f"/s{sec}/list?page={list_count[sec]}"
            prev = last_list[sec]
            parent = prev if prev is not None else sec + 1
            last_list[sec] = pid
        else:
            if r < 0.35:
                path = f"/s{sec}/p{pid}.html"
            elif r < 0.8:
                path = f"/s{sec}/t{rng.randrange(4)}/p{pid}.html"
            elif r < 0.93:
                path = f"/s{sec}/t{rng.randrange(4)}/u{rng.randrange(3)}/p{pid}.html"
            else:
                path = f"/s{sec}/d{pid}/"
            if rng.random() < 0.75:
                # Prefer recent pages of the same section: makes deep chains.
                pool = by_section[sec]
                parent = pool[-1 - min(len(pool) - 1, int(rng.expovariate(0.15)))]
            else:
                parent = rng.randrange(pid)
        pages.append(_Page(pid, path, parent=parent, section=sec))
        by_section[sec].append(pid)
    for page in pages[1:]:
        pages[page.parent].children.append(page.pid)
    return pages


def _assign_kinds(rng: random.Random, pages: list[_Page]) -> None:
    candidates = [p.pid for p in pages[1:]]
    if len(candidates) >= 10:
        n = len(pages)
        plan = [
            (_LATIN1_META, max(2, n // 400)),
            (_LATIN1_EQUIV, max(1, n // 1000)),
            (_CP1252_META, max(1, n // 2000)),
            (_UTF8_WRONG_META, max(1, n // 1500)),
        ]
        chosen = rng.sample(candidates, sum(k for _, k in plan))
        it = iter(chosen)
        for kind, count in plan:
            for _ in range(count):
                pages[next(it)].kind = kind
    for page in pages:
        if page.kind == _UTF8 and rng.random() < 0.1:
            page.kind = _UTF8_NOMETA


def _make_title(rng: random.Random, page: _Page) -> str:
    if page.kind in (_LATIN1_META, _LATIN1_EQUIV):
        word = rng.choice(_LATIN1_WORDS)
    elif page.kind == _CP1252_META:
        word = rng.choice(_CP1252_WORDS)
    else:
        word = rng.choice(_UTF8_WORDS)
    if page.pid == 0:
        label = "Home"
    elif page.query:
        label = f"List s{page.section} page {page.query.partition('=')[2]}"
    else:
        label = f"Page {page.pid}"
    ws = [rng.choice(_WS) for _ in range(4)]
    return f"{ws[0]}{label}{ws[1]}\u00b7{ws[2]}{word}{ws[3]}"


def _add_links(rng: random.Random, model: _Model) -> None:
    pages = model.pages
    n = len(pages)

    target_hrefs: list[str] = []  # hrefs of the current page's same-site links

    def link(
        src: _Page, target: str, text: str, *, fragment: bool = True, href: str | None = None
    ) -> None:
        if href is None:
            href = _href(rng, src, target, allow_fragment=fragment)
        src.links.append((href, text))
        src.targets.append(target)
        target_hrefs.append(href)

    for page in pages:
        target_hrefs.clear()
        links = page.links
        links.append(("#top", "Skip to top"))
        if page.pid != 0:
            link(page, "/", "Home")
            link(page, pages[page.parent].path_qs, "Up")
        for child in page.children:
            link(page, pages[child].path_qs, f"Child {child}")
        for _ in range(rng.randrange(4)):
            other = pages[rng.randrange(n)]
            link(page, other.path_qs, f"See also {other.pid}")
        if rng.random() < 0.3:  # self link
            link(page, page.path_qs, "This page")
        if rng.random() < 0.3 and page.pid:  # link to an ancestor
            anc = page.parent
            for _ in range(rng.randrange(4)):
                if anc > 0:
                    anc = pages[anc].parent
            link(page, pages[anc].path_qs, "Ancestor")
        if rng.random() < 0.35 and page.targets:  # duplicate: same target again
            i = rng.randrange(len(page.targets))
            if rng.random() < 0.5:  # exactly the same href again
                link(page, page.targets[i], "Same link again", href=target_hrefs[i])
            else:  # probably written differently
                link(page, page.targets[i], "Same target again")
        if rng.random() < 0.1:
            links.append(("#sec", "Jump to section"))
        if rng.random() < 0.05:
            links.append(("", "Empty href"))
        if rng.random() < 0.08:
            links.append((rng.choice(_OTHER_SCHEME_HREFS), "Contact"))
        if rng.random() < 0.08:
            links.append((rng.choice(_EXTERNAL_HREFS), "Elsewhere"))
        if rng.random() < 0.03:
            link(page, rng.choice(list(model.resources)), "Download", fragment=False)
        if rng.random() < 0.02 and model.broken:
            link(page, rng.choice(model.broken), "Broken", fragment=False)

    # Guarantee every feature at least once: the root links to all of them.
    root = pages[0]
    root.links.append(("", "Empty href"))
    root.links.append(("#sec", "Jump to section"))
    for href in _OTHER_SCHEME_HREFS + _EXTERNAL_HREFS:
        root.links.append((href, "Elsewhere"))
    for target in model.resources:
        link(root, target, "Resource", fragment=False)
    for target in model.broken:
        link(pages[rng.randrange(n)], target, "Broken", fragment=False)


_CHARSET_OF_KIND = {
    _UTF8: "utf-8",
    _UTF8_NOMETA: "utf-8",
    _UTF8_WRONG_META: "utf-8",
    _LATIN1_META: "iso-8859-1",
    _LATIN1_EQUIV: "iso-8859-1",
    _CP1252_META: "windows-1252",
}
_META_OF_KIND = {
    _UTF8: '<meta charset="utf-8">',
    _UTF8_NOMETA: "",
    _UTF8_WRONG_META: '<meta charset="iso-8859-1">',
    _LATIN1_META: '<meta charset="iso-8859-1">',
    _LATIN1_EQUIV: '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">',
    _CP1252_META: '<meta charset="windows-1252">',
}


def _render(page: _Page, rng: random.Random) -> None:
    esc = html.escape
    out: list[str] = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n",
        _META_OF_KIND[page.kind],
        "\n<title>",
        esc(page.raw_title, quote=False),
        "</title>\n</head>\n<body>\n<a name=\"top\"></a>\n<h1>",
        esc(_collapse(page.raw_title), quote=False),
        "</h1>\n<ul>\n",
    ]
    for i, (href, text) in enumerate(page.links):
        style = rng.random()
        h = esc(href)
        if style < 0.05:
            out.append(f"<li><A HREF=\"{h}\">{esc(text)}</A></li>\n")
        elif style < 0.1 and "'" not in href:
            out.append(f"<li><a class='x' href='{h}'>{esc(text)}</a></li>\n")
        else:
            out.append(f'<li><a href="{h}">{esc(text)}</a></li>\n')
        if i == len(page.links) // 2:
            out.append('</ul>\n<h2 id="sec">Section</h2>\n<p id="c1">Some text.</p>\n<ul>\n')
    out.append("</ul>\n")
    if rng.random() < 0.3:
        out.append('<p><a id="anchor-only">An anchor without href</a></p>\n')
    if page.pid % 50 == 7:
        out.append('<!-- <a href="/s0/commented-out.html">old link</a> -->\n')
        out.append("<script>var s = \"<a href='/s0/in-script.html'>x</a>\";</script>\n")
    out.append("</body>\n</html>\n")
    charset = _CHARSET_OF_KIND[page.kind]
    text = "".join(out)
    page.parts = tuple(part.encode(charset) for part in text.split(_HOST))
    if page.kind in (_LATIN1_META, _LATIN1_EQUIV, _CP1252_META):
        page.content_type = "text/html"


def _check_reachable(model: _Model) -> None:
    seen = {"/"}
    queue = deque(["/"])
    while queue:
        for target in model.by_path[queue.popleft()].targets:
            if target in model.by_path and target not in seen:
                seen.add(target)
                queue.append(target)
    assert seen == set(model.by_path), "generator bug: unreachable pages"


@functools.lru_cache(maxsize=8)
def _build(pages: int, seed: int) -> _Model:
    if pages < 1:
        raise ValueError("pages must be >= 1")
    rng = random.Random(seed)
    plist = _assign_paths(rng, pages)
    n_sections = max(1, min(8, (pages - 1) // 20))
    broken = sorted(
        {f"/s{rng.randrange(n_sections)}/missing-{j}.html" for j in range(max(2, pages // 100))}
        | {"/gone/", f"/s0/list?page={pages + 1}"}
    )
    model = _Model(
        pages=plist,
        by_path={p.path_qs: p for p in plist},
        broken=broken,
        resources=dict(_RESOURCES),
    )
    assert len(model.by_path) == pages
    assert not set(model.broken) & set(model.by_path)
    _assign_kinds(rng, plist)
    for page in plist:
        page.raw_title = _make_title(rng, page)
    _add_links(rng, model)
    for page in plist:
        _render(page, rng)
    _check_reachable(model)
    return model


# --------------------------------------------------------------------------------------
# Public API: expectations


def canonical_origin(base_url: str) -> str:
    """``scheme://host[:port]`` lower-cased, without a default port or trailing slash."""
    url = URL(base_url)
    if not url.is_absolute() or url.host is None:
        raise ValueError(f"not an absolute URL: {base_url!r}")
    origin = f"{url.scheme.lower()}://{url.host.lower()}"
    if url.explicit_port is not None and not url.is_default_port():
        origin += f":{url.explicit_port}"
    return origin


def expected_pages(base_url: str, pages: int = 2200, seed: int = 1) -> dict[str, ExpectedPage]:
    """Canonical absolute URL -> ``ExpectedPage`` for every HTML page of the site.

    Keys look like ``http://127.0.0.1:41234/``, ``http://127.0.0.1:41234/s3/t1/p42.html``,
    ``http://127.0.0.1:41234/s2/list?page=3``: lower-case scheme and host, no default port, no
    fragment, the path as served, the query as written in links.
    """
    origin = canonical_origin(base_url)
    return {
        origin + p.path_qs: ExpectedPage(
            title=_collapse(p.raw_title),
            links=len(p.links),
        )
        for p in _build(pages, seed).pages
    }


def non_html_urls(base_url: str, pages: int = 2200, seed: int = 1) -> set[str]:
    """Canonical URLs of the linked non-HTML resources (PDF, PNG, text/plain); all 200."""
    origin = canonical_origin(base_url)
    return {origin + path for path in _build(pages, seed).resources}


def broken_urls(base_url: str, pages: int = 2200, seed: int = 1) -> set[str]:
    """Canonical URLs that are linked from some page and answer 404."""
    origin = canonical_origin(base_url)
    return {origin + path for path in _build(pages, seed).broken}


def special_charset_urls(base_url: str, pages: int = 2200, seed: int = 1) -> dict[str, str]:
    """Canonical URL -> charset for pages whose charset is declared only in a <meta> tag
    (served as plain ``text/html``), plus the UTF-8 pages whose <meta> lies (header wins)."""
    origin = canonical_origin(base_url)
    result: dict[str, str] = {}
    for p in _build(pages, seed).pages:
        if p.kind == _UTF8_WRONG_META:
            result[origin + p.path_qs] = "utf-8 (header) vs iso-8859-1 (meta)"
        elif p.kind not in (_UTF8, _UTF8_NOMETA):
            result[origin + p.path_qs] = _CHARSET_OF_KIND[p.kind]
    return result


def external_hrefs() -> tuple[str, ...]:
    """Hrefs to other hosts that appear on the site (all must be left alone)."""
    return _EXTERNAL_HREFS


# --------------------------------------------------------------------------------------
# Server


def _split_host(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host.lower(), rest.removeprefix(":")
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    return host.lower(), port


def _is_served_host(request: web.Request, host_header: str) -> bool:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return True
    host, port = _split_host(host_header)
    if (port or "80") != str(sockname[1]):
        return False
    return host in (str(sockname[0]), "localhost") or host in request.app[_EXTRA_HOSTS]


_NOT_FOUND = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>" + (
    b'<body><h1>Not found</h1><a href="/">home</a></body></html>\n'
)


async def _handle(request: web.Request) -> web.StreamResponse:
    app = request.app
    path_qs = request.path_qs
    app[REQUESTS][path_qs] += 1
    host_header = request.headers.get("Host", "")
    app[HOSTS_SEEN][host_header] += 1
    if not _is_served_host(request, host_header):
        app[FOREIGN_REQUESTS].append((host_header, path_qs))
    model = app[_MODEL]
    page = model.by_path.get(path_qs)
    if page is not None:
        host = html.escape(request.host).encode("ascii", "replace")
        return web.Response(
            body=host.join(page.parts), headers={"Content-Type": page.content_type}
        )
    resource = model.resources.get(path_qs)
    if resource is not None:
        return web.Response(body=resource[1], headers={"Content-Type": resource[0]})
    robots = app[_ROBOTS]
    if path_qs == "/robots.txt" and robots is not None:
        return web.Response(body=robots, headers={"Content-Type": "text/plain; charset=utf-8"})
    return web.Response(
        status=404, body=_NOT_FOUND, headers={"Content-Type": "text/html; charset=utf-8"}
    )


def make_app(
    pages: int = 2200,
    seed: int = 1,
    *,
    extra_hosts: Collection[str] = (),
    robots_txt: str | None = None,
) -> web.Application:
    """The generated site as an aiohttp application (GET and HEAD).

    ``extra_hosts``: further Host names (without port) that count as "this server", for tests
    that reach the loopback server under a made-up name.  ``robots_txt``: body of
    ``/robots.txt`` (default: 404).
    """
    app = web.Application()
    app[_MODEL] = _build(pages, seed)
    app[REQUESTS] = Counter()
    app[FOREIGN_REQUESTS] = []
    app[HOSTS_SEEN] = Counter()
    app[_EXTRA_HOSTS] = frozenset(h.lower() for h in extra_hosts)
    app[_ROBOTS] = robots_txt.encode() if robots_txt is not None else None
    app.router.add_get("/{tail:.*}", _handle)
    return app
