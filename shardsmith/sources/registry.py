"""The one list of sources: every class in ``sources/medical/`` and ``sources/werewolf/``, plus
third-party sources installed under the ``shardsmith.sources`` entry-point group.

Nothing else in the package names a source: assets, jobs, sensors, suites, the dataset card and
the CLI ask this module. A class whose facts are incomplete (see ``sources.base``) or whose name
is taken is refused with an error naming it. A built-in adapter whose optional dependency is
missing, or a plugin that fails to import, is left out of the list and recorded in
:func:`load_failures`: the build's preflight (``pipeline.preflight``) fails naming it unless the
user allows a partial build, so a broken plugin never disappears from a release silently.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."shardsmith.sources"]
    my_dataset = "my_package.my_dataset:MyDataset"
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from shardsmith.sources.base import Source

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "shardsmith.sources"
BUILTIN_PACKAGES = ("shardsmith.sources.medical", "shardsmith.sources.werewolf")
COLLECTIONS = ("medical", "werewolf")


class SourceRegistryError(TypeError):
    """A source class cannot be registered (missing facts, duplicate name, wrong base)."""


def _concrete(cls: object) -> bool:
    return (inspect.isclass(cls) and issubclass(cls, Source) and "name" in vars(cls)
            and not inspect.isabstract(cls))


@dataclass(frozen=True)
class LoadFailure:
    """A source module or plugin that could not be imported, and why."""

    origin: str  # "module shardsmith.sources.medical.x" or "entry point name = module:Class"
    error: str


_FAILURES: list[LoadFailure] = []


def load_failures() -> list[LoadFailure]:
    """Source modules and plugins that failed to import when the registry was built."""
    source_classes()
    return list(_FAILURES)


def _builtin_classes() -> list[type[Source]]:
    found: list[type[Source]] = []
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            module_name = f"{package_name}.{info.name}"
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                log.warning("source module %s not loaded (missing dependency: %s)", module_name, exc)
                _FAILURES.append(LoadFailure(f"module {module_name}", f"{type(exc).__name__}: {exc}"))
                continue
            found += [c for _, c in inspect.getmembers(module, _concrete) if c.__module__ == module_name]
    return found


def _plugin_classes() -> list[type[Source]]:
    found: list[type[Source]] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the built-in sources
            log.error("entry point %s = %s could not be loaded: %s", ep.name, ep.value, exc)
            _FAILURES.append(LoadFailure(f"plugin {ep.name} = {ep.value}", f"{type(exc).__name__}: {exc}"))
            continue
        if not (inspect.isclass(cls) and issubclass(cls, Source)):
            raise SourceRegistryError(f"entry point {ep.name} = {ep.value}: not a shardsmith Source class")
        found.append(cls)
    return found


def validate(cls: type[Source]) -> None:
    """Raise SourceRegistryError unless ``cls`` declares every required fact."""
    missing = cls.missing_facts()
    if missing:
        raise SourceRegistryError(f"source class {cls.__module__}.{cls.__qualname__} does not declare: "
                                  f"{', '.join(missing)} (see shardsmith/sources/base.py)")
    if cls.collection not in COLLECTIONS:
        raise SourceRegistryError(f"source {cls.name}: collection {cls.collection!r} not in {COLLECTIONS}")


@cache
def source_classes() -> dict[str, type[Source]]:
    """Every registered source class by name: built-ins first (sorted), then entry points."""
    out: dict[str, type[Source]] = {}
    _FAILURES.clear()
    for cls in [*_builtin_classes(), *_plugin_classes()]:
        validate(cls)
        if cls.name in out and out[cls.name] is not cls:
            raise SourceRegistryError(f"source name {cls.name!r} is declared by both "
                                      f"{out[cls.name].__module__} and {cls.__module__}")
        out[cls.name] = cls
    return out


def refresh() -> None:
    """Forget the cached list (tests that install a plugin at run time)."""
    source_classes.cache_clear()
    from shardsmith.pipeline import keys

    keys.refresh()


def source_names(collection: str | None = None) -> list[str]:
    return [n for n, c in source_classes().items() if collection is None or c.collection == collection]


def medical_source_names() -> list[str]:
    return source_names("medical")


def game_source_names() -> list[str]:
    return source_names("werewolf")


def source_class(name: str) -> type[Source]:
    try:
        return source_classes()[name]
    except KeyError:
        known = ", ".join(sorted(source_classes()))
        raise KeyError(f"unknown source {name!r}; known: {known}") from None


def get_source(name: str, settings=None) -> Source:
    """A fresh instance of the source ``name`` (medical sources take ``settings`` for their options)."""
    cls = source_class(name)
    if cls.collection == "medical":
        return cls(settings=settings)  # type: ignore[call-arg]
    return cls()


def facts(collection: str | None = None) -> dict[str, dict]:
    """Declared facts of every source (the card and ``shardsmith sources`` print them)."""
    return {n: c.facts() for n, c in source_classes().items() if collection is None or c.collection == collection}


def vocabulary_files() -> tuple:
    """Label-mapping CSVs that registered sources ship outside this package."""
    return tuple(p for c in source_classes().values() for p in c.vocabulary_files)
