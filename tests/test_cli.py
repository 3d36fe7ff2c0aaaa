"""Command-line parsing and settings precedence (the crawls themselves are tested elsewhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler import ConfigError, HostPolicy
from crawler.cli.options import settings_from as _command_line_settings
from crawler.cli.parser import build as _parser
from crawler.config import layered
from spiders.books import BooksSpider
from tests.helpers import crawl, describe


@pytest.mark.parametrize(("argv", "level"), [
    (["site", "http://a.test/"], "WARNING"),
    (["--log-level", "ERROR", "stats", "x.db"], "ERROR"),
    (["site", "http://a.test/", "--log-level", "DEBUG"], "DEBUG"),
    (["--log-level", "ERROR", "run", "s.py", "--log-level", "INFO"], "INFO"),
])
def test_log_level_is_accepted_before_and_after_the_command(argv: list[str], level: str) -> None:
    assert _parser().parse_args(argv).log_level == level


def test_command_line_beats_spider_attributes_which_beat_defaults() -> None:
    args = _parser().parse_args(["run", "spiders/books.py", "--per-host", "7",
                                 "--resolve", "a.test:127.0.0.2", "--resolve", "b.test:::1"])
    config = layered(BooksSpider(), _command_line_settings(args))
    assert config.per_host == 7  # command line over the spider's 4
    assert config.delay == BooksSpider.delay  # the spider's, over the default
    assert config.workers == 16  # the default
    assert dict(config.resolve) == {"a.test": "127.0.0.2", "b.test": "::1"}


def test_resolve_needs_host_and_address() -> None:
    args = _parser().parse_args(["site", "http://a.test/", "--resolve", "a.test"])
    with pytest.raises(ConfigError, match="HOST:ADDRESS"):
        _command_line_settings(args)


def test_host_policies_from_the_command_line() -> None:
    args = _parser().parse_args(["site", "http://a.test/", "--host-per-host", "Slow.test=1",
                                 "--host-delay", "slow.test=2.5", "--host-delay", "b.test=0"])
    policies = _command_line_settings(args)["host_policies"]
    assert policies == {"slow.test": HostPolicy(per_host=1, delay=2.5),
                        "b.test": HostPolicy(per_host=None, delay=0.0)}
    for bad in (["--host-per-host", "a.test=1.5"], ["--host-delay", "a.test=fast"],
                ["--host-delay", "a.test"]):
        with pytest.raises(ConfigError):
            _command_line_settings(_parser().parse_args(["site", "http://a.test/", *bad]))


def test_a_misspelt_spider_setting_is_warned_about_and_the_crawl_runs(tmp_path: Path) -> None:
    spider = tmp_path / "quotes.py"
    spider.write_text("from crawler import Spider\n\n"
                      "class Quotes(Spider):\n"
                      "    name = 'quotes'\n"
                      "    start_urls = ['http://127.0.0.1:9/']\n"
                      "    dealy = 2.0\n")
    state = tmp_path / "q.db"
    # --max-retries 0: the closed port would otherwise cost 2 + 4 + 6 s of backoff.
    proc = crawl("run", str(spider), "--state", str(state), "--quiet", "--max-retries", "0")
    # The start URL's port is closed: the crawl runs, and fetches nothing (exit 3).
    assert proc.returncode == 3, describe(proc)  # EXIT_NOTHING_FETCHED
    assert "Quotes.dealy looks like a misspelt setting: did you mean delay?" in proc.stderr
    assert "Traceback" not in proc.stderr and state.exists()
