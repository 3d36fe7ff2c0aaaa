"""The 1 MiB a request may take in the state file (headers and body together) counts the
bytes stored, UTF-8 encoded, not the characters: pure model code, no sockets."""

from __future__ import annotations

import json

import pytest

from crawler import Request
from crawler.errors import SpiderError
from crawler.model.specs import MAX_REQUEST_BYTES

URL = "http://shop.test/api"
# The stored spec of headers={"X": value}: this much JSON besides the value itself.
OVERHEAD = len('{"headers":[["X",""]]}')


def test_a_header_of_two_byte_characters_counts_its_bytes_at_the_boundary() -> None:
    fits = "\u00e9" * ((MAX_REQUEST_BYTES - OVERHEAD) // 2)  # exactly the cap, in bytes
    request = Request(URL, headers={"X": fits})
    assert request.extra is not None and request.extra.spec is not None
    assert len(request.extra.spec.encode("utf-8")) == MAX_REQUEST_BYTES
    with pytest.raises(SpiderError, match=f"takes {MAX_REQUEST_BYTES + 2} bytes"):
        Request(URL, headers={"X": fits + "\u00e9"})  # 2 bytes over, 1 character more


def test_a_text_body_of_two_byte_characters_counts_its_bytes_at_the_boundary() -> None:
    Request(URL, method="POST", body="\u00e9" * (MAX_REQUEST_BYTES // 2))
    with pytest.raises(SpiderError, match="a request may take at most"):
        Request(URL, method="POST", body="\u00e9" * (MAX_REQUEST_BYTES // 2) + "a")
    with pytest.raises(SpiderError, match="a request may take at most"):
        Request(URL, method="POST", body="\u00e9" * 600_000)  # 600 K characters, 1.2 MB


def test_json_of_two_byte_characters_counts_its_bytes() -> None:
    text = "\u00e9" * 600_000
    assert len(json.dumps(text, ensure_ascii=False)) < MAX_REQUEST_BYTES  # in characters
    with pytest.raises(SpiderError, match="a request may take at most"):
        Request(URL, json=text)
