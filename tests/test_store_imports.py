"""`import storage` loads no database driver: the interface is importable without one, and
the SQLite store (with aiosqlite and sqlite3) loads only when it is asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQLITE = ("aiosqlite", "sqlite3", "_sqlite3")
DRIVERS = (*SQLITE, "asyncpg")


def loaded_after(statement: str) -> list[str]:
    """The drivers a fresh interpreter holds after running `statement`."""
    probe = (f"import sys\n{statement}\nimport json\n"
             f"print(json.dumps([m for m in {DRIVERS!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True, cwd=ROOT)
    return list(json.loads(proc.stdout))


def test_the_storage_interface_loads_no_driver() -> None:
    assert loaded_after("import storage; from storage import Store, open_store") == []
    # The crawler's side of the boundary does not load one either.
    assert loaded_after("import crawler.engine.state") == []


def test_the_sqlite_store_loads_its_driver() -> None:
    # The probe itself sees a driver when one is loaded.
    assert loaded_after("from storage.sqlite import SQLiteStore") == list(SQLITE)


def test_the_postgres_store_loads_its_driver_alone() -> None:
    assert loaded_after("from storage.postgres import PostgresStore") == ["asyncpg"]
    # Naming a crawl in a URL, and hiding its password, needs no driver.
    assert loaded_after("from storage.locations import Location, name_crawl, shown") == []
