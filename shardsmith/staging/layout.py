"""Where staged and quarantined files live: the one object that spells their names.

Every module that reads or writes staging asks a :class:`StagingLayout` for paths; no other
module builds a staging file name. A ``part`` is a partition of a source (a hash bucket such as
``b03``) or :data:`WHOLE` for a source staged in one piece.

    staging/<source>/catalog.parquet, catalog_quarantine.parquet, catalog.json
    staging/<source>/<table>.parquet | <table>-<part>.parquet     records, volumes, ...
    staging/<source>/counts.json | counts-<part>.json             what one step produced
    staging/<source>/versions.json                                data versions of each step
    staging/<source>/preview-<part>.png, labels-<part>.png        contact sheet, label chart
    staging/<source>/<table>/<game_id>.parquet, counts/<game_id>.json    per-game tables
    quarantine/<source>/quarantine.parquet | quarantine-<part>.parquet | <game_id>.parquet
    staging/werewolf_games.json                                   the games index
    staging/_identity/{groups,duplicates}.parquet, identity.json  duplicate groups across sources
    staging/_build/last.json                                      the last CLI build: sources, success
    .sensors/<sensor>.json                                        sensor fingerprint state
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

WHOLE = "records"  # the part name of a source staged in one piece


@dataclass(frozen=True)
class StagingLayout:
    home: Path

    @property
    def staging_root(self) -> Path:
        return self.home / "staging"

    @property
    def quarantine_root(self) -> Path:
        return self.home / "quarantine"

    def source_dir(self, source: str) -> Path:
        return self.staging_root / source

    def quarantine_dir(self, source: str) -> Path:
        return self.quarantine_root / source

    # -- medical sources ----------------------------------------------------------------------
    def catalog(self, source: str) -> Path:
        return self.source_dir(source) / "catalog.parquet"

    def catalog_quarantine(self, source: str) -> Path:
        return self.source_dir(source) / "catalog_quarantine.parquet"

    def catalog_meta(self, source: str) -> Path:
        return self.source_dir(source) / "catalog.json"

    def table(self, source: str, table: str, part: str = WHOLE) -> Path:
        stem = table if part == WHOLE else f"{table}-{part}"
        return self.source_dir(source) / f"{stem}.parquet"

    def counts(self, source: str, part: str = WHOLE) -> Path:
        return self.source_dir(source) / ("counts.json" if part == WHOLE else f"counts-{part}.json")

    def quarantine(self, source: str, part: str = WHOLE) -> Path:
        name = "quarantine.parquet" if part == WHOLE else f"quarantine-{part}.parquet"
        return self.quarantine_dir(source) / name

    def source_quarantine(self, source: str) -> Path:
        """Rows a partitioned source rejects before partitioning (catalog stage)."""
        return self.quarantine(source, WHOLE)

    def versions(self, source: str) -> Path:
        return self.source_dir(source) / "versions.json"

    def preview(self, source: str, part: str = WHOLE) -> Path:
        return self.source_dir(source) / f"preview-{part}.png"

    def label_chart(self, source: str, part: str = WHOLE) -> Path:
        return self.source_dir(source) / f"labels-{part}.png"

    def part_paths(self, source: str, part: str = WHOLE) -> dict[str, Path]:
        """The files one records step writes."""
        return {"records": self.table(source, "records", part), "counts": self.counts(source, part),
                "quarantine": self.quarantine(source, part)}

    def whole_source_files(self, source: str, tables: list[str]) -> list[Path]:
        """Files of a source staged in one piece (a partitioned source must have none of them)."""
        return [self.table(source, "records"), self.counts(source), *(self.table(source, t) for t in tables)]

    def table_files(self, source: str, table: str, non_empty: bool = True) -> list[Path]:
        """Every staged file of ``table`` for ``source`` (whole or per part, or per game), sorted."""
        d = self.source_dir(source)
        files = sorted(d.glob(f"{table}.parquet")) + sorted(d.glob(f"{table}-*.parquet"))
        if (d / table).is_dir():
            files += sorted(p for p in (d / table).glob("*.parquet") if not p.name.startswith("."))
        if non_empty:
            files = [f for f in files if pq.ParquetFile(f).metadata.num_rows > 0]
        return files

    def has_table(self, source: str, table: str) -> bool:
        return bool(self.table_files(source, table, non_empty=False))

    # -- games ----------------------------------------------------------------------------------
    def game_table(self, source: str, table: str, game_id: str) -> Path:
        return self.source_dir(source) / table / f"{game_id}.parquet"

    def game_counts(self, source: str, game_id: str) -> Path:
        return self.source_dir(source) / "counts" / f"{game_id}.json"

    def game_quarantine(self, source: str, game_id: str) -> Path:
        return self.quarantine_dir(source) / f"{game_id}.parquet"

    def games_index(self) -> Path:
        return self.staging_root / "werewolf_games.json"

    # -- everything else -------------------------------------------------------------------------
    def sensor_state(self, name: str) -> Path:
        return self.home / ".sensors" / f"{name}.json"

    def last_build(self) -> Path:
        """What the last ``shardsmith build`` covered and whether it succeeded (the plan trusts
        its ``reuse`` verdicts only after a successful build of the same sources)."""
        return self.staging_root / "_build" / "last.json"

    def identity_dir(self) -> Path:
        """The duplicates stage's cache (groups and duplicates across every medical source)."""
        return self.staging_root / "_identity"

    def source_failure(self, source: str) -> Path:
        """Written when a whole source failed to stage (its label file is broken, say)."""
        return self.source_dir(source) / "FAILED.json"
