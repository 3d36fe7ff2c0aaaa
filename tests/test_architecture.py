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


def test_only_the_fetcher_imports_aiohttp() -> None:
    bad = [imp for imp in ALL_IMPORTS
           if top(imp.module) == "aiohttp" and imp.file != "crawler/http/fetcher.py"]
    assert not bad, offenders("only crawler/http/fetcher.py may import aiohttp", bad)


def test_only_the_sqlite_store_imports_aiosqlite() -> None:
    bad = [imp for imp in ALL_IMPORTS if top(imp.module) in ("aiosqlite", "sqlite3")
           and not imp.file.startswith("storage/sqlite/")]
    assert not bad, offenders("only storage/sqlite/ may import aiosqlite or sqlite3", bad)


def test_only_the_user_facing_modules_draw_with_rich() -> None:
    # The engine stays a library: what it knows leaves it as a Snapshot, drawn elsewhere.
    allowed = {"crawler/observe/display.py", "crawler/cli/stats.py", "crawler/cli/main.py"}
    bad = [imp for imp in ALL_IMPORTS if top(imp.module) == "rich" and imp.file not in allowed]
    assert not bad, offenders(f"only {sorted(allowed)} may import rich", bad)
    assert any(top(imp.module) == "rich" for imp in ALL_IMPORTS)


def test_only_the_cli_reads_argv_and_the_environment() -> None:
    bad = [imp for imp in ALL_IMPORTS if imp.file != "crawler/cli/main.py"
           and (imp.module == "argparse" or (imp.module == "os" and "environ" in imp.names)
                or (imp.module == "sys" and "argv" in imp.names))]
    uses = [f"{m}: {attr}" for m in ALL_MODULES if str(m) != "crawler/cli/main.py"
            for attr in ("sys.argv", "os.environ", "os.getenv")
            if attr in (ROOT / m).read_text(encoding="utf-8")]
    assert not bad and not uses, (offenders("only crawler/cli/main.py may read argv", bad), uses)


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
           and imp.file != "crawler/cli/main.py"]
    assert not bad, offenders("only crawler/cli/main.py may import spiders", bad)


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


@pytest.mark.parametrize("module", [str(m) for m in ALL_MODULES])
def test_every_module_parses(module: str) -> None:
    ast.parse((ROOT / module).read_text(encoding="utf-8"), filename=module)
