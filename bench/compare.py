"""Our crawler, Scrapy and the bare pipeline on the same local sites, side by side.

    python bench/compare.py                      # both sites, writes bench/results.md
    python bench/compare.py --sites docs --concurrency 64

Sites (each served by another process, so its CPU is nobody's):
- docs: Python's HTML documentation (Debian's python3-doc, ~530 pages) served by nginx;
- endless: `python -m benchsite`, every page linking to 50 pages never seen before (/p/N);
- scrapy-bench: the same, with links like Scrapy's own benchmark server's
  (`/follow?total=100000000&show=50&n=<random>`).

Each crawler runs as its own process; its CPU (user + system, every thread) and peak RSS are
read from the kernel when it exits (wait4), the same way for all three. Scrapy is installed
in its own virtual environment (.bench/scrapy-venv) the first time.

Settings are equal: the same concurrency over all and per host, no delay, robots.txt obeyed
(not by the bare pipeline, which has no politeness at all), and our SQLite state file on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench" / "scrapy-venv"
SCRAPY_VERSION = "2.19.0"
DOCS = Path("/usr/share/doc/python3-dev/html")
ROBOTS = "User-agent: *\\nDisallow: /private/\\n"


@dataclass(frozen=True)
class Run:
    tool: str
    pages: int
    wall: float
    cpu: float
    peak_rss_mb: float

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / max(self.pages, 1)

    @property
    def per_cpu_second(self) -> float:
        return self.pages / self.cpu if self.cpu else 0.0


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[str, str, float, float, float]:
    """Run a command; its stdout, stderr, wall seconds, CPU seconds and peak RSS (MB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return stdout, stderr, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def ours(url: str, pages: int, concurrency: int) -> Run:
    out, _, wall, cpu, rss = timed([
        sys.executable, "-m", "crawler.cli", "bench", "--url", url, "--pages", str(pages),
        "--workers", str(concurrency), "--per-host", str(concurrency), "--json", "--quiet"])
    return Run("this crawler", json.loads(out)["requests"], wall, cpu, rss)


def bare(url: str, pages: int, concurrency: int) -> Run:
    out, _, wall, cpu, rss = timed([sys.executable, str(ROOT / "bench" / "bare.py"), url,
                                    "--pages", str(pages), "--workers", str(concurrency)])
    return Run("bare pipeline", json.loads(out)["requests"], wall, cpu, rss)


def scrapy(url: str, pages: int, concurrency: int) -> Run:
    python = ensure_scrapy()
    with tempfile.TemporaryDirectory() as tmp:
        _, err, wall, cpu, rss = timed([
            str(python), "-m", "scrapy", "runspider", str(ROOT / "bench" / "scrapy_spider.py"),
            "-a", f"start={url}", "-o", str(Path(tmp) / "items.jsonl"),
            "-s", f"CONCURRENT_REQUESTS={concurrency}",
            "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}",
            "-s", "DOWNLOAD_DELAY=0", "-s", "ROBOTSTXT_OBEY=True",
            "-s", f"CLOSESPIDER_PAGECOUNT={pages}", "-s", "LOG_LEVEL=INFO",
            "-s", "TELNETCONSOLE_ENABLED=False", "-s", "AUTOTHROTTLE_ENABLED=False",
        ], cwd=Path(tmp))
    found = re.search(r"'downloader/response_count': (\d+)", err)
    if found is None:
        sys.exit(f"no response count in Scrapy's log:\n{err[-3000:]}")
    return Run(f"Scrapy {SCRAPY_VERSION}", int(found.group(1)), wall, cpu, rss)


def ensure_scrapy() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"installing Scrapy {SCRAPY_VERSION} into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q",
                        f"scrapy=={SCRAPY_VERSION}"], check=True)
    return python


@contextlib.contextmanager
def nginx_docs(port: int) -> Iterator[str]:
    if not (DOCS / "index.html").exists():
        sys.exit("the docs site needs Debian's python3-doc: apt-get install python3-doc nginx")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            f"worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n"
            "events { worker_connections 1024; }\n"
            "http { access_log off; include /etc/nginx/mime.types; keepalive_requests 100000;\n"
            f"  server {{ listen 127.0.0.1:{port}; root {DOCS.resolve()};\n"
            f"    location = /robots.txt {{ return 200 \"{ROBOTS}\"; }} }} }}\n")
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", tmp])
        try:
            time.sleep(0.5)
            yield f"http://127.0.0.1:{port}/"
        finally:
            proc.terminate()
            proc.wait()


@contextlib.contextmanager
def endless_site(style: str) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "benchsite", "--links", "50",
                             "--style", style],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        yield line[1] + "/"
    finally:
        proc.terminate()
        proc.wait()


def table(site: str, runs: list[Run]) -> str:
    base = {r.tool: r for r in runs}
    scrapy_run = next(r for r in runs if r.tool.startswith("Scrapy"))
    bare_run = base["bare pipeline"]
    lines = [f"### {site}", "",
             "| crawler | pages | wall s | pages/s | CPU-ms/page | pages per CPU-s | "
             "peak RSS MB | vs Scrapy (pages per CPU-s) | CPU/page vs bare |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.tool} | {r.pages:,} | {r.wall:.1f} | {r.pages / r.wall:,.0f} | "
                     f"{r.cpu_ms:.2f} | {r.per_cpu_second:,.0f} | {r.peak_rss_mb:,.0f} | "
                     f"{r.per_cpu_second / scrapy_run.per_cpu_second:.1f}x | "
                     f"{r.cpu_ms / bare_run.cpu_ms:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sites", nargs="+", choices=["docs", "endless", "scrapy-bench"],
                        default=["docs", "endless", "scrapy-bench"])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--endless-pages", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each crawler; the one with the least CPU is shown")
    parser.add_argument("--port", type=int, default=8793)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    args = parser.parse_args()
    sections = [f"{platform.node()}: {os.cpu_count()} CPUs, Python "
                f"{platform.python_version()}, concurrency {args.concurrency} (over all and "
                f"per host), no delay, {time.strftime('%Y-%m-%d')}"]
    for site in args.sites:
        ctx = (nginx_docs(args.port) if site == "docs" else
               endless_site("scrapy" if site == "scrapy-bench" else "paths"))
        pages = 100_000 if site == "docs" else args.endless_pages
        with ctx as url:
            runs = []
            for tool in (ours, scrapy, bare):
                tries = [tool(url, pages, args.concurrency) for _ in range(args.repeat)]
                runs.append(min(tries, key=lambda r: r.cpu_ms))
                print(f"{site}: {runs[-1]}", flush=True)
        sections.append(table(f"{site} ({url})", runs))
        print(sections[-1], flush=True)
    args.out.write_text("\n\n".join(sections) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
