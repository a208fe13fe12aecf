"""Werewolf roles and factions, loaded from ``vocabulary/roles.csv``.

The table maps every verbatim role string we have met (Chinese and English, synonyms such as
平民/村民, typos such as ``hsot`` and ``阔人``) to one canonical role id and its faction. It is data,
not code, so that adding a board is a CSV line that a reviewer can read. Lookups ignore case and
surrounding / repeated whitespace; a string missing from the table raises UnknownRoleError naming it,
so nothing is guessed silently.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shardsmith.errors import ShardsmithError
from shardsmith.packaged import data_path
from shardsmith.schemas.werewolf import FACTIONS

ROLES_CSV = data_path("schemas", "vocabulary", "roles.csv")


class UnknownRoleError(ShardsmithError, KeyError):
    """A role string the table does not map; the message names it."""

    default_reason = "unknown_role"

    def __init__(self, detail: str) -> None:
        super().__init__(None, detail)


@dataclass(frozen=True)
class Role:
    source_label: str  # as written in the table
    role: str  # canonical id
    faction: str  # werewolf | village | neutral | host
    language: str
    note: str


def normalise_role_text(text: str) -> str:
    """Case- and whitespace-insensitive key: `` Seer`` and ``seer`` are the same string."""
    return " ".join(str(text).split()).casefold()


class RoleTable:
    def __init__(self, rows: dict[str, Role]):
        self._rows = rows

    def lookup(self, text: str) -> Role:
        try:
            return self._rows[normalise_role_text(text)]
        except KeyError:
            where = ROLES_CSV.relative_to(ROLES_CSV.parents[3])
            raise UnknownRoleError(f"role {text!r} is not in the role table (add it to {where})") from None

    def has(self, text: str) -> bool:
        return normalise_role_text(text) in self._rows

    def roles(self) -> dict[str, str]:
        """Canonical role id -> faction."""
        return {r.role: r.faction for r in self._rows.values()}

    def rows(self) -> list[Role]:
        return [self._rows[k] for k in sorted(self._rows)]


@lru_cache(maxsize=1)
def load_roles(path: Path = ROLES_CSV) -> RoleTable:
    """Read and check the table: one faction per canonical role, no string mapped twice."""
    rows: dict[str, Role] = {}
    faction_of: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for lineno, rec in enumerate(csv.DictReader(fh), start=2):
            role = Role(
                rec["source_label"],
                rec["role"].strip(),
                rec["faction"].strip(),
                rec.get("language") or "",
                rec.get("note") or "",
            )
            if not role.source_label.strip() or not role.role:
                raise ValueError(f"{path.name}:{lineno}: empty source_label or role")
            if role.faction not in FACTIONS:
                raise ValueError(f"{path.name}:{lineno}: faction {role.faction!r} not in {FACTIONS}")
            if faction_of.setdefault(role.role, role.faction) != role.faction:
                raise ValueError(f"{path.name}:{lineno}: role {role.role!r} given two factions")
            key = normalise_role_text(role.source_label)
            if key in rows:
                raise ValueError(f"{path.name}:{lineno}: {role.source_label!r} mapped twice")
            rows[key] = role
    return RoleTable(rows)


def lookup_role(text: str) -> Role:
    return load_roles().lookup(text)
