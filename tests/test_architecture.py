"""The dependency rules of the layout, checked on the source with `ast` (nothing is run)."""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("crawler", "spiders", "storage")


@dataclass(frozen=True)
class Import:
    file: str  # path relative to ROOT, e.g. "crawler/engine/crawler.py"
    line: int
    module: str  # absolute dotted module imported from, e.g. "storage.sqlite"
    names: tuple[str, ...]  # names taken with `from module import ...` ("" for `import x`)

    def __str__(self) -> str:
        what = f"from {self.module} import {', '.join(self.names)}" if self.names[0] else (
            f"import {self.module}")
        return f"{self.file}:{self.line}: {what}"


def _package_of(rel: Path) -> list[str]:
    parts = list(rel.with_suffix("").parts)
    return parts if rel.name == "__init__.py" and parts.pop() else parts[:-1]


def collect_imports(rel: Path, source: str | None = None) -> list[Import]:
    if source is None:
        source = (ROOT / rel).read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(rel))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(str(rel), node.lineno, alias.name, ("",)) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(rel)
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append(Import(str(rel), node.lineno, module,
                                tuple(alias.name for alias in node.names)))
    return found


def modules(package: str) -> list[Path]:
    return sorted(p.relative_to(ROOT) for p in (ROOT / package).rglob("*.py"))


ALL_MODULES = [m for package in PACKAGES for m in modules(package)]
ALL_IMPORTS = [imp for m in ALL_MODULES for imp in collect_imports(m)]


def top(module: str) -> str:
    return module.split(".", 1)[0]


def test_the_layout_is_found() -> None:
    files = {str(m) for m in ALL_MODULES}
    assert {"crawler/http/fetcher.py", "storage/sqlite/store.py", "spiders/site.py",
            "crawler/__init__.py"} <= files
    assert any(imp.module == "aiohttp" for imp in ALL_IMPORTS)  # the walker sees imports


def test_import_walker_resolves_relative_and_nested_imports() -> None:
    source = (
        "from . import urls\n"
        "from .frontier import Frontier\n"
        "from ...storage.sqlite import SQLiteStore\n"
        "def f():\n    import aiohttp.web\n"
        "if True:\n    from storage import Store\n"
    )
    engine = Path("crawler/engine/crawler.py")
    got = [(imp.module, imp.names) for imp in collect_imports(engine, source)]
    assert sorted(got) == sorted([
        ("crawler.engine", ("urls",)), ("crawler.engine.frontier", ("Frontier",)),
        ("storage.sqlite", ("SQLiteStore",)), ("aiohttp.web", ("",)), ("storage", ("Store",)),
    ])
    pkg = [imp.module for imp in collect_imports(Path("storage/__init__.py"), "from . import base")]
    assert pkg == ["storage"]


def offenders(rule: str, bad: list[Import]) -> str:
    return f"{rule}:\n" + "\n".join(f"  {imp}" for imp in bad)


def test_only_the_http_package_imports_aiohttp() -> None:
    bad = [imp for imp in ALL_IMPORTS
           if top(imp.module) == "aiohttp" and not imp.file.startswith("crawler/http/")]
    assert not bad, offenders("only crawler/http/ may import aiohttp", bad)


def test_only_the_sqlite_store_imports_aiosqlite() -> None:
    bad = [imp for imp in ALL_IMPORTS if top(imp.module) in ("aiosqlite", "sqlite3")
           and not imp.file.startswith("storage/sqlite/")]
    assert not bad, offenders("only storage/sqlite/ may import aiosqlite or sqlite3", bad)


def test_only_the_postgres_store_imports_asyncpg() -> None:
    bad = [imp for imp in ALL_IMPORTS if top(imp.module) == "asyncpg"
           and not imp.file.startswith("storage/postgres/")]
    assert not bad, offenders("only storage/postgres/ may import asyncpg", bad)


def test_only_the_user_facing_modules_draw_with_rich() -> None:
    # The engine stays a library: what it knows leaves it as a Snapshot, drawn elsewhere.
    bad = [imp for imp in ALL_IMPORTS if top(imp.module) == "rich"
           and imp.file != "crawler/observe/display.py" and not imp.file.startswith("crawler/cli/")]
    assert not bad, offenders("only crawler/cli/ and crawler/observe/display.py may import rich",
                              bad)
    assert any(top(imp.module) == "rich" for imp in ALL_IMPORTS)


def test_only_the_cli_reads_argv_and_the_environment() -> None:
    bad = [imp for imp in ALL_IMPORTS if not imp.file.startswith("crawler/cli/")
           and (imp.module == "argparse" or (imp.module == "os" and "environ" in imp.names)
                or (imp.module == "sys" and "argv" in imp.names))]
    uses = [f"{m}: {attr}" for m in ALL_MODULES if not str(m).startswith("crawler/cli/")
            for attr in ("sys.argv", "os.environ", "os.getenv")
            if attr in (ROOT / m).read_text(encoding="utf-8")]
    assert not bad and not uses, (offenders("only crawler/cli/ may read argv", bad), uses)


def test_storage_never_imports_crawler_or_spiders() -> None:
    bad = [imp for imp in ALL_IMPORTS
           if imp.file.startswith("storage/") and top(imp.module) in ("crawler", "spiders")]
    assert not bad, offenders("storage/ must not import crawler or spiders", bad)


def test_spiders_use_only_the_public_crawler_package() -> None:
    public = set(importlib.import_module("crawler").__all__)
    bad = [imp for imp in ALL_IMPORTS
           if imp.file.startswith("spiders/")
           and (top(imp.module) == "storage"
                or (top(imp.module) == "crawler"
                    and (imp.module != "crawler"
                         # `import crawler` or `from crawler import urls` (a submodule,
                         # not a public name) both escape the public API.
                         or any(name not in public for name in imp.names))))]
    assert not bad, offenders(
        "spiders/ may only `from crawler import <public name>` and never storage", bad)


def test_only_the_cli_knows_the_built_in_spiders() -> None:
    # The CLI is the composition root; the engine and the API never depend on spiders/.
    bad = [imp for imp in ALL_IMPORTS
           if imp.file.startswith("crawler/") and top(imp.module) == "spiders"
           and not imp.file.startswith("crawler/cli/")]
    assert not bad, offenders("only crawler/cli/ may import spiders", bad)


def test_crawler_reaches_storage_only_through_the_package() -> None:
    bad = [imp for imp in ALL_IMPORTS
           if imp.file.startswith("crawler/") and top(imp.module) == "storage"
           and imp.module != "storage"]
    assert not bad, offenders("crawler/ must import storage only as `storage`", bad)
    # ... and never names the SQLite implementation itself.
    bad = [imp for imp in ALL_IMPORTS
           if imp.file.startswith("crawler/") and imp.module == "storage"
           and "SQLiteStore" in imp.names]
    assert not bad, offenders("crawler/ must use the Store interface, not SQLiteStore", bad)


def test_every_name_in_crawler_all_is_defined() -> None:
    crawler = importlib.import_module("crawler")
    names = crawler.__all__
    assert names, "crawler.__all__ is empty"
    missing = [name for name in names if not hasattr(crawler, name)]
    assert not missing, f"crawler.__all__ names undefined attributes: {missing}"
    # And statically: each is bound in crawler/__init__.py (imported or defined there).
    tree = ast.parse((ROOT / "crawler" / "__init__.py").read_text(encoding="utf-8"))
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign):
            bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
    assert not set(names) - bound


# -- the layers of crawler/ -------------------------------------------------------------------

# What each part of crawler/ may import, besides itself, the standard library and third-party
# libraries (those have rules of their own, above and below). The data path points one way:
# the user's model, URLs and HTML, and the pure decisions of policy know nothing of fetching,
# of the engine that drives them, of what watches it or of the command line; only the engine
# wires them together, and only the command line knows the built-in spiders.
LAYERS: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "settings": frozenset({"errors"}),  # how a config's fields describe themselves
    "config": frozenset({"errors", "settings"}),
    "urls": frozenset({"errors"}),
    "html": frozenset({"errors"}),
    "model": frozenset({"config", "errors", "html", "settings", "urls"}),
    "policy": frozenset({"config", "errors", "model", "settings", "urls", "storage"}),
    "observe": frozenset({"config", "errors"}),
    "http": frozenset({"config", "errors", "observe", "urls"}),
    "feeds": frozenset({"config", "errors", "observe", "storage"}),  # items out while crawling
    "engine": frozenset({"config", "errors", "feeds", "html", "http", "model", "observe",
                         "policy", "urls", "storage"}),
    # Running crawls from Python (crawler.crawl, iter_items): what the command line sits on.
    "api": frozenset({"config", "engine", "errors", "feeds", "model"}),
    "cli": frozenset({"config", "errors", "feeds", "html", "http", "model", "observe", "policy",
                      "urls", "engine", "settings", "storage", "spiders", "__init__", "api"}),
    "__init__": frozenset({"api", "config", "engine", "errors", "model"}),  # the public API
}
# Packages that decide without doing I/O: what they do is tested without sockets or files.
PURE = ("urls", "html", "policy")
IO_MODULES = frozenset({"asyncio", "aiohttp", "aiosqlite", "sqlite3", "socket", "ssl",
                        "selectors", "subprocess", "aiodns", "urllib", "http", "shutil"})


def layer_of_file(file: str) -> str:
    """"crawler/policy/robots.py" -> "policy", "crawler/config.py" -> "config"."""
    parts = Path(file).parts
    return Path(parts[1]).stem if len(parts) == 2 else parts[1]


def layer_of_module(module: str) -> str | None:
    """The part of crawler/ (or "storage", "spiders") a module is in; None for any other."""
    parts = module.split(".")
    if parts[0] in ("storage", "spiders"):
        return parts[0]
    if parts[0] != "crawler":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _imported_modules(imp: Import) -> list[str]:
    """`from crawler import settings` imports the module crawler.settings, not the package."""
    if imp.module != "crawler":
        return [imp.module]
    return [f"crawler.{name}" if (ROOT / "crawler" / f"{name}.py").exists()
            or (ROOT / "crawler" / name).is_dir() else "crawler" for name in imp.names]


def layer_violations(imports: list[Import]) -> list[Import]:
    bad = []
    for imp in imports:
        if not imp.file.startswith("crawler/"):
            continue
        here = layer_of_file(imp.file)
        for module in _imported_modules(imp):
            there = layer_of_module(module)
            if there is not None and there != here and there not in LAYERS[here]:
                bad.append(imp)
                break
    return bad


def test_every_part_of_crawler_has_its_layer() -> None:
    parts = {layer_of_file(str(m)) for m in ALL_MODULES if str(m).startswith("crawler/")}
    assert parts == set(LAYERS), "a new part of crawler/ needs its row in LAYERS"


def test_each_part_of_crawler_imports_only_the_layers_it_may() -> None:
    bad = layer_violations(ALL_IMPORTS)
    assert not bad, offenders("imports across crawler/'s layers that LAYERS does not allow", bad)


def test_the_layer_rule_sees_a_wrong_import() -> None:
    source = ("from crawler.engine.crawler import Crawler\nfrom crawler import cli\n"
              "from crawler.urls.canon import join\nimport yarl\n")
    bad = layer_violations(collect_imports(Path("crawler/policy/x.py"), source))
    assert [imp.module for imp in bad] == ["crawler.engine.crawler", "crawler"]
    assert layer_of_file("crawler/errors.py") == "errors"
    assert layer_of_file("crawler/__init__.py") == "__init__"


def test_the_pure_packages_do_no_io() -> None:
    bad = [imp for imp in ALL_IMPORTS if layer_of_file(imp.file) in PURE
           and imp.file.startswith("crawler/") and top(imp.module) in IO_MODULES]
    assert not bad, offenders(f"crawler/{{{','.join(PURE)}}} must not import I/O modules", bad)
    opens = [f"{m}:{node.lineno}" for m in ALL_MODULES
             if str(m).startswith("crawler/") and layer_of_file(str(m)) in PURE
             for node in ast.walk(ast.parse((ROOT / m).read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id == "open"]
    assert not opens, f"the pure packages must not open files: {opens}"


# -- sizes ------------------------------------------------------------------------------------

MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def sizes() -> dict[str, int]:
    """Lines of every module, and of every class (as "file:Class", `end_lineno - lineno + 1`)."""
    found: dict[str, int] = {}
    for m in ALL_MODULES:
        source = (ROOT / m).read_text(encoding="utf-8")
        found[str(m)] = len(source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                found[f"{m}:{node.name}"] = node.end_lineno - node.lineno + 1
    return found


def test_no_module_is_over_400_lines_and_no_class_over_250() -> None:
    def limit(name: str) -> int:
        return MAX_CLASS_LINES if ":" in name else MAX_MODULE_LINES

    found = sizes()
    over = {name: lines for name, lines in found.items() if lines > limit(name)}
    assert not over, f"too big: {over}"
    assert found["crawler/html/nesting.py"] > 20 and "crawler/urls/scope.py:Scope" in found


@pytest.mark.parametrize("module", [str(m) for m in ALL_MODULES])
def test_every_module_parses(module: str) -> None:
    ast.parse((ROOT / module).read_text(encoding="utf-8"), filename=module)


# Who may make a CanonicalURL (see crawler/urls/canon.py): the canonicalising functions and
# the intake, which trusts the store's rows (the crawl's own keys). The Resolver's fast path
# makes one too, by a typed `ignore` rather than a call (it is taken by most links).
MAKES_CANONICAL_URLS = frozenset({"crawler/urls/canon.py", "crawler/engine/intake.py"})


def canonical_url_makers(rel: Path, source: str | None = None) -> list[str]:
    """`file:line` of each call `CanonicalURL(...)` (by any import path) in a module."""
    if source is None:
        source = (ROOT / rel).read_text(encoding="utf-8")
    return [f"{rel}:{node.lineno}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Name) and node.func.id == "CanonicalURL")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "CanonicalURL"))]


def test_only_canon_the_resolver_and_the_intake_make_canonical_urls() -> None:
    makers = [where for m in ALL_MODULES for where in canonical_url_makers(m)]
    assert {where.partition(":")[0] for where in makers} == MAKES_CANONICAL_URLS, makers


def test_the_canonical_url_rule_sees_a_wrong_maker() -> None:
    source = "from crawler.urls import canon\nkey = canon.CanonicalURL('http://h/')\n"
    assert canonical_url_makers(Path("crawler/engine/x.py"), source) == ["crawler/engine/x.py:2"]
