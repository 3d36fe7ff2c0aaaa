"""`crawl new NAME URL`: write NAME.py, a commented spider that runs as it is."""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import logging
import os
import re
import shlex
import sys
from pathlib import Path

from crawler.cli.crawl import check_urls
from crawler.cli.exits import EXIT_OK
from crawler.errors import ConfigError
from crawler.observe import logs
from crawler.urls import canon

status_log = logging.getLogger(logs.STATUS)

TEMPLATE = '''\
"""The {name} spider, made by `crawl new {name} {url}`.

    crawl check {file}                     # what is wrong with it, without crawling
    crawl run {file} --state {name}.db     # crawl; run it again to resume
    crawl export {name}.db -o {name}.jsonl # the items

Try selectors on a page before writing them here:
    crawl fetch {shell_url} --css "h1"
"""

from crawler import Spider


class {cls}(Spider):
    name = {name!r}                 # the default state file is {name}.crawl.db
    start_urls = [{url!r}]
    # The crawl stays on the start URLs' hosts (and their subdomains).
    delay = 1.0                     # seconds between requests to one host: be polite
    max_pages = 100                 # stop after this many; raise it and rerun to go on

    async def parse(self, response):
        """Called with every page fetched: yield items (dicts) and requests to follow."""
        yield {{
            "url": response.url,
            "title": response.title,  # <title>, whitespace collapsed
            # response.css("div.price") lists the nodes a selector matches;
            # response.css_first("h1").text() is the text of the first one.
        }}
        # Follow the page's links; another callback would be
        # response.follow(href, self.parse_detail).
        for request in response.follow_all("a[href]"):
            yield request
'''


def command(args: argparse.Namespace) -> int:
    """`crawl new NAME URL`: NAME.py in the current folder, never over an existing file."""
    name = args.name.removesuffix(".py")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or keyword.iskeyword(name):
        raise ConfigError(f"{args.name!r} cannot name a spider: use letters, digits and _ "
                          "(not first a digit), e.g. quotes or book_prices")
    check_urls([args.url])
    # The canonical URL: percent-encoded, it holds no quote or backslash that would end
    # the docstring or start an escape in it.
    url = canon.parse_absolute(args.url)
    path = Path(f"{name}.py")
    _refuse_a_module_name(name, path)
    text = TEMPLATE.format(name=name, cls=class_name(name), url=url, file=path,
                           shell_url=shlex.quote(url))
    try:
        # O_EXCL: never write over a file, even one made since we looked.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise ConfigError(f"{path} exists; it is left as it is (choose another name, or "
                          "remove it first)") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    status_log.info("wrote %s; try it with: crawl run %s --state %s", path,
                    shlex.quote(str(path)), shlex.quote(f"{name}.db"))
    return EXIT_OK


# The crawler's own top-level packages (the wheel installs these).
_OWN = frozenset({"crawler", "storage", "spiders"})


def _refuse_a_module_name(name: str, path: Path) -> None:
    """NAME.py in the current folder is imported as NAME by any script (and `python -m`)
    run there: json.py or crawler.py would replace the module of that name, and break
    everything run in that folder, the spider first (`from crawler import Spider`)."""
    if path.exists():
        return  # said below, where the file is made
    taken = (name in _OWN or name in sys.stdlib_module_names
             or (name.startswith("__") and name.endswith("__"))
             or importlib.util.find_spec(name) is not None)
    if taken:
        raise ConfigError(f"{name!r} is the name of a Python module ({name}.py would hide "
                          "it from every script run in this folder); choose another, e.g. "
                          f"{name}_spider")


def class_name(name: str) -> str:
    """`book_prices` -> `BookPrices`: the spider's class."""
    words = [w for w in name.split("_") if w]
    cls = "".join(w[0].upper() + w[1:] for w in words) or "Spider_"
    return f"{cls}Spider" if cls in ("Spider", "Request", "Response") else cls
