"""Finding a user's Spider class from what was typed on the command line."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from crawler.errors import SpiderError
from crawler.model.spider import Spider

MODULE_PREFIX = "_crawl_spider_"
"""A spider file's module is named this plus the file's stem."""


def load_spider_class(target: str) -> type[Spider]:
    """`path/to/file.py`, `file.py:ClassName` or `package.module:ClassName`."""
    location, _, class_name = target.partition(":")
    if location.endswith(".py") or "/" in location or Path(location).is_file():
        module = _load_file(Path(location))
    else:
        try:
            module = importlib.import_module(location)
        except Exception as exc:
            raise SpiderError(
                f"cannot import module {location!r}: {type(exc).__name__}: {exc}"
            ) from exc
    return _pick(module, class_name or None, target)


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
        raise SpiderError(f"{path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def _pick(module: ModuleType, class_name: str | None, target: str) -> type[Spider]:
    if class_name:
        cls = getattr(module, class_name, None)
        if not (inspect.isclass(cls) and issubclass(cls, Spider)):
            raise SpiderError(f"{target}: {class_name!r} is not a Spider subclass")
        return cls
    found = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, Spider) and obj is not Spider
             and obj.__module__ == module.__name__]
    if len(found) != 1:
        names = ", ".join(sorted(c.__name__ for c in found)) or "none"
        raise SpiderError(
            f"{target} defines {len(found)} Spider subclasses ({names}); "
            "name one as FILE.py:ClassName"
        )
    return found[0]
