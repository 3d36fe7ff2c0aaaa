"""A page's `<form>` as a browser would submit it, for `response.form(...)`.

The fields a browser would send are read from the markup (HTML's "constructing the entry
list", for what a scraper meets): named `input`s with their value (checkboxes and radio
buttons only when checked, "on" if they have no value attribute; of a group's radios
marked checked, the last), the selected options of each `<select>` that are not disabled
(by themselves or their `<optgroup>`; a drop-down with none selected sends its first
enabled option, as browsers do), `<textarea>` text. Disabled controls (and those in a
disabled `<fieldset>`, but not in its first `<legend>`), file inputs and buttons are left
out, except the one button `submit(button=...)` names, which is sent as the button a user
clicked. Controls are the form's own by HTML's rules: a `form="id"` attribute gives a
control, inside the form or outside it, to the form of that id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError
from yarl import URL

from crawler.errors import SpiderError
from crawler.model.callsite import locating
from crawler.model.request import Callback, Request
from crawler.urls import canon as urls

FormValue = str | int | float | Sequence[str | int | float] | None
"""What `fill` sets a field to: a value, a list of values (the field repeats), or None
(the field is removed)."""

CONTROLS = "input, select, textarea, button"
BUTTON_TYPES = frozenset({"submit", "image", "button", "reset"})
URLENCODED = "application/x-www-form-urlencoded"


def find(tree: LexborHTMLParser | None, page: str, selector: str | None,
         index: int) -> LexborNode:
    """The form `selector` matches (the index-th of its matches), or the page's index-th
    form; SpiderError saying how many forms the page has."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise SpiderError(f"form index must be a whole number, not {index!r}")
    query = "form" if selector is None else selector
    try:
        nodes = [] if tree is None else tree.css(query)
    except SelectolaxError as exc:
        raise SpiderError(f"bad form selector {selector!r}: {exc}") from None
    forms = [node for node in nodes if node.tag == "form"]
    if -len(forms) <= index < len(forms):
        return forms[index]
    total = 0 if tree is None else len(list(tree.tags("form")))
    what = f"{total} form{'' if total == 1 else 's'}"
    if tree is None:
        what = "no forms: it is not HTML"
    if selector is not None and not forms:
        found = f"no <form> matches {selector!r}" + (
            f" (it matches {len(nodes)} other elements)" if nodes else "")
    else:
        found = f"no form #{index} (there are {len(forms)} " + (
            f"matching {selector!r})" if selector is not None else "forms)")
    raise SpiderError(f"{found} on {page}; the page has {what}")


class Form:
    """A form of a page: its fields (`fields`, name and value pairs in page order), where it
    submits to (`action`, `method`), and `fill(...)` and `submit(...)`."""

    def __init__(self, node: LexborNode, page: URL, base: URL) -> None:
        self._node = node
        self._page = page
        self._base = base
        self.method = _method(node.attrs.get("method"))
        """GET or POST, as the form's `method` attribute says (GET if it says neither)."""
        self.action = self._resolve(node.attrs.get("action"), "action")
        """The absolute URL the form submits to: its `action` resolved against the page's
        base URL, the page's own URL when it has none."""
        self.enctype = (node.attrs.get("enctype") or URLENCODED).strip().lower()
        self.fields: list[tuple[str, str]] = _fields(node)

    def _resolve(self, action: str | None, attribute: str) -> str:
        if action is None or not action.strip():
            return str(self._page)
        joined = urls.join(self._base, action)
        if joined is None:
            raise SpiderError(f"the form's {attribute} {action!r} is not an http(s) URL "
                              "the crawler can request")
        return joined

    def get(self, name: str) -> str | None:
        """The first value of field `name`, or None if the form has no such field."""
        return next((value for key, value in self.fields if key == name), None)

    @locating
    def fill(self, values: Mapping[str, FormValue] | None = None, /,
             **named: FormValue) -> Form:
        """Set fields, by keyword or (for names that are not Python identifiers, like
        `user[name]`) by a dict: a value replaces every value the field had, in the place
        of its first; a list repeats the field; None removes it. A field the form does not
        have is added at the end, as a script of the page might do. Returns the form."""
        for name, value in {**(values or {}), **named}.items():
            self._set(name, value)
        return self

    def _set(self, name: str, value: FormValue) -> None:
        new = [(name, v) for v in _values(name, value)]
        at = next((i for i, (key, _) in enumerate(self.fields) if key == name),
                  len(self.fields))
        rest = [(key, v) for key, v in self.fields if key != name]
        before = sum(1 for key, _ in self.fields[:at] if key != name)
        self.fields = rest[:before] + new + rest[before:]

    @locating
    def submit(self, callback: Callback | None = None, *, button: str | None = None,
               **request_kwargs: Any) -> Request:
        """The request a browser would send: GET with the fields as the query (in place of
        the action's own query), or POST with them form-encoded as the body. `button`
        names the submit button clicked: it is sent too, and its `formaction` and
        `formmethod` apply. Other keywords (`cb_kwargs`, `priority`, `headers`, ...) are
        the Request's."""
        taken = {"method", "data", "body", "json"} & set(request_kwargs)
        if taken:
            raise SpiderError(f"submit() takes the {' and '.join(sorted(taken))} from the "
                              "form; set fields with fill()")
        fields, action, method = list(self.fields), self.action, self.method
        enctype = self.enctype
        if button is not None:
            node = self._button(button)
            fields += _clicked(node)
            if node.attrs.get("formaction"):
                action = self._resolve(node.attrs.get("formaction"), "formaction")
            if node.attrs.get("formmethod"):
                method = _method(node.attrs.get("formmethod"))
            enctype = (node.attrs.get("formenctype") or enctype).strip().lower()
        if method == "GET":
            query = urlencode(fields)
            url = str(URL(action).with_query(None).with_fragment(None))
            return Request(f"{url}?{query}" if query else url, callback, method="GET",
                           **request_kwargs)
        if enctype != URLENCODED:
            raise SpiderError(f"the form posts as {enctype}, which submit() does not "
                              f"support (only {URLENCODED})")
        return Request(action, callback, method="POST", data=fields, **request_kwargs)

    def _button(self, name: str) -> LexborNode:
        buttons = [node for node in controls(self._node) if _is_submitter(node)]
        for node in buttons:
            if node.attrs.get("name") == name and not _disabled(node):
                return node
        names = sorted({n.attrs.get("name") or "" for n in buttons} - {""})
        raise SpiderError(f"the form has no enabled submit button named {name!r} (it has "
                          f"{', '.join(map(repr, names)) or 'none with a name'})")

    def __repr__(self) -> str:
        return f"<Form {self.method} {self.action} {len(self.fields)} fields>"


def _method(value: str | None) -> str:
    method = (value or "get").strip().lower()
    if method == "dialog":
        raise SpiderError("a method=dialog form closes a dialog, it submits nothing")
    return "POST" if method == "post" else "GET"


def _values(name: str, value: FormValue) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [item for v in value for item in _values(name, v)]
    raise SpiderError(f"form field {name!r} must be text, a number, a list of them or None, "
                      f"not {type(value).__name__}")


def controls(form: LexborNode) -> list[LexborNode]:
    """The form's controls in tree order: those inside it, less those a `form=` attribute
    gives to another form, and those outside it whose `form=` names its id."""
    ident = form.attrs.get("id")
    if not ident:
        return [node for node in form.css(CONTROLS) if node.attrs.get("form") is None]
    root = form
    while root.parent is not None:
        root = root.parent
    return [node for node in root.css(CONTROLS) if _owner(node, form, ident)]


def _owner(node: LexborNode, form: LexborNode, ident: str) -> bool:
    named = node.attrs.get("form")
    if named is not None:
        return named == ident
    parent = node.parent
    while parent is not None and parent.tag != "form":  # forms do not nest
        parent = parent.parent
    return parent == form


def _fields(form: LexborNode) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    radios: dict[str, int] = {}  # a group's checked radio: only the last in tree order is
    for node in controls(form):
        name = node.attrs.get("name")
        if not name or _disabled(node):
            continue
        if node.tag == "input":
            kind = (node.attrs.get("type") or "text").strip().lower()
            if kind in BUTTON_TYPES or kind == "file":
                continue
            value = node.attrs.get("value")
            if kind in {"checkbox", "radio"}:
                if "checked" not in node.attrs:
                    continue
                value = "on" if value is None else value  # value="" sends ""
                if kind == "radio":
                    if name in radios:
                        fields[radios[name]] = ("", "")  # unchecked by this one
                    radios[name] = len(fields)
            fields.append((name, value or ""))
        elif node.tag == "select":
            fields += ((name, value) for value in _selected(node))
        elif node.tag == "textarea":
            fields.append((name, node.text(deep=True)))
    return [field for field in fields if field[0]]


def _selected(select: LexborNode) -> list[str]:
    """The values of the selected options that are not disabled (by themselves or by their
    <optgroup>): a disabled option stays selected, and sends nothing."""
    options = select.css("option")
    chosen = [node for node in options if "selected" in node.attrs]
    single = "multiple" not in select.attrs
    if single:
        chosen = chosen[-1:]  # with several marked selected, a browser shows the last
        if not chosen and _display_size(select) == 1:  # a drop-down always shows one
            chosen = next(([node] for node in options if not _option_disabled(node)), [])
    return [_option_value(node) for node in chosen if not _option_disabled(node)]


def _display_size(select: LexborNode) -> int:
    try:
        size = int((select.attrs.get("size") or "").strip())
    except ValueError:
        return 1
    return size if size > 0 else 1


def _option_disabled(option: LexborNode) -> bool:
    if "disabled" in option.attrs:
        return True
    parent = option.parent
    return parent is not None and parent.tag == "optgroup" and "disabled" in parent.attrs


def _option_value(option: LexborNode) -> str:
    value = option.attrs.get("value")
    return " ".join(option.text(deep=True).split()) if value is None else value


def _is_submitter(node: LexborNode) -> bool:
    kind = (node.attrs.get("type") or "").strip().lower()
    if node.tag == "button":
        return kind in {"", "submit"}
    return node.tag == "input" and kind in {"submit", "image"}


def _clicked(node: LexborNode) -> list[tuple[str, str]]:
    name = node.attrs.get("name") or ""
    if (node.attrs.get("type") or "").strip().lower() == "image":
        return [(f"{name}.x", "0"), (f"{name}.y", "0")]  # clicked at its corner
    return [(name, node.attrs.get("value") or "")]


def _disabled(node: LexborNode) -> bool:
    """Disabled itself, or inside a disabled <fieldset> (but not in its first <legend>)."""
    if "disabled" in node.attrs:
        return True
    child, parent = node, node.parent
    while parent is not None and parent.tag != "form":  # forms do not nest
        if parent.tag == "fieldset" and "disabled" in parent.attrs:
            legend = next((n for n in _children(parent) if n.tag == "legend"), None)
            if legend is None or child != legend:
                return True
        child, parent = parent, parent.parent
    return False


def _children(node: LexborNode) -> Iterable[LexborNode]:
    child = node.child
    while child is not None:
        yield child
        child = child.next
