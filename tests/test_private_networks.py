"""A crawl of public sites never connects to a private network address, whatever a link, a
redirect or DNS says; a crawl that starts on a private network, or --allow-private, may.

Public and private hosts need addresses outside 127.0.0.0/8, so the crawl runs in a network
namespace of its own (`unshare --net`, as root): its loopback interface gets a documentation
address (198.51.100.7) for the "public" site and 169.254.169.254 for a fake cloud metadata
server. Nothing leaves that namespace. See tests/sites/public_namespace.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from storage import RequestState

ROOT = Path(__file__).resolve().parent.parent
PORT = 8080


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    ours = str(os.stat("/proc/self/ns/net").st_ino)
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m",
                           "tests.sites.public_namespace", ours], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"the namespace crawl failed:\n{proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _row(run: dict[str, Any], url: str) -> tuple[int, str]:
    state, _, error, _ = run["rows"][url]
    return state, error or ""


def test_a_public_crawl_never_reaches_a_private_address(report: dict[str, Any]) -> None:
    run = report["public"]
    assert set(run["seen"]) == {"public/", "public/robots.txt", "public/a", "public/jump"}
    for url, kind in ((f"http://inner.pub.test:{PORT}/secret", "loopback"),
                      (f"http://inner.pub.test:{PORT}/via-redirect", "loopback"),
                      (f"http://meta.pub.test:{PORT}/latest/meta-data/", "link-local")):
        state, error = _row(run, url)
        assert state == RequestState.FAILED, url
        assert error.startswith("private_address: refused to connect to "), error
        assert f"a {kind}" in error and "--allow-private" in error
    # A refused request is a counted outcome of its own kind, never retried.
    assert run["rows"][f"http://inner.pub.test:{PORT}/secret"][3] == 1


def test_allow_private_lets_the_same_crawl_reach_them(report: dict[str, Any]) -> None:
    seen = report["allowed"]["seen"]
    assert seen.get("loopback/secret") == 1 and seen.get("loopback/via-redirect") == 1
    assert seen.get("metadata/latest/meta-data/") == 1


def test_a_crawl_that_starts_on_a_private_host_may_stay_there(report: dict[str, Any]) -> None:
    run = report["private_start"]
    assert run["seen"].get("loopback/") == 1 and run["seen"].get("loopback/secret") == 1
    assert _row(run, f"http://inner.pub.test:{PORT}/secret")[0] == RequestState.DONE
