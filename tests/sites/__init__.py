"""Local test websites (aiohttp) for the crawler's tests, and helpers to serve them.

* :mod:`tests.sites.serve`: ``serve``, ``serve_many``, ``serve_in_thread``,
  ``serve_many_in_thread`` (loopback only).
* :mod:`tests.sites.generated`: a deterministic generated site with an exact model of what a
  correct crawl finds (``make_app``, ``expected_pages``, ``non_html_urls``, ``broken_urls``).
* :mod:`tests.sites.books`: a small book shop for spider tests (``make_app``,
  ``expected_books``).
* :mod:`tests.sites.multihost`: a slow site served under several host names, with request
  timing records and helpers for politeness tests.
"""
