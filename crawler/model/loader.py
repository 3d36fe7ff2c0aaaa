"""Finding a user's Spider class from what was typed on the command line.

A file (`path/to/file.py[:Class]`) is loaded from its path. A module path
(`package.module:Class`) is imported from the current folder first, as `python -m` would: a
user's own `spiders/` folder wins over any installed package of that name, with or without
an `__init__.py`. Whatever goes wrong is said in the user's terms: the file and line of
their mistake, and what the file holds instead of the class asked for.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
import sysconfig
import traceback
from pathlib import Path
from types import ModuleType, TracebackType

from crawler.errors import SpiderError
from crawler.model.callsite import in_library
from crawler.model.spider import Spider

MODULE_PREFIX = "_crawl_spider_"
"""A spider file's module is named this plus the file's stem."""
# The crawler's own packages: a user's folder of the same name cannot replace them while
# the crawler runs.
_OWN_PACKAGES = frozenset({"crawler", "storage"})
# Python's own modules and installed libraries: a user's mistake is not at their lines.
_NOT_USERS = tuple({sysconfig.get_paths()[k] + "/" for k in ("stdlib", "purelib", "platlib")})


def load_spider_class(target: str) -> type[Spider]:
    """`path/to/file.py`, `file.py:ClassName` or `package.module:ClassName`."""
    location, _, class_name = target.partition(":")
    if location.endswith(".py") or "/" in location or Path(location).is_file():
        path = Path(location)
        module = _load_file(path)
        where = str(path)
    else:
        module = _import_module(location)
        where = getattr(module, "__file__", None) or location
    return _pick(module, class_name or None, target, where)


def class_path(cls: type) -> str:
    """`module.Class`, the same whichever way the class was loaded: the last part of its
    module's name (a spider file's stem), then its qualified name."""
    module = cls.__module__.rpartition(".")[2].removeprefix(MODULE_PREFIX)
    return f"{module}.{cls.__qualname__}"


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise SpiderError(f"no such spider file: {path}")
    name = f"{MODULE_PREFIX}{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpiderError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling-free introspection need it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpiderError(f"{path} failed to import: {user_error(exc)}"
                          f"{_package_hint(path, exc)}") from exc
    return module


def _package_hint(path: Path, exc: Exception) -> str:
    """A file of a package, loaded as a file, has no package for its relative imports
    (`from .items import Book`): loaded by its module path, it has."""
    if not isinstance(exc, ImportError) or "relative import" not in str(exc):
        return ""
    folder, parts = path.resolve().parent, [path.stem]
    while (folder / "__init__.py").is_file():  # up to the top package's folder
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:  # a folder without __init__.py: its module path from here, if any
        here = Path.cwd().resolve()
        if not path.resolve().is_relative_to(here):
            return ""
        folder, parts = here, list(path.resolve().with_suffix("").relative_to(here).parts)
    where = "" if folder == Path.cwd().resolve() else f" from {folder}"
    return (f"\n(it is part of a package: load it by its module path{where}: "
            f"crawl run {'.'.join(parts)}:CLASS)")


def _import_module(location: str) -> ModuleType:
    here = Path.cwd()
    _prefer_folder(here, location.partition(".")[0])
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        if exc.name is not None and location.startswith(exc.name) and exc.__traceback__ \
                and not _user_frames(exc.__traceback__):
            raise SpiderError(f"cannot import {location!r}: no module named {exc.name!r} "
                              f"here ({here}) or installed") from exc
        raise SpiderError(f"cannot import {location!r}: {user_error(exc)}") from exc
    except Exception as exc:
        raise SpiderError(f"cannot import {location!r}: {user_error(exc)}") from exc


def _prefer_folder(here: Path, top: str) -> None:
    """Make `import top...` find the current folder's `top` first, as `python -m` does
    (the `crawl` script's own folder is first on its path instead)."""
    if str(here) not in sys.path[:1] and "" not in sys.path[:1]:
        sys.path.insert(0, str(here))
    folder = here / top
    if not (folder.is_dir() or (here / f"{top}.py").is_file()):
        return
    loaded = sys.modules.get(top)
    if loaded is not None and not _comes_from(loaded, here):
        if top in _OWN_PACKAGES:
            raise SpiderError(f"{folder} has the name of the crawler's own package {top!r}, "
                              "so it cannot be imported by module path; load the spider "
                              "by its file (crawl run path/to/file.py) or rename the folder")
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
    if folder.is_dir() and not (folder / "__init__.py").exists() and top not in sys.modules:
        # A folder without __init__.py is a namespace package, which any installed package
        # of the same name would win over: make it the package, as it is the one meant.
        spec = importlib.machinery.ModuleSpec(top, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        sys.modules[top] = importlib.util.module_from_spec(spec)
    importlib.invalidate_caches()


def _comes_from(module: ModuleType, here: Path) -> bool:
    places = [getattr(module, "__file__", None), *getattr(module, "__path__", [])]
    return any(p is not None and Path(p).resolve().is_relative_to(here.resolve())
               for p in places)


def user_error(exc: BaseException) -> str:
    """An exception raised by a user's code, said at the user's line: `FILE:LINE: Type:
    message` and the line itself (a SyntaxError's own file and line)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        text = (exc.text or "").strip()
        return (f"{exc.filename}:{exc.lineno}: {type(exc).__name__}: {exc.msg}"
                + (f"\n    {text}" if text else ""))
    frames = _user_frames(exc.__traceback__)
    if not frames:
        return f"{type(exc).__name__}: {exc}"
    last = frames[-1]
    code = f"\n    {last.line.strip()}" if last.line else ""
    return f"{last.filename}:{last.lineno}: {type(exc).__name__}: {exc}{code}"


def _user_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    """The frames of a traceback in the user's code: not the crawler's, not Python's own
    (its import machinery among them), not an installed library's."""
    return [f for f in traceback.extract_tb(tb)
            if not in_library(f.filename) and not f.filename.startswith(("<", *_NOT_USERS))]


def _pick(module: ModuleType, class_name: str | None, target: str,
          where: str) -> type[Spider]:
    if class_name:
        if not hasattr(module, class_name):
            spiders = _spider_names(module)
            hint = (f" (it has {', '.join(spiders)})" if spiders
                    else " (it has no Spider subclass)")
            raise SpiderError(f"no class named {class_name} in {where}{hint}")
        cls = getattr(module, class_name)
        if not inspect.isclass(cls):
            raise SpiderError(f"{class_name} in {where} is {_what(cls)}, not a class; name "
                              "a Spider subclass")
        if not issubclass(cls, Spider):
            raise SpiderError(f"{class_name} in {where} is a class, but not a Spider "
                              "subclass: write `class "
                              f"{class_name}(Spider):` (from crawler import Spider)")
        return cls
    found = _spiders(module)
    if len(found) != 1:
        names = ", ".join(sorted(c.__name__ for c in found)) or "none"
        raise SpiderError(
            f"{target} defines {len(found)} Spider subclasses ({names}); "
            "name one as FILE.py:ClassName"
        )
    return found[0]


def _spiders(module: ModuleType) -> list[type[Spider]]:
    return [obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Spider) and obj is not Spider
            and obj.__module__ == module.__name__]


def _spider_names(module: ModuleType) -> list[str]:
    return sorted(c.__name__ for c in _spiders(module))


def _what(value: object) -> str:
    if inspect.isfunction(value):
        return "a function"
    if inspect.ismodule(value):
        return "a module"
    return f"a {type(value).__name__}"
