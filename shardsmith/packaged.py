"""Files that ship inside a package, located one way.

Vocabularies, role tables, view data and JSON schemas live under ``shardsmith/schemas/`` and are
installed as package data (``pyproject.toml``); the default Whisper weights live inside another
package. Code asks this module for them (``importlib.resources``) instead of walking up from its
own ``__file__``, so a module can move without its data going missing, and a file left out of the
package data fails with its name instead of an obscure ``FileNotFoundError`` deep in a loader.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "shardsmith"


def package_root(package: str = PACKAGE) -> Path:
    """The folder of an installed package (``ModuleNotFoundError`` when it is not installed).

    The package must be installed as files on disk, as pip installs wheels; readers need real paths
    (``glob``, ``open``, folders handed to model loaders).
    """
    root = resources.files(package)
    if not isinstance(root, Path):
        raise RuntimeError(f"package {package!r} is not installed as files on disk ({type(root).__name__})")
    return root


def data_path(*parts: str) -> Path:
    """A file or folder shipped inside shardsmith, e.g. ``data_path("schemas", "vocabulary", "roles.csv")``."""
    path = package_root().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{PACKAGE}/{'/'.join(parts)} is not installed with the package "
                                "(is it listed under [tool.setuptools.package-data] in pyproject.toml?)")
    return path
