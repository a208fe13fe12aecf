"""The plain library never imports Dagster: only ``defs/`` and ``definitions.py`` may (the two
layers of ARCHITECTURE.md). Checked on the source text of every module, so a new import anywhere
in the library fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import shardsmith

PACKAGE = Path(shardsmith.__file__).parent
DAGSTER_LAYER = ("defs", "definitions.py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_library_modules_never_import_dagster():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in DAGSTER_LAYER:
            continue
        if {"dagster", "dagster_postgres", "dagster_celery"} & _imports(path):
            offenders.append(str(rel))
    assert offenders == []


def test_cli_reaches_dagster_only_through_defs():
    text = (PACKAGE / "cli.py").read_text()
    assert "import dagster" not in text and "from dagster" not in text
