"""The shapes a spider callback may have, and the check that refuses any other.

A callback may be an `async def` generator, a plain `def` generator (Scrapy's shape), or a
`def` / `async def` function that returns a list of items and requests, or None. What a
plain function returns is only known when it runs, so its `return` statements are read
from its source: one that returns a dict, a tuple, a string, a single request... is refused
before the crawl fetches anything, instead of failing every page it is called on. A
`return` of an expression the source cannot tell about (a name, a call) is checked when
the callback runs.
"""

from __future__ import annotations

import ast
import enum
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from crawler.errors import SpiderError


class Shape(enum.Enum):
    ASYNC_GENERATOR = "async def ... yield"
    GENERATOR = "def ... yield"
    COROUTINE = "async def ... return [...]"
    FUNCTION = "def ... return [...]"


ACCEPTED = ("an `async def` or `def` generator that yields items and requests, or a "
            "function that returns a list of them (or None)")

# Return values that are never a list: refused when the spider is loaded.
_NOT_A_LIST = (ast.Dict, ast.DictComp, ast.Set, ast.SetComp, ast.Tuple, ast.Constant,
               ast.JoinedStr, ast.GeneratorExp, ast.Lambda, ast.Compare)
# Calls that make one request or item, not a list of them.
_SINGLE = frozenset({"Request", "follow", "submit", "dict"})

_shapes: dict[Any, Shape] = {}  # by function: a check reads source once per method


def shape_of(method: Callable[..., Any], name: str | None = None) -> Shape:
    """The shape of a bound callback, or SpiderError naming it (and where it is defined)."""
    if not inspect.ismethod(method):
        name = name or getattr(method, "__name__", repr(method))
        raise SpiderError(f"callback {name!r} is {method!r}, not a method: write "
                          f"'async def {name}(self, response):' that yields items and requests")
    function = method.__func__
    known = _shapes.get(function)
    if known is not None:
        return known
    name = name or method.__name__
    if inspect.isasyncgenfunction(method):
        shape = Shape.ASYNC_GENERATOR
    elif inspect.isgeneratorfunction(method):
        shape = Shape.GENERATOR
    else:
        bad = _bad_return(function)
        if bad is not None:
            raise SpiderError(f"callback {name!r}{_where(function)} returns {bad}: a callback "
                              f"must be {ACCEPTED}; e.g. 'yield' each item instead of "
                              "returning it")
        shape = Shape.COROUTINE if inspect.iscoroutinefunction(method) else Shape.FUNCTION
    _shapes[function] = shape
    return shape


def returned_wrong(name: str, method: Callable[..., Any], value: object) -> str:
    """Why a function callback's return value was refused when it ran."""
    where = _where(getattr(method, "__func__", method))
    return (f"callback {name!r}{where} returned {type(value).__name__} {_short(value)}: a "
            f"callback must be {ACCEPTED}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(function: Any) -> str:
    code = getattr(function, "__code__", None)
    return "" if code is None else f" (at {code.co_filename}:{code.co_firstlineno})"


def _bad_return(function: Any) -> str | None:
    """What the first `return` that cannot give a list returns ("a dict"), or None."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None  # no source to read (made at run time): checked when it runs
    definition = tree.body[0] if tree.body else None
    if not isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    for node in _own_returns(definition):
        value = node.value
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            continue
        if isinstance(value, _NOT_A_LIST):
            kind = type(value.value).__name__ if isinstance(value, ast.Constant) else \
                type(value).__name__.lower().removesuffix("comp").removesuffix("exp")
            return f"{_article(kind)} (line {_line(function, node)})"
        if isinstance(value, ast.Call) and _called_name(value.func) in _SINGLE:
            return (f"a single {_called_name(value.func)}(...) (line {_line(function, node)}); "
                    "return a list of them")
    return None


def _own_returns(definition: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.Return]:
    """The function's return statements, not those of functions defined inside it."""
    found: list[ast.Return] = []
    todo: list[ast.AST] = list(definition.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Return):
            found.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                            | ast.ClassDef):
            todo.extend(ast.iter_child_nodes(node))
    return sorted(found, key=lambda n: n.lineno)


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _line(function: Any, node: ast.AST) -> int:
    return int(function.__code__.co_firstlineno) + getattr(node, "lineno", 1) - 1


def _article(kind: str) -> str:
    names = {"joinedstr": "str", "compare": "bool",
             "generator": "generator expression"}
    kind = names.get(kind, kind)
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
