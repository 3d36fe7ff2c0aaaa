"""A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary folder, started on
a free loopback port with its socket in that folder, trust auth, stopped at the end.

Run as root, the server runs as the `postgres` OS user (PostgreSQL refuses root). The
binaries are the newest /usr/lib/postgresql/*/bin, else those on PATH. A machine without
them fails the tests that need one, saying how to install it: never a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

INSTALL = ("PostgreSQL is not installed: the PostgreSQL store's tests start a throwaway "
           "cluster with its initdb and pg_ctl. Install the Debian package: "
           "`apt-get install -y postgresql` (or put initdb and pg_ctl on PATH)")
PASSWORD = "s3cret-pw"  # the `crawler` role's: tests check that it is never shown


def binaries() -> Path:
    """The folder of the newest PostgreSQL's initdb and pg_ctl."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: _version(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    raise RuntimeError(INSTALL)


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL server of our own. `url` is the superuser's; `url_for(crawl)` the
    password-bearing `crawler` role's, naming a crawl."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.root = Path(tempfile.mkdtemp(prefix="crawl-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            pw = pwd.getpwnam(self._user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check,
                              timeout=120, cwd=self.root)

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
        self.pg_ctl("start")
        self.psql(f"CREATE ROLE crawler LOGIN PASSWORD '{PASSWORD}'")
        self.psql("CREATE DATABASE crawls OWNER crawler")

    def pg_ctl(self, action: str, *extra: str) -> None:
        # fsync off: a test cluster outlives no power cut, and a killed server (restart -m
        # immediate) loses nothing committed without it.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=60 -c shared_buffers=16MB")
        self._run(str(self.bin / "pg_ctl"), action, "-D", str(self.data), "-w", "-t", "60",
                  "-l", str(self.root / "server.log"), "-o", options, *extra)

    def psql(self, sql: str, database: str = "postgres") -> str:
        proc = self._run(str(self.bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                         "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
                         "-d", database, "-c", sql)
        return proc.stdout

    def url_for(self, crawl: str | None = None, *, password: bool = True) -> str:
        auth = f"crawler:{PASSWORD}" if password else "crawler"
        url = f"postgresql://{auth}@127.0.0.1:{self.port}/crawls"
        return url if crawl is None else f"{url}?crawl={crawl}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate",
                      "-w", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


def crawl_name() -> str:
    """A crawl of its own for a test: many share one database, as users' crawls do."""
    return f"t{uuid.uuid4().hex[:12]}"

