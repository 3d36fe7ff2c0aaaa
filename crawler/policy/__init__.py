"""Pure decisions, no I/O: per-host queues, admission of links, robots.txt, crawl identity."""
