"""Fixtures shared by many test files: the throwaway PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import pg


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.Cluster]:
    """One cluster per test process (pytest-xdist worker), started when a test first asks
    for it. A machine without PostgreSQL fails here, saying how to install it."""
    with pg.cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(postgres: pg.Cluster) -> str:
    """A URL naming a crawl of this test's own in the shared database."""
    return postgres.url_for(pg.crawl_name())
