"""The HTTP fetcher: the one place that speaks aiohttp."""
