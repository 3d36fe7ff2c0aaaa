"""The `crawl` command's exit statuses, and how --help explains them."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_FETCHED = 3
EXIT_INTERRUPTED = 130

EPILOG = """\
exit status:
  0    the crawl finished (or reached --max-pages)
  1    the crawl failed; the state file is still resumable
  2    usage error: bad arguments, spider not loadable, state file refused
  3    nothing was fetched: every request of the run failed (a host down, refused
       connections, DNS failures, 5xx to the last retry) or there was nothing to
       crawl (a spider without start requests)
  130  interrupted (Ctrl-C); run the same command again to resume
"""
