"""A local site to benchmark crawlers on, served in its own process (its CPU is not the
crawler's): `python -m benchsite --help`.

Kept outside `crawler/`: it is a web server, and the crawler's only aiohttp user is its fetcher.
"""
