"""Packaged data files are found one way (``shardsmith.packaged``), never by walking up from ``__file__``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import shardsmith
from shardsmith.packaged import data_path, package_root

PACKAGE_DIR = Path(shardsmith.__file__).parent
HELPER = PACKAGE_DIR / "packaged.py"
# Ways of locating a file relative to code; only the helper may use them.
LOCATORS = re.compile(r"__file__|importlib\.resources|from importlib import resources|resources\.files\(")


def test_no_module_but_the_helper_locates_files_itself() -> None:
    offenders = [
        f"{p.relative_to(PACKAGE_DIR.parent)}:{n}: {line.strip()}"
        for p in sorted(PACKAGE_DIR.rglob("*.py")) if p != HELPER
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if LOCATORS.search(line)
    ]
    assert offenders == [], "locate packaged files with shardsmith.packaged.data_path:\n" + "\n".join(offenders)


def test_every_declared_package_data_file_is_reachable() -> None:
    """Each file the package-data globs ship is found through the helper (and there are some)."""
    pyproject = tomllib.loads((PACKAGE_DIR.parent / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["shardsmith"]
    shipped = sorted(p.relative_to(PACKAGE_DIR) for g in globs for p in PACKAGE_DIR.glob(g) if p.is_file())
    assert len(shipped) >= 10
    for rel in shipped:
        assert data_path(*rel.parts).read_bytes() == (PACKAGE_DIR / rel).read_bytes()


def test_loaders_read_the_packaged_tables() -> None:
    from shardsmith.identity.groups import load_thresholds
    from shardsmith.schemas.roles import ROLES_CSV, load_roles
    from shardsmith.sources.werewolf.werebench import outcome_phrases
    from shardsmith.sources.werewolf.werewolf_video import validate_sidecar

    assert ROLES_CSV == package_root() / "schemas" / "vocabulary" / "roles.csv"
    assert load_roles().lookup("预言家").role == "seer"
    assert load_thresholds().hamming_radius >= 0
    markers, wins = outcome_phrases()
    assert markers and {f for _, f in wins} <= {"village", "werewolf", "neutral"}
    assert validate_sidecar({}) != []  # the JSON schema loaded and rejects an empty sidecar


def test_a_missing_data_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match=r"shardsmith/schemas/vocabulary/nope\.csv.*package-data"):
        data_path("schemas", "vocabulary", "nope.csv")
    with pytest.raises(ModuleNotFoundError):
        package_root("no_such_package_for_shardsmith")
