"""The `crawl` command line."""
