"""`crawl check SPIDER [URL...]`: load a spider and say what is wrong with it, fetching
nothing and touching no state file. The checks are the crawl's own (the loader, the
settings' validation, the start requests, the callbacks' shapes), made before it would
fetch, plus the callbacks the spider's source names, which a crawl checks only when a
request naming them is made."""

from __future__ import annotations

import argparse
import ast
import inspect
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from crawler import settings
from crawler.cli import running
from crawler.cli.crawl import make_spider
from crawler.cli.exits import EXIT_OK, EXIT_USAGE
from crawler.config import SPIDER_SETTINGS, CrawlConfig
from crawler.errors import ConfigError, SpiderError
from crawler.model.callshape import shape_of
from crawler.model.items import ItemEncoder
from crawler.model.loader import user_error
from crawler.model.pipelines import Pipelines
from crawler.model.request import Request
from crawler.model.specs import check_statuses
from crawler.model.spider import Spider

# Calls that take a callback as their second argument, and the keywords that name one.
_TAKES_CALLBACK = frozenset({"Request", "follow", "follow_all", "submit"})
_CALLBACK_WORDS = frozenset({"callback", "errback"})


@dataclass
class Findings:
    facts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def command(args: argparse.Namespace) -> int:
    """Print what was found; exit 0 if the spider would crawl, 2 if not."""
    found = Findings()
    try:
        spider = make_spider(args.spider, args.urls)
    except SpiderError as exc:  # nothing else can be checked without the spider
        found.errors.append(str(exc))
    else:
        try:
            found.facts.append(f"{type(spider).__name__} (name {spider.name!r}) "
                               f"from {args.spider}")
            check_spider(spider, found)
        except Exception as exc:  # the spider's own code (a property, __getattr__) raised
            found.errors.append(f"checking {type(spider).__name__} failed: "
                                f"{user_error(exc)}")
    for fact in found.facts if not args.quiet else ():
        print(fact)
    for error in dict.fromkeys(found.errors):
        print(f"error: {error}")
    for warning in found.warnings:
        print(f"warning: {warning}")
    if found.errors:
        print(f"{len(found.errors)} problem(s): it would not crawl")
        return EXIT_USAGE
    if not args.quiet:
        print("ok" + (f", with {len(found.warnings)} warning(s)" if found.warnings else ""))
    return EXIT_OK


def check_spider(spider: Spider, found: Findings) -> None:
    if not spider.name:
        found.errors.append(f"{type(spider).__name__} has no name; set `name = \"...\"`")
    _settings(spider, found)
    try:
        check_statuses(spider.handle_statuses)
    except SpiderError as exc:
        found.errors.append(str(exc))
    try:  # as the crawl checks them before it starts
        Pipelines.of(spider)
        ItemEncoder.of(spider)
    except SpiderError as exc:
        found.errors.append(str(exc))
    starts = _start_requests(spider, found)
    named = named_callbacks(type(spider))
    named += [r.callback for r in starts or () if r.callback and r.callback not in named]
    bare = {r.callback or "parse" for r in starts or () if not r.cb_kwargs_json}
    for name in named:
        _check_callback(spider, name, found, bare=name in bare)
    if starts is None:
        return
    if type(spider).parse is Spider.parse and any(r.callback is None for r in starts):
        found.errors.append(f"{type(spider).__name__}.parse() is not written, and the "
                            "start requests' pages go to it")
    keys = [r.key for r in starts if r.key is not None]
    found.facts.append(f"{len(keys)} start request(s)"
                       + "".join(f"\n  {key}" for key in keys[:10]))
    if not starts:
        found.errors.append("no start requests: nothing to crawl (give it start_urls, or "
                            "start URLs on the command line)")


def _check_callback(spider: Spider, name: str, found: Findings, *, bare: bool) -> None:
    method = getattr(spider, name, None)
    if method is None:
        found.errors.append(f"{type(spider).__name__} names a callback self.{name}, which "
                            "it does not have")
        return
    try:
        found.facts.append(f"callback {name}: {shape_of(method, name).value}")
    except SpiderError as exc:
        found.errors.append(str(exc))
        return
    _check_parameters(name, method, found, bare=bare)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _check_parameters(name: str, method: Any, found: Findings, *, bare: bool) -> None:
    """A callback is called with the response (an errback with the failure), and with a
    request's cb_kwargs by name: what else it requires fails every call."""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return
    if not params or params[0].kind not in (*_POSITIONAL, inspect.Parameter.VAR_POSITIONAL):
        found.errors.append(f"callback {name} takes no response: write 'async def "
                            f"{name}(self, response):'")
        return
    rest = [p for p in params[1:] if p.default is p.empty and p.kind is not p.VAR_POSITIONAL
            and p.kind is not p.VAR_KEYWORD]
    unnamed = [p.name for p in rest if p.kind not in _BY_NAME]
    if unnamed:
        found.errors.append(f"callback {name} requires {', '.join(unnamed)} besides the "
                            "response, which nothing can pass")
    needed = [p.name for p in rest if p.kind in _BY_NAME]
    if needed and bare:  # other requests naming it may give them in cb_kwargs: not said
        found.errors.append(f"callback {name} requires {', '.join(needed)} besides the "
                            "response, which only a request's cb_kwargs pass; a start "
                            "request calls it without them")


def _settings(spider: Spider, found: Findings) -> None:
    mistake = settings.misspelt(type(spider), [f for f in settings.fields(CrawlConfig)
                                              if f.about.spider])
    if mistake is not None:
        found.warnings.append(mistake)
    for f in settings.fields(CrawlConfig):
        if not f.about.spider and _set_by_user(type(spider), f.name):
            how = ", ".join(o.flag for o in f.about.options) or "a CrawlConfig field"
            found.warnings.append(f"{f.name} is a setting a spider cannot set ({how}); "
                                  "as a class attribute it changes nothing")
    given = {k: getattr(spider, k, None) for k in SPIDER_SETTINGS}
    try:
        CrawlConfig().with_overrides(given)
    except ConfigError as exc:
        found.errors.append(f"settings: {exc}")
        return
    chosen = [f"{k}={v!r}" for k, v in given.items() if v is not None]
    found.facts.append("settings: " + (" ".join(chosen) or "the defaults"))


def _set_by_user(cls: type, name: str) -> bool:
    return any(name in vars(owner) for owner in cls.__mro__
               if owner is not object and owner.__module__.split(".")[0] != "crawler")


def _start_requests(spider: Spider, found: Findings) -> list[Request] | None:
    """The spider's start requests, each with a URL a crawl can start from."""
    try:
        made = running.run(_collect(spider.start_requests()), "asyncio")
    except Exception as exc:
        found.errors.append(f"start_requests() failed: {user_error(exc)}")
        return None
    starts = []
    for req in made:
        if not isinstance(req, Request):
            found.errors.append(f"start_requests() yielded {req!r}; yield Request objects")
        elif req.key is None:
            try:
                req.absolute_url  # noqa: B018 (it raises the error that says what is wrong)
                why = f"not a crawlable URL: {req.url!r}"
            except ValueError as exc:
                why = str(exc)
            found.errors.append(f"bad start URL: {why}")
        else:
            starts.append(req)
    return starts


async def _collect(requests: AsyncIterator[Any]) -> list[Any]:
    return [req async for req in requests]


def named_callbacks(cls: type) -> list[str]:
    """`parse`, then every method the class's source passes as a callback or errback
    (`response.follow(href, self.parse_book)`, `errback=self.on_error`), in order."""
    names = ["parse"]
    for owner in reversed(cls.__mro__):
        if owner.__module__.split(".")[0] in ("crawler", "builtins"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(owner))
        except (OSError, TypeError):
            continue
        names.extend(n for n in _callbacks_in(ast.parse(source)) if n not in names)
    return names


def _callbacks_in(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = node.func.attr if isinstance(node.func, ast.Attribute) else (
            node.func.id if isinstance(node.func, ast.Name) else "")
        given = [kw.value for kw in node.keywords if kw.arg in _CALLBACK_WORDS]
        if called in _TAKES_CALLBACK and len(node.args) >= 2:
            given.append(node.args[1])
        for value in given:
            if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) \
                    and value.value.id == "self":
                yield value.attr
