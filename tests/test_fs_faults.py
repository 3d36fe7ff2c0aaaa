"""The state file on a file system that says no: full, read-only, missing, not a file.

Every `crawl` here ends (within a timeout) with a message that says what is wrong, never a
traceback or a hang. The faults are real: a tiny tmpfs that fills up and read-only bind
mounts, each made inside a mount namespace of the `crawl` process's own (`unshare --mount`),
so nothing outside it changes. Tests run as root, which ignores permission bits, hence
read-only mounts rather than file modes. A fault that cannot be set up fails the test.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    CLI,
    EXIT_OK,
    EXIT_USAGE,
    CrawlProcess,
    Site,
    crawl_ok,
    export_items,
    item_set,
    sha256,
    side_files,
    site_command,
    stats_json,
    throttled_site,
    unthrottled,
)

PAGES = 200


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with throttled_site(PAGES) as served:
        yield served


@pytest.fixture(autouse=True)
def _fast_again(site: Site) -> Iterator[None]:
    yield from unthrottled(site)


def in_namespace(setup: str, *args: str, timeout: float = 30.0
                 ) -> subprocess.CompletedProcess[str]:
    """`crawl ARGS` in a mount namespace of its own, after the shell commands `setup`."""
    script = f"set -e; {setup}; exec \"$@\""
    try:
        return subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", *CLI, *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"crawl {' '.join(args)} hung (no exit in {timeout}s); stderr:\n"
                             f"{exc.stderr!r}") from None


def read_only(path: Path) -> str:
    """Shell commands that make `path` (a file or a folder) read-only in the namespace."""
    q = shlex.quote(str(path))
    return f"mount --bind {q} {q}; mount -o remount,ro,bind {q} {q}"


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}; stderr:\n{proc.stderr}"


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, explain(proc)
    assert "Traceback" not in proc.stderr, explain(proc)
    for word in words:
        assert word.lower() in proc.stderr.lower(), f"no {word!r} in: {explain(proc)}"
    assert "damaged" not in proc.stderr, explain(proc)


# -- hangs: creating a state file where it cannot be --------------------------------------


# /dev of the namespace's own, with a null device: should SQLite write side files beside
# /dev/null (as it did), they land there and vanish with the namespace.
PRIVATE_DEV = ("mount -t tmpfs crawl-test-dev /dev; mknod -m 666 /dev/null c 1 3; "
               "mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/urandom c 1 9")


def test_a_state_file_that_is_a_device_is_refused_at_once(site: Site) -> None:
    proc = in_namespace(f"{PRIVATE_DEV}; test ! -e /dev/null-journal",
                        *site_command(site, Path("/dev/null")))
    assert_clean_error(proc, EXIT_USAGE, "/dev/null", "not a regular file")


@pytest.mark.parametrize("kib", [8, 24, 64])
def test_a_full_disk_while_creating_the_state_file_ends_the_process(
        site: Site, tmp_path: Path, kib: int) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    q = shlex.quote(str(disk))
    proc = in_namespace(f"mount -t tmpfs -o size={kib}k crawl-test {q}",
                        *site_command(site, disk / "s.db"))
    assert proc.returncode in (1, EXIT_USAGE), explain(proc)
    assert "Traceback" not in proc.stderr, explain(proc)
    assert "full" in proc.stderr, explain(proc)
    assert "damaged" not in proc.stderr, explain(proc)


# -- a crawl's state file it may not write ---------------------------------------------------


@pytest.fixture(scope="module")
def finished(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished crawl of the small site, closed cleanly. Copy it, do not change it."""
    state = tmp_path_factory.mktemp("finished") / "s.db"
    crawl_ok(*site_command(site, state))
    assert not side_files(state)
    return state


def test_a_missing_folder_a_read_only_file_and_folder_are_refused_alike(
        site: Site, finished: Path, tmp_path: Path) -> None:
    missing = in_namespace("true", *site_command(site, tmp_path / "none" / "s.db"))
    assert_clean_error(missing, EXIT_USAGE, f"{tmp_path / 'none'}", "does not exist")
    assert not (tmp_path / "none").exists()

    ro_file = tmp_path / "file" / "s.db"
    ro_file.parent.mkdir()
    shutil.copyfile(finished, ro_file)
    before = sha256(ro_file)
    proc = in_namespace(read_only(ro_file), *site_command(site, ro_file))
    assert_clean_error(proc, EXIT_USAGE, str(ro_file), "read-only")
    assert sha256(ro_file) == before and not side_files(ro_file)

    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copyfile(finished, folder / "s.db")
    rw = tmp_path / "rw"
    rw.mkdir()
    # The folder read-only, the file in it writable: a bind of the file through a rw view.
    setup = (f"mount --bind {folder} {rw}; {read_only(folder)}; "
             f"mount --bind {rw / 's.db'} {folder / 's.db'}")
    proc = in_namespace(setup, *site_command(site, folder / "s.db"))
    assert_clean_error(proc, EXIT_USAGE, str(folder), "read-only")
    assert "folder" in proc.stderr, explain(proc)
    new = in_namespace(read_only(folder), *site_command(site, folder / "new.db"))
    assert_clean_error(new, EXIT_USAGE, str(folder), "read-only")
    assert sorted(p.name for p in folder.iterdir()) == ["s.db"]


# -- reading a state file it may not write: crawl export and crawl stats -------------------


@pytest.fixture(scope="module")
def killed(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crawl SIGKILLed mid-way, after it saved its figures: the state file with its -wal
    and -shm, as the kill left them. Copy them, do not change them."""
    state = tmp_path_factory.mktemp("killed") / "s.db"
    site.throttle.delay = 0.05
    try:
        with CrawlProcess(*site_command(site, state, "--workers", "4", "--per-host", "4")) \
                as proc:
            proc.wait_started()
            deadline = time.monotonic() + 30
            while True:
                data = stats_json(state)
                if data["runs"][-1]["stats"] and data["requests"]["done"] >= 20:
                    break
                assert proc.running() and time.monotonic() < deadline, proc.stderr
                time.sleep(0.1)
            proc.send(signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL
    finally:
        site.throttle.delay = 0.0
    assert len(side_files(state)) == 2, "the kill left no -wal and -shm to read"
    return state


def copy_state(state: Path, folder: Path, suffixes: tuple[str, ...] = ("", "-wal", "-shm")
               ) -> Path:
    folder.mkdir(exist_ok=True)
    for suffix in suffixes:
        source = state.with_name(state.name + suffix)
        if source.exists():
            shutil.copyfile(source, folder / (state.name + suffix))
    return folder / state.name


def snapshot_files(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def exported(finished: Path, killed: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[Path, list[dict[str, Any]]]:
    """What `crawl export` reads from a writable copy of each state file, once a module."""
    folder = tmp_path_factory.mktemp("exported")
    return {source: export_items(copy_state(source, folder / name))
            for name, source in (("finished", finished), ("killed", killed))}


@pytest.mark.parametrize("case", ["finished", "killed", "killed-without-shm", "file"])
def test_export_and_stats_read_a_state_file_they_may_not_write(
        case: str, finished: Path, killed: Path, exported: dict[Path, list[dict[str, Any]]],
        tmp_path: Path) -> None:
    source = finished if case in ("finished", "file") else killed
    expected = exported[source]
    assert expected
    suffixes = ("", "-wal") if case == "killed-without-shm" else ("", "-wal", "-shm")
    state = copy_state(source, tmp_path / "ro", suffixes)
    before = snapshot_files(state.parent)
    scratch = set(Path("/tmp").glob("crawl-read-*"))
    setup = read_only(state if case == "file" else state.parent)

    proc = in_namespace(setup, "export", str(state))
    assert proc.returncode == EXIT_OK, explain(proc)
    assert item_set(map(json.loads, proc.stdout.splitlines())) == item_set(expected)
    proc = in_namespace(setup, "stats", str(state), "--json")
    assert proc.returncode == EXIT_OK, explain(proc)
    assert json.loads(proc.stdout)["items"] == len(expected)
    proc = in_namespace(setup, "stats", str(state))
    assert proc.returncode == EXIT_OK and "Traceback" not in proc.stderr, explain(proc)

    assert snapshot_files(state.parent) == before, "reading changed the files"
    assert set(Path("/tmp").glob("crawl-read-*")) == scratch, "a scratch copy was left behind"


# -- crawl stats on a crawl whose process is gone ------------------------------------------


def test_stats_show_a_killed_run_as_killed_with_its_last_figures(
        killed: Path, tmp_path: Path) -> None:
    state = copy_state(killed, tmp_path / "k")
    first = stats_json(state)
    time.sleep(1.2)
    second = stats_json(state)
    run = first["runs"][-1]
    assert run["status"] == "killed", run
    saved = run["stats"]["saved_at"]
    assert run["ended"] == saved, "a killed run ends when it was last seen"
    assert run["seconds"] == round(saved - run["started"], 3)
    assert second["runs"][-1] == run, "the killed run's figures changed between two readings"
    assert first["running"] is False
    # Its leases went with it: they are queued for the next run, none is in flight.
    assert first["requests"]["in_flight"] == 0
    assert first["requests"]["queued"] > 0
    text = crawl_ok("stats", str(state)).stdout
    assert "killed" in text and "last seen" in text, text
    assert "running" not in text, text
    assert re.search(r"^in flight +0$", text, re.MULTILINE), text


def test_stats_of_a_live_crawl_say_it_runs(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "live.db"
    site.throttle.delay = 0.05
    with CrawlProcess(*site_command(site, state, "--workers", "2", "--per-host", "2")) as proc:
        proc.wait_started()
        data = stats_json(state)
        assert proc.running()
        assert data["running"] is True and data["runs"][-1]["status"] == "running", data
        assert "running; figures from" in crawl_ok("stats", str(state)).stdout
        proc.send(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    data = stats_json(state)
    assert data["running"] is False and data["runs"][-1]["status"] == "killed", data
