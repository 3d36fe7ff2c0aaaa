"""Fake a state file of an older schema: a current file with what later schemas added undone.

The steps mirror storage/sqlite/schema.py's MIGRATIONS, in reverse: undoing step N turns a
file of schema N + 1 into one of schema N. A new migration needs its undoing here too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage.sqlite import SCHEMA_VERSION

UNDO: dict[int, tuple[str, ...]] = {
    6: ("DROP TABLE feeds",),
    5: ("DROP TABLE cookies",),
    4: tuple(f"ALTER TABLE requests DROP COLUMN {column}" for column in ("method", "spec",
                                                                          "body")),
    3: ("ALTER TABLE requests DROP COLUMN kind",),
    2: ("DROP INDEX requests_parked",),
    1: ("ALTER TABLE runs DROP COLUMN stats",),
}


def make_older(path: Path, version: int) -> None:
    """Turn the state file at `path` (closed, of the current schema) into one of `version`.

    Only the layout changes: a test that fakes an older file's contents (schema 3 kept a
    failure's kind in its error text) rewrites them before calling this.
    """
    missing = [step for step in range(version, SCHEMA_VERSION) if step not in UNDO]
    assert not missing, f"tests/oldschema.py cannot undo schema step(s) {missing}"
    conn = sqlite3.connect(path)
    try:
        for step in range(SCHEMA_VERSION - 1, version - 1, -1):
            for statement in UNDO[step]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()
