"""URLs: their canonical form, resolving a page's links (with the crawl's join cache), the
crawl's scope, and which addresses are private."""
