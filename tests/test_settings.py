"""Settings are declared once, as CrawlConfig's fields; everything else follows from them.

Every check here walks `dataclasses.fields(CrawlConfig)`, so a setting added to CrawlConfig
is checked as soon as it exists: it is validated, its bounds hold, a spider can set it if
declared so, and `crawl site` / `crawl run` offer it with its help.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from crawler import ConfigError, CrawlConfig, HostPolicy, Spider, settings
from crawler.cli import options, parser
from crawler.config import layered
from crawler.policy import identity
from crawler.settings import Field, Option, setting

FIELDS = settings.fields(CrawlConfig)
CLI_FIELDS = [f for f in FIELDS if f.about.options]
SPIDER_FIELDS = [f for f in FIELDS if f.about.spider]
BOUNDED = [f for f in FIELDS if f.about.low is not None]
# One text for each kind of command-line value that is not a plain number or text.
TEXTS = {"HOST=N": "a.test=3", "HOST=SECONDS": "a.test=2.5", "HOST:ADDRESS": "a.test:127.0.0.2",
         "REGEX": "/sample/", "'NAME: VALUE'": "X-Sample: 1", "FILE": "items.jsonl"}
# Fields whose text must be of a shape of their own.
BY_NAME = {"proxy": "http://127.0.0.1:3128", "headers": {"X-Sample": "1"},
           "output": ("items.jsonl",), "output_format": "csv", "send_log": "items.jsonl"}


def sample(f: Field) -> Any:
    """A valid value of the field's type that is not its default."""
    kind = f.kind.name.removesuffix(" | None")
    if f.name in BY_NAME:
        return BY_NAME[f.name]
    if kind in ("int", "float"):
        base = f.default if f.default is not None else (f.about.low or 0)
        return base + 1 if kind == "int" else base + 0.5
    values: dict[str, Any] = {
        "bool": not f.default,
        "str": "sample-agent/1.0",
        "tuple[str, ...]": ("/sample/",),
        "Mapping[str, HostPolicy]": {"a.test": HostPolicy(per_host=3)},
        "Mapping[str, str]": {"a.test": "127.0.0.2"},
        "Mapping[str, tuple[str, ...]]": {"a.test": ("user", "password")},
    }
    assert kind in values, f"{f.name}: add a sample value of {kind} to this test"
    return values[kind]


def test_every_field_is_declared_with_setting_and_help() -> None:
    assert [f.name for f in FIELDS] == [f.name for f in dataclasses.fields(CrawlConfig)]
    for f in FIELDS:
        assert f.about.help.strip(), f.name
        assert getattr(CrawlConfig(), f.name) == f.default


@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_every_field_takes_a_value_of_its_type_and_refuses_others(f: Field) -> None:
    assert getattr(CrawlConfig(**{f.name: sample(f)}), f.name) == sample(f)
    wrong: dict[str, Any] = {f.name: object()}
    with pytest.raises(ConfigError, match=f"^{f.name} must be"):
        CrawlConfig(**wrong)


@pytest.mark.parametrize("f", BOUNDED, ids=lambda f: f.name)
def test_every_bounded_field_refuses_values_below_its_lowest(f: Field) -> None:
    low = f.about.low
    assert low is not None
    lowest: float = int(low) if f.kind.text is int else low
    at: dict[str, Any] = {f.name: lowest}
    assert getattr(CrawlConfig(**at), f.name) == lowest
    below: dict[str, Any] = {
        f.name: lowest - 1 if f.kind.text is int else (low / 2 if low > 0 else -0.5)}
    with pytest.raises(ConfigError, match=f"^{f.name} must be at least {low:g}"):
        CrawlConfig(**below)


@pytest.mark.parametrize("f", SPIDER_FIELDS, ids=lambda f: f.name)
def test_every_spider_setting_is_read_from_a_spider(f: Field) -> None:
    assert getattr(Spider, f.name) is None  # declared, and "not set"
    assert re.search(rf"^\s+{f.name} \(", Spider.__doc__ or "", re.M), "documented"
    spider = type("Custom", (Spider,), {f.name: sample(f)})()
    assert getattr(layered(spider), f.name) == sample(f)


def test_other_settings_are_not_read_from_a_spider() -> None:
    others = [f for f in FIELDS if not f.about.spider]
    assert others  # connect_timeout, dns_ttl, ...: the command line's or the API's
    spider = type("Custom", (Spider,), {f.name: sample(f) for f in others})()
    assert layered(spider) == CrawlConfig()


def _crawl_command(name: str) -> argparse.ArgumentParser:
    top = parser.build()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    found: argparse.ArgumentParser = commands.choices[name]
    return found


@pytest.mark.parametrize("command", ["site", "run"])
def test_every_command_line_setting_has_its_option_and_help(command: str) -> None:
    cmd = _crawl_command(command)
    flat = " ".join(cmd.format_help().split())
    by_flag = {flag: action for action in cmd._actions for flag in action.option_strings}
    for f in CLI_FIELDS:
        for option in f.about.options:
            action = by_flag[option.flag]
            assert action.help is not None
            assert action.help.startswith(option.help or f.about.help), option.flag
            assert " ".join(action.help.split()) in flat, option.flag
    assert {o.flag for f in CLI_FIELDS for o in f.about.options} <= set(by_flag)


def _argv(f: Field) -> list[str]:
    argv = []
    for option in f.about.options:
        if not option.metavar:
            argv.append(option.flag)
        else:
            text = TEXTS.get(option.metavar, str(sample(f)))
            argv += [option.flag, text, *([option.flag, text] if option.repeat else [])]
    return argv


@pytest.mark.parametrize("f", CLI_FIELDS, ids=lambda f: f.name)
def test_every_command_line_setting_reaches_the_config(f: Field) -> None:
    args = parser.build().parse_args(["site", "http://a.test/", *_argv(f)])
    given = options.settings_from(args)
    assert set(given) == {f.name}  # nothing else is set by it
    config = layered(Spider(), given)
    value = getattr(config, f.name)
    assert value != f.default
    option = f.about.options[0]
    if not option.metavar:
        assert value == option.value
    elif f.about.parse is None and not option.repeat:
        assert value == sample(f)


def test_nothing_given_sets_nothing() -> None:
    args = parser.build().parse_args(["run", "s.py"])
    assert options.settings_from(args) == {}


def test_flags_and_attributes_do_not_collide() -> None:
    flags = [o.flag for f in CLI_FIELDS for o in f.about.options]
    assert len(flags) == len(set(flags))
    dests = {options.dest(Option(flag)) for flag in flags}
    assert len(dests) == len(flags)


def test_the_identity_and_the_stats_lists_come_from_the_declarations() -> None:
    assert tuple(f.name for f in FIELDS if f.about.defines_crawl) == identity.CRAWL_SETTINGS
    assert {"max_depth", "include", "obey_robots"} <= set(identity.CRAWL_SETTINGS)
    assert "delay" not in identity.CRAWL_SETTINGS  # how politely, not which pages
    stats = importlib.import_module("crawler.cli.stats")
    assert set(stats._SHOWN_SETTINGS) == {f.name for f in FIELDS if f.about.shown}


# -- adding a setting is one declaration ------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Toy:
    """A config of one setting, declared as a new CrawlConfig field would be."""

    budget: int = setting(5, low=1, spider=True, defines_crawl=True, shown=True,
                          cli=Option("--budget", "N"), help="pages to spend")

    def __post_init__(self) -> None:
        settings.validate(self)


def test_one_declaration_gives_validation_option_help_and_spider_attribute() -> None:
    with pytest.raises(ConfigError, match="budget must be at least 1"):
        Toy(budget=0)
    with pytest.raises(ConfigError, match="budget must be a whole number"):
        Toy(budget=1.5)  # type: ignore[arg-type]
    p = argparse.ArgumentParser()
    options.add_settings(p, Toy)
    assert "pages to spend (default: 5)" in " ".join(p.format_help().split())
    assert options.settings_from(p.parse_args(["--budget", "7"]), Toy) == {"budget": 7}
    assert options.settings_from(p.parse_args([]), Toy) == {}
    for flag in ("spider", "defines_crawl", "shown"):
        assert settings.names(Toy, **{flag: True}) == ("budget",)
    assert "budget (int; default 5; --budget): pages to spend" in settings.describe(Toy)


def test_a_field_without_a_declaration_is_refused() -> None:
    @dataclasses.dataclass
    class Undeclared:
        budget: int = 5

    with pytest.raises(TypeError, match="setting"):
        settings.fields(Undeclared)


def test_a_type_validation_does_not_know_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match="not supported"):
        settings.kind_of(list[int])


def test_host_policies_are_validated_by_their_own_declarations() -> None:
    with pytest.raises(ConfigError, match="per_host must be at least 1"):
        HostPolicy(per_host=0)
    with pytest.raises(ConfigError, match="delay must be a finite number"):
        HostPolicy(delay=float("inf"))
    with pytest.raises(ConfigError, match="host_policies must be a mapping of str to HostPol"):
        CrawlConfig(host_policies={"a.test": 3})  # type: ignore[dict-item]


# -- misspelt settings on a spider ------------------------------------------------------------


@pytest.mark.parametrize(("attribute", "value", "meant"), [
    ("dealy", 1.0, "delay"),  # two letters swapped
    ("dely", 1.0, "delay"),  # one left out
    ("max_page", 10, "max_pages"),
    ("per_hosts", 1, "per_host"),  # one added
    ("workerz", 4, "workers"),  # one changed
    ("maxDepth", 2, "max_depth"),  # case and underscores
    ("Delay", 2, "delay"),
    ("obey_robot", False, "obey_robots"),
    ("excludes", ["/x"], "exclude"),
])
def test_a_misspelt_setting_is_warned_about_with_the_name_meant(
        attribute: str, value: object, meant: str, caplog: pytest.LogCaptureFixture) -> None:
    spider = type("Quotes", (Spider,), {attribute: value})()
    with caplog.at_level(logging.WARNING, logger="crawler.status"):
        assert layered(spider) == CrawlConfig()  # warned about, and changes nothing
    assert re.search(rf"Quotes\.{attribute} .*did you mean {meant}\?", caplog.text)


@pytest.mark.parametrize(("attribute", "value"), [
    ("user_agents", ["a/1", "b/2"]),  # a list of its own: user_agent is one text
    ("relay", 1.0),  # another word, not a typo of "delay"
    ("delays", {"a": 1}),  # not a number
    ("dealy", None),  # None sets nothing
    ("_dealy", 1.0),  # private
    ("max_sitemap_depth", 3),
    ("pages", 5),
    ("seen", set()),
    ("worker", staticmethod(lambda: 1)),
    ("timeouts", property(lambda self: 3)),
    ("MAX_PAGES", 3),  # constants are the user's own, whatever their name
    ("TIMEOUT", 10.0),
    ("DELAY", 1.0),
])
def test_the_users_own_attributes_are_left_alone(attribute: str, value: object,
                                                caplog: pytest.LogCaptureFixture) -> None:
    spider = type("Quotes", (Spider,), {attribute: value})()
    with caplog.at_level(logging.WARNING, logger="crawler.status"):
        assert layered(spider) == CrawlConfig()
    assert "misspelt" not in caplog.text


def test_a_misspelt_method_is_the_users_own() -> None:
    class Methods(Spider):
        def dealy(self) -> float:
            return 1.0

    assert layered(Methods()) == CrawlConfig()


def test_a_misspelling_in_a_base_class_of_the_users_is_found() -> None:
    class Base(Spider):
        workres = 8

    class Child(Base):
        name = "child"

    assert settings.misspelt(Child, [f for f in FIELDS if f.about.spider]) is not None
    assert re.search(r"Base\.workres .*workers",
                     settings.misspelt(Child, [f for f in FIELDS if f.about.spider]) or "")


def test_the_bundled_spiders_raise_no_false_alarm() -> None:
    root = Path(__file__).resolve().parent.parent
    found = 0
    for path in sorted((root / "spiders").glob("*.py")):
        module = importlib.import_module(f"spiders.{path.stem}")
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, Spider) and cls is not Spider:
                assert settings.misspelt(cls, [f for f in FIELDS if f.about.spider]) is None
                found += 1
    assert found >= 2
