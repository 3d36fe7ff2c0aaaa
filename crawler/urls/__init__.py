"""URLs: their canonical form, the crawl's scope, and which addresses are private."""
