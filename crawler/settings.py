"""Settings described once, in the fields of a frozen config dataclass.

Each field is declared with `setting(default, help=..., ...)`: its type is its annotation,
and the rest (bounds, help, whether a spider may set it, how the command line spells it,
whether it defines the crawl) is metadata. Everything else is derived from the fields:
the validation (`validate`), the spider attributes read (`names(cls, spider=True)`), the
command line (crawler/cli/options.py), the crawl's identity and the documentation
(`describe`). Adding a setting is adding a field.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from crawler.errors import ConfigError

T = TypeVar("T")
_KEY = "crawler.setting"


@dataclass(frozen=True, slots=True)
class Option:
    """How the command line spells a setting (or one part of it)."""

    flag: str
    """e.g. "--per-host"."""
    metavar: str = ""
    """What the value is called in --help, e.g. "N"; "" for a flag that takes no value."""
    value: object = True
    """What a flag without a value sets the setting to."""
    help: str = ""
    """The option's own help; "" uses the setting's."""
    repeat: bool = False
    """The option may be given more than once; its values are kept in order."""
    short: str = ""
    """A one-letter spelling too, e.g. "-o"; "" for none."""


@dataclass(frozen=True, slots=True)
class Setting:
    """What a config field's metadata says about it (see `setting`)."""

    help: str
    low: float | None = None
    spider: bool = False
    defines_crawl: bool = False
    shown: bool = False
    options: tuple[Option, ...] = ()
    parse: Callable[..., Any] | None = None
    check: Callable[[str, Any], None] | None = None


def setting(default: T, *, help: str, low: float | None = None, spider: bool = False,
            defines_crawl: bool = False, shown: bool = False,
            cli: Option | Sequence[Option] = (), parse: Callable[..., Any] | None = None,
            check: Callable[[str, Any], None] | None = None) -> T:
    """A config field with its description. `low`: the lowest value allowed. `spider`: a
    spider may set it as a class attribute of the same name. `defines_crawl`: it changes
    which pages are crawled, so a resume must not change it (crawler/policy/identity.py).
    `shown`: `crawl stats` lists it with each run. `cli`: its command-line option(s).
    `parse`: makes the value from the options' texts, given one list of texts per option
    (for a value that is not one number or text, or that several options make).
    `check(name, value)`: a last check beyond type and bounds, raising ConfigError."""
    about = Setting(help, low, spider, defines_crawl, shown,
                    (cli,) if isinstance(cli, Option) else tuple(cli), parse, check)
    metadata = {_KEY: about}
    if isinstance(default, dict | list | set):  # a mutable default is copied for each config
        return dataclasses.field(default_factory=functools.partial(copy.copy, default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Kind:
    """A field's type, as a test of values and the words that name it in messages."""

    name: str  # as Python spells it: "int", "tuple[str, ...]"
    words: str  # as a message says it: "a whole number"
    accepts: Callable[[object], bool]
    text: type | None = None  # int, float or str: the type a command-line value converts to


@dataclass(frozen=True, slots=True)
class Field:
    """One described field of a config class."""

    name: str
    kind: Kind
    default: Any
    about: Setting


_FIELDS: dict[type, tuple[Field, ...]] = {}


def fields(cls: type) -> tuple[Field, ...]:
    """The described fields of a dataclass, in order (a field without `setting` is an error:
    it would escape validation)."""
    known = _FIELDS.get(cls)
    if known is None:
        known = _FIELDS[cls] = _describe_fields(cls)
    return known


def _describe_fields(cls: type) -> tuple[Field, ...]:
    hints = typing.get_type_hints(cls)
    described = []
    for f in dataclasses.fields(cls):
        about = f.metadata.get(_KEY)
        if not isinstance(about, Setting):
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        described.append(Field(f.name, kind_of(hints[f.name]), default, about))
    return tuple(described)


def names(cls: type, *, spider: bool = False, defines_crawl: bool = False,
          shown: bool = False) -> tuple[str, ...]:
    """The names of `cls`'s settings that have every flag asked for."""
    return tuple(f.name for f in fields(cls)
                 if (f.about.spider or not spider)
                 and (f.about.defines_crawl or not defines_crawl)
                 and (f.about.shown or not shown))


def validate(config: object) -> None:
    """Check every field's value against its type, bounds and own check (ConfigError)."""
    for f in fields(type(config)):
        value = getattr(config, f.name)
        if not f.kind.accepts(value):
            raise ConfigError(f"{f.name} must be {f.kind.words}, not {value!r}")
        if f.about.low is not None and value is not None and value < f.about.low:
            raise ConfigError(f"{f.name} must be at least {f.about.low:g}, not {value!r}")
        if f.about.check is not None:
            f.about.check(f.name, value)


def kind_of(hint: Any) -> Kind:
    """The Kind of a type annotation; a type this does not know is a TypeError, so a new
    setting of such a type fails at import, not at a user's crawl."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        inner = kind_of(next(a for a in args if a is not type(None)))
        return Kind(f"{inner.name} | None", inner.words,
                    lambda v: v is None or inner.accepts(v), inner.text)
    if hint in _SCALARS:
        return _SCALARS[hint]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = kind_of(args[0])
        # A list or a tuple only: a string is iterable too, and include="/books/" would be
        # eight patterns of one character; a generator would be used up by this check.
        return Kind(f"tuple[{item.name}, ...]", f"a list of {item.name}",
                    lambda v: isinstance(v, tuple | list) and all(item.accepts(x) for x in v))
    if origin in (Mapping, dict) and len(args) == 2:
        key, value = kind_of(args[0]), kind_of(args[1])
        return Kind(f"Mapping[{key.name}, {value.name}]",
                    f"a mapping of {key.name} to {value.name}",
                    lambda v: isinstance(v, Mapping) and all(
                        key.accepts(k) and value.accepts(x) for k, x in v.items()))
    if isinstance(hint, type) and origin is None:
        return Kind(hint.__name__, f"a {hint.__name__}", lambda v: isinstance(v, hint))
    raise TypeError(f"settings of type {hint!r} are not supported; add it to kind_of()")


def _whole(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


_SCALARS: dict[Any, Kind] = {
    bool: Kind("bool", "True or False", lambda v: isinstance(v, bool)),
    int: Kind("int", "a whole number", _whole, int),
    float: Kind("float", "a finite number", _finite, float),
    str: Kind("str", "text (a str)", lambda v: isinstance(v, str), str),
}


def describe(cls: type, *, spider: bool = False) -> str:
    """A listing of the settings for a docstring: name, type, default, help, option."""
    lines = []
    for f in fields(cls):
        if spider and not f.about.spider:
            continue
        flags = ", ".join(o.flag for o in f.about.options)
        default = "" if f.default in (None, (), {}) else f"; default {f.default!r}"
        lines.append(textwrap.fill(
            f"{f.name} ({f.kind.name}{default}{'; ' + flags if flags else ''}): "
            f"{f.about.help}", 92, initial_indent="    ", subsequent_indent="        "))
    return "\n".join(lines)


def misspelt(cls: type, settings: Sequence[Field]) -> str | None:
    """A message for the first class attribute of a user's spider class `cls` that looks
    like one of `settings` misspelt: one typo apart (a letter left out, added, changed or two
    swapped; case and underscores aside) and holding a value that setting accepts. An
    attribute that holds something else (a method, a list where a number is wanted) is the
    user's own, whatever its name."""
    wanted = {f.name for f in settings}
    for owner in cls.__mro__:
        if owner is object or owner.__module__.split(".")[0] == "crawler":
            continue  # the crawler's own classes declare no settings by mistake
        for name, value in vars(owner).items():
            # A constant (MAX_PAGES = 3) is the user's own name, spelt as constants are.
            if name.startswith("_") or name.isupper() or name in wanted or value is None \
                    or callable(value) or isinstance(value, property | staticmethod | classmethod):
                continue
            near = [f.name for f in settings if _near(name, f.name) and f.kind.accepts(value)]
            if near:
                return (f"{owner.__name__}.{name} looks like a misspelt setting: did you mean "
                        f"{' or '.join(near)}? It is not a setting, so it changes nothing (if "
                        "it is an attribute of your own, ignore this)")
    return None


def _near(typed: str, name: str) -> bool:
    a, b = typed.lower().replace("_", ""), name.lower().replace("_", "")
    if a == b:
        return True
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 \
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        # A changed letter in a short name makes another word ("relay"), not a typo.
        return swapped or (len(diff) == 1 and len(b) > 5)
    short, long = sorted((a, b), key=len)
    return len(long) - len(short) == 1 and any(
        long[:i] + long[i + 1:] == short for i in range(len(long)))
