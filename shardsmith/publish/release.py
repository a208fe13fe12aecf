"""Immutable, atomic, reproducible releases (DESIGN section 6).

A release is built in a hidden temporary folder beside the others, verified, renamed into
place, and only then does ``LATEST`` change (write-temp + ``os.replace``). A process killed at
any moment therefore leaves ``LATEST`` on a complete release; leftovers are hidden ``.tmp-*``
folders that the next build removes. A lock file refuses a second concurrent publisher.

Reproducibility: rows are written in staging order (sources sorted, each staging file already
ordered), Parquet carries no timestamps, and tar members have fixed mtime/owner/mode, so the
same inputs give byte-identical shards. The content digest covers ``data/`` and ``wds/`` only;
publishing a digest that already exists returns that version instead of a new one.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from shardsmith import __version__
from shardsmith.atomic import atomic_write_text, fsync_dir
from shardsmith.hashing import sha256_file
from shardsmith.pseudonym import stable_id
from shardsmith.publish.hf_features import with_hf_features
from shardsmith.publish.tar_writer import ShardWriter
from shardsmith.publish.wds_codec import json_members, wds_key
from shardsmith.schemas.tables import TableSpec

log = logging.getLogger(__name__)

PARQUET_ROW_GROUP_BYTES = 64 << 20
# Also bounded in rows: with small images 64 MB is ~50,000 rows, and their nested metadata held
# until the flush grew memory with the dataset.
PARQUET_ROW_GROUP_ROWS = 4096
READ_BATCH_ROWS = 1024
PARQUET_FILE_BYTES = 512 << 20
WDS_SHARD_BYTES = 256 << 20
WDS_SHARD_COUNT = 10_000
LOCK_TIMEOUT_S = 5.0


class ReleaseLockedError(RuntimeError):
    """Another build is publishing this collection right now."""


@dataclass
class PublishResult:
    collection: str
    version: str
    path: Path
    created: bool  # False when identical content already existed
    content_digest: str
    row_counts: dict[str, dict[str, int]] = field(default_factory=dict)


class _SplitWriter:
    """Parquet parts and tar shards for one (table, split), rolled over by size."""

    def __init__(self, root: Path, spec: TableSpec, split: str, schema: pa.Schema):
        self.root, self.spec, self.split = root, spec, split
        self.schema = with_hf_features(schema, spec)
        self.pq_dir = root / "data" / spec.name / split
        self.wds_dir = root / "wds" / spec.name / split
        self.pq_dir.mkdir(parents=True, exist_ok=True)
        self.wds_dir.mkdir(parents=True, exist_ok=True)
        self.part = -1
        self.shard = -1
        self.writer: pq.ParquetWriter | None = None
        self.tar: ShardWriter | None = None
        self.pending: list[pa.Table] = []  # Arrow slices of the input, not Python rows
        self.pending_rows = 0
        self.pending_bytes = 0
        self.file_bytes = 0
        self.shard_bytes = 0
        self.shard_count = 0
        self.rows = 0
        media = set(spec.media)
        self.no_compress = [c for c in schema.names if c in media]

    # parquet ---------------------------------------------------------------------------------
    def _open_part(self) -> None:
        self.part += 1
        path = self.pq_dir / f"part-{self.part:05d}.parquet"
        compression = {c: ("none" if c in self.no_compress else "zstd") for c in self.schema.names}
        self.writer = pq.ParquetWriter(
            path, self.schema, compression=compression,
            use_dictionary=[c for c in self.schema.names if c not in self.no_compress],
            write_statistics=True, store_schema=True,
        )
        self.file_bytes = 0

    def _flush_group(self) -> None:
        if not self.pending:
            return
        if self.writer is None or self.file_bytes >= PARQUET_FILE_BYTES:
            if self.writer is not None:
                self.writer.close()
            self._open_part()
        self.writer.write_table(pa.concat_tables(self.pending).combine_chunks(), row_group_size=self.pending_rows)
        self.file_bytes += self.pending_bytes
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    # webdataset ------------------------------------------------------------------------------
    def _open_shard(self) -> None:
        if self.tar is not None:
            self.tar.close()
        self.shard += 1
        self.tar = ShardWriter(self.wds_dir / f"shard-{self.shard:06d}.tar")
        self.shard_bytes = 0
        self.shard_count = 0

    def add_rows(self, arrow: pa.Table) -> None:
        """Rows of one split in order, already in the release schema. Parquet gets Arrow slices, the
        tar each row's members (:func:`sample_members`), with no Python dict per row. Row groups
        close after the row that reaches either bound."""
        start = 0
        sizes, samples = sample_members(arrow, self.spec)
        for i, members in enumerate(samples):
            size_hint = sizes[i]
            self.pending_rows += 1
            self.pending_bytes += size_hint
            if self.pending_bytes >= PARQUET_ROW_GROUP_BYTES or self.pending_rows >= PARQUET_ROW_GROUP_ROWS:
                self.pending.append(arrow.slice(start, i + 1 - start))
                start = i + 1
                self._flush_group()
            if self.tar is None or self.shard_bytes >= WDS_SHARD_BYTES or self.shard_count >= WDS_SHARD_COUNT:
                self._open_shard()
            for name, data in members:
                self.tar.add(name, data)
            self.shard_bytes += size_hint
            self.shard_count += 1
            self.rows += 1
        if start < arrow.num_rows:
            self.pending.append(arrow.slice(start))

    def close(self) -> None:
        self._flush_group()
        if self.writer is not None:
            self.writer.close()
        if self.tar is not None:
            self.tar.close()


def _media_column(arrow: pa.Table, column: str) -> list[bytes | None]:
    """The payload of each cell of a media column (``{bytes, path}`` struct or plain binary)."""
    col = arrow[column].combine_chunks()
    data = pc.struct_field(col, "bytes") if pa.types.is_struct(col.type) else col
    return [d or None for d in data.to_pylist()]


def sample_members(arrow: pa.Table, spec: TableSpec) -> tuple[list[int], list[list[tuple[str, bytes]]]]:
    """Each row's size hint (512 + its media bytes) and its tar members, the ones
    :func:`~shardsmith.publish.wds_codec.encode_sample` gives for the row: ``<key>.json`` then one
    member per non-empty media cell. Built from the Arrow columns: the JSON by
    :func:`~shardsmith.publish.wds_codec.json_members`, the keys and media bytes as plain lists."""
    n = arrow.num_rows
    texts = json_members(arrow, spec)
    keys = arrow[spec.key_column].to_pylist() if spec.key_column in arrow.column_names else [None] * n
    media = [(col, _media_column(arrow, col)) for col in spec.media if col in arrow.column_names]
    kinds = {col: arrow[spec.media_types[col]].to_pylist() for col, _ in media
             if spec.media_types.get(col) in arrow.column_names}
    ext_of = functools.cache(lambda col, kind: spec.media_extension(col, {spec.media_types.get(col): kind}))
    sizes, samples = [], []
    for i in range(n):
        value = keys[i]
        if not value:  # no key: a stable id of the whole row, as ever
            value = stable_id(json.dumps(arrow.slice(i, 1).to_pylist()[0], sort_keys=True, default=str))
        key = wds_key(value)
        members = [(f"{key}.json", texts[i])]
        size = 512
        for col, data in media:
            payload = data[i]
            if payload:
                kind = kinds[col][i] if col in kinds else None
                members.append((f"{key}.{ext_of(col, kind)}", payload))
                size += len(payload)
        sizes.append(size)
        samples.append(members)
    return sizes, samples


@dataclass
class TableInput:
    """One table to publish: Parquet files in the order they are to be written. The rows are
    published exactly as these files hold them (no transform at write time), so the files a release
    validated are the rows it publishes; a release-time change of rows (the duplicate groups' split)
    is written out first, by :func:`write_final_rows`."""

    spec: TableSpec
    files: list[Path]


def write_final_rows(spec: TableSpec, files: list[Path], out_dir: Path,
                     transform: Callable[[pa.Table], pa.Table]) -> list[Path]:
    """``files`` with ``transform`` applied, as the files a release validates and then publishes.

    One output file per input, in the same order (``<n>-<input name>``), with the input's own schema
    (a staged file that does not match the release schema must reach validation and fail there, by
    name); read and written a batch at a time (``READ_BATCH_ROWS`` rows, at most about 32 MB), so
    memory stays flat however many rows the table has."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for i, path in enumerate(files):
        target = out_dir / f"{i:05d}-{path.name}"
        pf = pq.ParquetFile(path)
        rows_per_batch = max(1, min(READ_BATCH_ROWS, _rows_within(pf, 32 << 20)))
        schema = pf.schema_arrow
        compression = {c: "none" if c in spec.media else "zstd" for c in schema.names}  # PNGs are compressed
        with pq.ParquetWriter(target, schema, compression=compression) as writer:
            for batch in pf.iter_batches(batch_size=rows_per_batch):
                writer.write_table(transform(pa.Table.from_batches([batch], schema=schema)))
        out.append(target)
    return out


def _write_table(root: Path, table: TableInput, stats_hook: Callable[[pa.Table], None] | None) -> dict[str, int]:
    spec = table.spec
    schema = spec.schema
    writers: dict[str, _SplitWriter] = {}
    for path in table.files:
        pf = pq.ParquetFile(path)
        # Bounded by bytes too: a batch of native-size 16-bit images must not hold gigabytes.
        rows_per_batch = max(1, min(READ_BATCH_ROWS, _rows_within(pf, 32 << 20)))
        for batch in pf.iter_batches(batch_size=rows_per_batch):
            arrow = pa.Table.from_batches([batch]).cast(schema)
            if stats_hook:
                stats_hook(arrow)
            by_split: dict[str, list[int]] = {}
            splits = (arrow[spec.split_column].to_pylist() if spec.split_column in arrow.column_names
                      else [None] * arrow.num_rows) if spec.split_column else ["all"] * arrow.num_rows
            for i, split in enumerate(splits):
                by_split.setdefault(str(split or "all"), []).append(i)
            for split, idx in by_split.items():
                w = writers.get(split)
                if w is None:
                    w = writers[split] = _SplitWriter(root, spec, split, schema)
                w.add_rows(arrow if len(idx) == arrow.num_rows else arrow.take(pa.array(idx, pa.int64())))
    for w in writers.values():
        w.close()
    return {split: w.rows for split, w in sorted(writers.items())}


def _rows_within(pf: pq.ParquetFile, budget: int) -> int:
    """Rows of ``pf`` that fit in about ``budget`` uncompressed bytes (its largest row group's rate)."""
    md = pf.metadata
    per_row = max((md.row_group(i).total_byte_size / max(1, md.row_group(i).num_rows)
                   for i in range(md.num_row_groups)), default=1.0)
    return int(budget / max(per_row, 1.0))


def _file_entries(root: Path, prefixes: Iterable[str]) -> list[dict]:
    out = []
    for prefix in prefixes:
        base = root / prefix
        if not base.exists():
            continue
        for p in sorted(base.rglob("*")):
            if p.is_file():
                out.append({"path": p.relative_to(root).as_posix(), "sha256": sha256_file(p), "size": p.stat().st_size})
    return out


def content_digest(entries: list[dict]) -> str:
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e["path"]):
        if e["path"].startswith(("data/", "wds/")):
            h.update(f"{e['path']}\0{e['sha256']}\n".encode())
    return h.hexdigest()


def list_versions(collection_dir: Path) -> list[str]:
    if not collection_dir.is_dir():
        return []
    versions = [p.name for p in collection_dir.iterdir() if p.is_dir() and re.fullmatch(r"v\d+", p.name)]
    return sorted(versions, key=lambda v: int(v[1:]))


def read_latest(collection_dir: Path) -> str | None:
    p = collection_dir / "LATEST"
    return p.read_text().strip() if p.is_file() else None


def _clean_stale(collection_dir: Path) -> None:
    for p in collection_dir.glob(".tmp-*"):
        log.warning("removing leftover of an interrupted build: %s", p)
        shutil.rmtree(p, ignore_errors=True)


def verify_tree(root: Path, manifest: dict) -> list[str]:
    """Problems found when re-hashing every file the manifest lists (empty list = verified)."""
    problems = []
    listed = set()
    for entry in manifest["files"]:
        listed.add(entry["path"])
        p = root / entry["path"]
        if not p.is_file():
            problems.append(f"missing: {entry['path']}")
        elif p.stat().st_size != entry["size"] or sha256_file(p) != entry["sha256"]:
            problems.append(f"checksum mismatch: {entry['path']}")
    for prefix in ("data", "wds"):
        base = root / prefix
        if base.exists():
            for p in base.rglob("*"):
                if p.is_file() and p.relative_to(root).as_posix() not in listed:
                    problems.append(f"unlisted file: {p.relative_to(root).as_posix()}")
    return problems


def publish(
    releases_root: Path,
    collection: str,
    tables: list[TableInput],
    *,
    input_fingerprints: dict[str, str],
    card: Callable[[dict], str],
    validation_dir: Path | None = None,
    stats_hooks: dict[str, Callable[[pa.Table], None]] | None = None,
    extra_manifest: dict | None = None,
    crash_hook: Callable[[str], None] | None = None,
    pictures: Callable[[Path], list[str]] | None = None,
) -> PublishResult:
    """Write a release; return the existing version if identical content is already published.

    ``card(manifest)`` renders README.md; ``pictures(folder)`` draws the card's pictures into
    ``pictures/`` and returns the markdown that embeds them; ``validation_dir`` (suite results and
    Data Docs) is copied to ``validation/``. ``crash_hook(stage)`` is a test seam to kill the process at
    named moments.
    """
    hook = crash_hook or (lambda stage: None)
    coll_dir = releases_root / collection
    coll_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(coll_dir / ".publish.lock"))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    except Timeout:
        raise ReleaseLockedError(
            f"another build is publishing {collection!r} (lock {coll_dir / '.publish.lock'} held); try later"
        ) from None
    try:
        _clean_stale(coll_dir)
        tmp = coll_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        hook("started")
        row_counts: dict[str, dict[str, int]] = {}
        for t in tables:
            hook(f"table:{t.spec.name}")
            row_counts[t.spec.name] = _write_table(tmp, t, (stats_hooks or {}).get(t.spec.name))
        hook("tables_written")
        entries = _file_entries(tmp, ("data", "wds"))
        digest = content_digest(entries)
        for version in reversed(list_versions(coll_dir)):
            m = _read_manifest(coll_dir / version)
            if m and m.get("content_digest") == digest:
                shutil.rmtree(tmp)
                log.info("content already published as %s/%s; nothing new", collection, version)
                if read_latest(coll_dir) != version:
                    atomic_write_text(coll_dir / "LATEST", version + "\n")
                return PublishResult(collection, version, coll_dir / version, False, digest, row_counts)
        versions = list_versions(coll_dir)
        version = f"v{int(versions[-1][1:]) + 1 if versions else 1}"
        if validation_dir is not None and validation_dir.exists():
            shutil.copytree(validation_dir, tmp / "validation")
        manifest = {
            "collection": collection,
            "version": version,
            "parent": read_latest(coll_dir),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "code_version": __version__,
            "schema_versions": {t.spec.name: t.spec.schema_version for t in tables},
            "input_fingerprints": dict(sorted(input_fingerprints.items())),
            "row_counts": row_counts,
            "content_digest": digest,
            **(extra_manifest or {}),
        }
        picture_lines = pictures(tmp / "pictures") if pictures else []
        card_text = card(manifest)
        if picture_lines:
            card_text += "\n" + "\n".join(picture_lines) + "\n"
        (tmp / "README.md").write_text(card_text)
        # data/ and wds/ were hashed for the digest above: reuse those entries, hash only the rest.
        manifest["files"] = entries + _file_entries(tmp, ("validation", "pictures")) + [
            {"path": "README.md", "sha256": sha256_file(tmp / "README.md"), "size": (tmp / "README.md").stat().st_size}
        ]
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        hook("manifest_written")
        problems = verify_tree(tmp, manifest)
        if problems:
            raise RuntimeError(f"release failed verification before publishing: {problems[:5]}")
        final = coll_dir / version
        os.rename(tmp, final)
        fsync_dir(coll_dir)
        hook("renamed")
        atomic_write_text(coll_dir / "LATEST", version + "\n")
        hook("latest_written")
        log.info("published %s/%s (%s)", collection, version, digest[:12])
        return PublishResult(collection, version, final, True, digest, row_counts)
    finally:
        lock.release()


def _read_manifest(path: Path) -> dict | None:
    p = path / "manifest.json"
    return json.loads(p.read_text()) if p.is_file() else None


def label_counter() -> tuple[Callable[[pa.Table], None], dict]:
    """A stats hook for records: present findings and targets per (source, label), records per
    split and per ``abnormal`` (``"true"``, ``"false"``, ``"none"``), per source. Counted on each
    batch's Arrow columns (group-by), not row by row."""
    stats: dict[str, Any] = {"findings": defaultdict(Counter), "targets": defaultdict(Counter),
                             "splits": defaultdict(Counter), "abnormal": defaultdict(Counter)}

    def count(table: pa.Table, keys: list[str], into: dict) -> None:
        for row in table.group_by(keys, use_threads=False).aggregate([([], "count_all")]).to_pylist():
            into[row[keys[0]]][row[keys[1]]] += row["count_all"]

    def flat(batch: pa.Table, column: str) -> pa.Table:
        lists = batch[column].combine_chunks()
        items = pc.list_flatten(lists)
        source = pc.take(batch["source"].combine_chunks(), pc.list_parent_indices(lists))
        return pa.table({"source": source, "label": items.field("label"),
                         **({"status": items.field("status")} if column == "findings" else {})})

    def hook(batch: pa.Table) -> None:
        names = batch.column_names
        if "split" in names:
            count(batch.select(["source", "split"]), ["source", "split"], stats["splits"])
        if "abnormal" in names:
            abnormal = pc.fill_null(pc.cast(batch["abnormal"], pa.string()), "none")
            count(pa.table({"source": batch["source"], "abnormal": abnormal}), ["source", "abnormal"],
                  stats["abnormal"])
        if "findings" in names:
            found = flat(batch, "findings")
            count(found.filter(pc.equal(found["status"], "present")), ["label", "source"], stats["findings"])
        if "targets" in names:
            count(flat(batch, "targets"), ["label", "source"], stats["targets"])

    return hook, stats
