"""`crawl export`: what it writes is safe to open, and an export cut short leaves nothing
behind once it is run again."""

from __future__ import annotations

import asyncio
import csv
import fcntl
import json
import signal
import subprocess
import time
from pathlib import Path

from storage import Completion, NewRequest
from storage.sqlite import SQLiteStore
from tests.helpers import CLI, EXIT_USAGE, crawl, crawl_ok


async def _store_items(path: Path, items: list[dict[str, object]]) -> None:
    """A crawl whose one page yielded `items`, written through the Store API."""
    store = await SQLiteStore.open(path)
    try:
        await store.open_crawl("items", "{}", fresh=False)
        await store.add([NewRequest("http://127.0.0.1/")])
        (lease,) = await store.claim(1, time.time())
        await store.record(Completion(lease.id, 200, [json.dumps(i) for i in items]))
        await store.finish_run("finished")
    finally:
        await store.close()


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# -- CSV formula injection (OWASP: prefix a cell that a spreadsheet would run) ---------------

FORMULAS = ["=1+1", "+SUM(A1:A2)", "-2+3", "@cmd", "\t=1+1", "\r=1+1",
            "=HYPERLINK(\"http://127.0.0.1/x\",\"click\")"]


def test_csv_export_neutralises_formulas(tmp_path: Path) -> None:
    state = tmp_path / "f.db"
    items: list[dict[str, object]] = [{"cell": text, "n": -5} for text in FORMULAS]
    items += [
        {"cell": "-5", "n": 2.5},  # numbers, as text or not, are left alone
        {"cell": "a=1", "n": -1e-3},  # only the first character counts
        {"cell": "", "n": 0},
        {"=evil": "=x"},  # field names are cells too (the header row)
    ]
    asyncio.run(_store_items(state, items))
    out = tmp_path / "out.csv"
    crawl_ok("export", str(state), "--format", "csv", "-o", str(out))
    header, *rows = _read_csv(out)
    assert header == ["cell", "n", "'=evil"]
    assert [row[0] for row in rows[: len(FORMULAS)]] == ["'" + f for f in FORMULAS]
    assert {row[1] for row in rows[: len(FORMULAS)]} == {"-5"}
    assert rows[len(FORMULAS):] == [["-5", "2.5", ""], ["a=1", "-0.001", ""], ["", "0", ""],
                                    ["", "", "'=x"]]
    # JSON Lines is data, not a sheet: stored text goes out as it is.
    lines = crawl_ok("export", str(state)).stdout.splitlines()
    assert [json.loads(line).get("cell") for line in lines[: len(FORMULAS)]] == FORMULAS


# -- an export cut short ---------------------------------------------------------------------


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_export_leaves_nothing_behind_once_run_again(tmp_path: Path) -> None:
    state = tmp_path / "big.db"
    pad = "x" * 400
    # 12 MB of CSV: the export is still writing when it has put 1 MB aside.
    asyncio.run(_store_items(state, [{"n": n, "text": pad} for n in range(30_000)]))
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "items.csv"
    command = [*CLI, "export", str(state), "--format", "csv", "-o", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not any((folder / name).stat().st_size > 1_000_000 for name in _hidden(folder)):
        assert proc.poll() is None, "the export ended before it could be killed"
        assert time.monotonic() < deadline, "the export wrote nothing aside"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    assert not out.exists(), "a killed export left a half file in place"
    crawl_ok("export", str(state), "--format", "csv", "-o", str(out))
    assert _hidden(folder) == [], "partial files of the killed exports are left beside it"
    assert len(_read_csv(out)) == 30_001


def test_two_exports_to_one_file_do_not_write_over_each_other(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    asyncio.run(_store_items(state, [{"n": 1}]))
    out = tmp_path / "items.jsonl"
    partial = tmp_path / ".items.jsonl.partial"
    partial.write_text("another export's half\n")
    with partial.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as an export under way holds it
        proc = crawl("export", str(state), "-o", str(out), timeout=60)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "another export is writing" in proc.stderr, proc.stderr
    assert partial.read_text() == "another export's half\n" and not out.exists()
    crawl_ok("export", str(state), "-o", str(out))
    assert out.read_text() == '{"n": 1}\n' and not partial.exists()
