"""`crawl --version`: the installed distribution's version, or the source checkout's."""

from __future__ import annotations

import platform
import tomllib
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "crawler"
# The folder that holds the `crawler` package: a source checkout has pyproject.toml there.
_ROOT = Path(__file__).resolve().parent.parent.parent


def version_text() -> str:
    """`crawl 0.1.0 (Python 3.11.7)`; from a checkout that is not what is installed (run
    with PYTHONPATH, or nothing installed), the checkout's version and where it is."""
    python = f"Python {platform.python_version()}"
    try:
        installed: str | None = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        installed = None
    checkout = checkout_version(_ROOT / "pyproject.toml")
    if checkout is not None and (installed is None or not _installed_from(_ROOT)):
        also = f"; {installed} is installed" if installed and installed != checkout else ""
        return f"crawl {checkout} (source checkout {_ROOT}{also}; {python})"
    if installed is None:
        return f"crawl (version unknown: not installed; {python})"
    return f"crawl {installed} ({python})"


def checkout_version(pyproject: Path) -> str | None:
    """The version a source checkout's pyproject.toml gives this project, if it is one."""
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if project.get("name") != DISTRIBUTION or not isinstance(project.get("version"), str):
        return None
    return str(project["version"])


def _installed_from(root: Path) -> bool:
    """Whether the installed distribution is this checkout (an editable install of it)."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    direct = dist.read_text("direct_url.json") or ""
    return f"file://{root}" in direct.replace("\\/", "/")
