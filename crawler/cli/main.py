"""The `crawl` command: parse the arguments, run the command, turn its errors into exit
statuses. The commands themselves are in crawl.py (site, run), export.py, stats.py,
benchmark.py, and the tools fetch.py, new.py and check.py; the parser is in parser.py."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from crawler.cli import benchmark, check, crawl, export, fetch, new, parser, stats
from crawler.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from crawler.errors import ConfigError, CrawlError, SpiderError, StateFileError
from crawler.observe import logs

log = logging.getLogger("crawler")
status_log = logging.getLogger(logs.STATUS)

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "site": crawl.site,
    "run": crawl.run,
    "export": export.command,
    "stats": stats.command,
    "bench": benchmark.command,
    "fetch": fetch.command,
    "new": new.command,
    "check": check.command,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser.build().parse_args(argv)
    logs.setup(args.log_level, args.log_format, quiet=getattr(args, "quiet", False))
    try:
        code: int = COMMANDS[args.command](args)
    except (SpiderError, ConfigError, StateFileError) as exc:
        status_log.error("error: %s", exc)
        return EXIT_USAGE
    except CrawlError as exc:  # StateWriteError among them; refusals were caught above
        status_log.error("failed: %s\nthe state file is still resumable", exc)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (e.g. `crawl export x.db | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # disk full, permissions, ...: the system's words are the clearest
        status_log.error("error: %s", exc)
        return EXIT_FAILED
    except Exception:
        log.exception("crawl: failed with an unexpected error; the state file is resumable")
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
