"""Command-line parsing and settings precedence (the crawls themselves are tested elsewhere)."""

from __future__ import annotations

import pytest

from crawler import ConfigError, HostPolicy
from crawler.cli.main import _command_line_settings, _parser
from crawler.config import layered
from spiders.books import BooksSpider


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
