"""The crawl's headers: `--header` adds to the spider's, and no header value is stored with
the run's settings (a key under any name is a credential)."""

from __future__ import annotations

import json
from typing import ClassVar

from crawler.config import REDACTED, CrawlConfig, layered


class Api:
    headers: ClassVar[dict[str, str]] = {"Accept-Language": "en", "X-Api-Key": "spider-key"}


def test_command_line_headers_add_to_the_spiders() -> None:
    given = {"headers": {"X-Debug": "1", "x-api-key": "cli-key"}}
    config = layered(Api(), given)
    assert config.headers["Accept-Language"] == "en"
    assert config.headers["X-Debug"] == "1"
    # Header names are case-insensitive: the command line's value is the one sent, once.
    assert [v for k, v in config.headers.items() if k.lower() == "x-api-key"] == ["cli-key"]


def test_no_command_line_headers_keeps_the_spiders() -> None:
    assert dict(layered(Api(), {"headers": None}).headers) == Api.headers


def test_stored_settings_hide_every_header_value() -> None:
    config = CrawlConfig(headers={"X-Api-Key": "s3cret", "Accept-Language": "en"})
    stored = json.loads(config.to_json())
    assert stored["headers"] == {"X-Api-Key": REDACTED, "Accept-Language": REDACTED}
    assert "s3cret" not in config.to_json()
