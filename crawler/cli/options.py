"""The crawl settings' command-line options, made from `CrawlConfig`'s field declarations.

Every field declared with `cli=Option(...)` gets its option(s) here, with the field's help
(or the option's own) and its default; `settings_from` turns what was given back into
settings for `layered()`. Nothing here names a setting: adding one to `CrawlConfig` adds it
to `crawl site` and `crawl run`.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any

from crawler import settings
from crawler.config import CrawlConfig
from crawler.settings import Field, Option


def setting_fields(config: type = CrawlConfig,
                   only: Collection[str] | None = None) -> tuple[Field, ...]:
    """The settings the command line can set (those of `only`, if given), in declaration
    order."""
    return tuple(f for f in settings.fields(config)
                 if f.about.options and (only is None or f.name in only))


def dest(option: Option) -> str:
    """The attribute of the parsed arguments that holds an option's value."""
    return option.flag.removeprefix("--").replace("-", "_")


def add_settings(group: argparse._ActionsContainer, config: type = CrawlConfig,
                 only: Collection[str] | None = None) -> None:
    """Add an option for each command-line setting (of `only`), unset (None) unless given."""
    for f in setting_fields(config, only):
        for option in f.about.options:
            text = option.help or f.about.help
            flags = (option.short, option.flag) if option.short else (option.flag,)
            if not option.metavar:
                group.add_argument(*flags, dest=dest(option), action="store_const",
                                   const=option.value, help=text)
            elif option.repeat:
                group.add_argument(*flags, dest=dest(option), action="append",
                                   metavar=option.metavar, help=f"{text}; repeatable")
            elif f.about.parse is not None:  # its texts are read by `parse`, after argparse
                group.add_argument(*flags, dest=dest(option), metavar=option.metavar,
                                   help=text)
            else:
                group.add_argument(*flags, dest=dest(option), type=_text_type(f),
                                   metavar=option.metavar,
                                   help=f"{text}{_default(f.default)}")


def settings_from(args: argparse.Namespace, config: type = CrawlConfig,
                  only: Collection[str] | None = None) -> dict[str, Any]:
    """The settings given on the command line (a setting not given is left out)."""
    given: dict[str, Any] = {}
    for f in setting_fields(config, only):
        values = [getattr(args, dest(option)) for option in f.about.options]
        if all(value is None for value in values):
            continue
        if f.about.parse is not None:  # e.g. HOST=N texts into host policies
            given[f.name] = f.about.parse(*map(_texts, values))
        elif f.about.options[0].repeat:
            given[f.name] = tuple(values[0])
        else:
            given[f.name] = values[0]
    return given


def _texts(value: list[str] | str | None) -> list[str]:
    """What `parse` gets of one option: the texts given, in order."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _text_type(f: Field) -> type:
    if f.kind.text is None:
        raise TypeError(f"--{f.name}: a {f.kind.name} setting needs parse= to be read from "
                        "the command line")
    return f.kind.text


def _default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f" (default: {value:,})"
    if isinstance(value, float):
        return f" (default: {value:g})"
    return f" (default: {value})"
