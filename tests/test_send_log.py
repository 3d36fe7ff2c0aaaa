"""`--send-log FILE`: one line a request as it goes out, on the machine's monotonic clock,
from every process that shares the file: the crawler's own side of politeness (a site's
log is late by its queueing). Checked against the site's own log of the same crawl."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

from tests.helpers import crawl_ok
from tests.politeness import read_log
from tests.sites import manyhosts

SPEC = manyhosts.Spec(hosts=3, pages=6, latency=(0.01, 0.03))
DELAY = 0.05


def test_each_request_sent_is_one_line_on_the_sites_clock(tmp_path: Path) -> None:
    sends = tmp_path / "sends.log"
    site_log = tmp_path / "site.log"
    options = ["--hosts", str(SPEC.hosts), "--pages", str(SPEC.pages),
               "--latency", "{}-{}".format(*SPEC.latency)]
    with manyhosts.running(options, site_log) as site:
        port = site.base.rsplit(":", 1)[1]
        crawl_ok("site", *(f"http://{h}:{port}/" for h in SPEC.host_names()),
                 "--state", str(tmp_path / "c.db"), "--resolve", "*.test:127.0.0.1",
                 "--delay", str(DELAY), "--per-host", "2", "--send-log", str(sends),
                 "--quiet")
    hits = read_log(site_log).hits
    by_host: dict[str, list[float]] = defaultdict(list)
    pids = set()
    for line in sends.read_text().splitlines():
        at, key, pid = line.split("\t")
        by_host[key.rsplit(":", 1)[0]].append(float(at))
        pids.add(pid)
    assert len(pids) == 1
    assert sum(map(len, by_host.values())) == len(hits)  # pages and robots.txt alike
    first_seen = {h.host: min(x.start for x in hits if x.host == h.host) for h in hits}
    for host, times in by_host.items():
        assert times == sorted(times)
        assert min(b - a for a, b in itertools.pairwise(times)) >= DELAY  # the crawler's side
        # Sent before the site saw it, on one clock: the site's stamp is never earlier.
        assert times[0] <= first_seen[host]
