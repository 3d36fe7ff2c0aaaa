"""The dedup keys of requests, the same in every store (a crawl moved between stores, or a
resumed one, must find its requests again). Plain hashing: no driver."""

from __future__ import annotations

import hashlib
import os

from storage.base import NewRequest


def fingerprint(url: str) -> int:
    """A signed 64-bit key for dedup: 8 bytes per row instead of a second copy of the URL."""
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big", signed=True)


def request_fingerprint(r: NewRequest) -> int:
    """The dedup key of a request: its URL's for a GET without a body (as files of every
    schema have it), else of its method, URL and body; a `unique` request's is random, or
    made of its `unique` text too when it has one."""
    if r.unique is True:
        return int.from_bytes(os.urandom(8), "big", signed=True)
    if r.method is None and r.body is None and not r.unique:
        return fingerprint(r.url)
    digest = hashlib.blake2b(digest_size=8)
    if r.unique:  # the salt first, length-prefixed: no other request's parts can spell it
        salt = r.unique.encode()
        digest.update(b"%d:%s " % (len(salt), salt))
    for part in ((r.method or "GET").encode(), b" ", r.url.encode(), b"\n", r.body or b""):
        digest.update(part)
    return int.from_bytes(digest.digest(), "big", signed=True)
