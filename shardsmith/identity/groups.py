"""Duplicate groups across sources: Hamming candidates, thumbnail verification, connected components.

Input is a stream of Arrow record batches (staged records, any subset of columns that includes
record_id, source, native_id, patient_id, split and fingerprint); only compact arrays stay in
memory: uint64 hashes, 1 KiB thumbnails, 32-byte exact keys and the Arrow string columns.

1. Exact duplicates: records whose stored pixels have the same SHA-256 (sort, equal runs).
2. Perceptual candidates: multi-index hashing (Norouzi et al.) written with numpy: the 64-bit hash is
   cut into ``hash_blocks`` blocks; a pair within distance r differs by at most floor(r / blocks)
   bits in some block (pigeonhole), so for every block and every flip mask of up to ``block_flips``
   bits the records are joined on ``block ^ mask`` through a dense bucket table (counting sort, no
   pairwise comparison). 3 blocks x 2 flips find every pair within 8 bits and most pairs at 10-12
   (kept up to ``hamming_radius``), at a fraction of the cost of probing 3 or 4 flips. faiss-cpu's ``IndexBinaryMultiHash`` does the same search in C++,
   but its range search returns per-query result lists that we would flatten in Python anyway, and
   the numpy version keeps the project free of a 30 MB native dependency; at 500,000 hashes this
   runs in seconds (bench/dupes.py).
3. Verification on thumbnails (``verify_pairs``): correlation of the 32x32 rank thumbnails, then,
   for the undecided band, the best correlation over a small grid of zooms and shifts (crops and
   borders move the content a little relative to the centre crop).
4. Groups: connected components (scipy.sparse.csgraph) over exact, perceptual and same-patient
   edges (same pseudonymised ``patient_id`` string). A fingerprint that denotes a blank frame
   (``fingerprint.BLANK``: every constant image has it) takes part in no image edge: the records step
   quarantines such frames, and one staged before that rule must not join unrelated patients.
   Group id = "g" + sha256(smallest record_id)[:16]: stable while the group's smallest member stays.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from shardsmith.config import DEFAULT_SPLIT_SEED
from shardsmith.identity.fingerprint import (
    BLANK,
    FINGERPRINT_SIZE,
    FINGERPRINT_VERSION,
    HASH_SIDE,
    THUMB_SIDE,
)
from shardsmith.packaged import data_path
from shardsmith.schemas.duplicates import DUPLICATES_SCHEMA, METHODS

__all__ = [
    "Thresholds",
    "load_thresholds",
    "FingerprintSet",
    "collect_fingerprints",
    "hamming_pairs",
    "verify_pairs",
    "GroupResult",
    "find_groups",
    "group_id",
    "iter_parquet_batches",
    "source_pair_counts",
]

REQUIRED_COLUMNS = ("record_id", "source", "native_id", "split")
# Read when present; a missing column means null for every row (e.g. records staged before schema 1.2).
OPTIONAL_COLUMNS = ("patient_id", "fingerprint", "split_official", "raw_sha256")
_THUMB_LEN = THUMB_SIDE * THUMB_SIDE
_MARGIN = THUMB_SIDE // 8  # compare the central (32 - 2*4)^2 = 576 pixels: zooms stay inside
_CHUNK = 1 << 16  # queries per join step: bounds the candidate arrays held at once
_DENSE_BITS = 24  # blocks up to this width use a dense bucket table (2**24 int64 = 128 MiB), wider ones a sorted array


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds; loaded from ``schemas/identity/thresholds.csv`` (see its ``why`` column)."""

    hamming_radius: int
    hash_blocks: int
    block_flips: int
    prefilter_correlation: float
    accept_correlation: float
    align_scales: tuple[float, ...]
    align_shifts_px: tuple[float, ...]


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """Read the thresholds table (the packaged one by default)."""
    if path is None:
        text = data_path("schemas", "identity", "thresholds.csv").read_text()
    else:
        text = Path(path).read_text()
    rows = {r["name"]: r["value"] for r in csv.DictReader(text.splitlines())}
    return Thresholds(
        hamming_radius=int(rows["hamming_radius"]),
        hash_blocks=int(rows["hash_blocks"]),
        block_flips=int(rows["block_flips"]),
        prefilter_correlation=float(rows["prefilter_correlation"]),
        accept_correlation=float(rows["accept_correlation"]),
        align_scales=tuple(float(v) for v in rows["align_scales"].split()),
        align_shifts_px=tuple(float(v) for v in rows["align_shifts_px"].split()),
    )


def group_id(smallest_record_id: str) -> str:
    return "g" + hashlib.sha256(smallest_record_id.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- collecting


@dataclass
class FingerprintSet:
    """Everything grouping needs, as compact columns; ``has_fp`` is False where a record has none."""

    record_id: pa.Array
    source: pa.Array
    native_id: pa.Array
    patient_id: pa.Array
    split: pa.Array
    raw_sha256: pa.Array  # the seeded group draw's public key (identity.splits.group_draw_keys)
    split_official: np.ndarray | None
    has_fp: np.ndarray
    phash: np.ndarray  # uint64, 0 where has_fp is False
    thumbs: np.ndarray  # (n, THUMB_LEN) uint8
    exact: np.ndarray  # (n, 32) uint8

    def __len__(self) -> int:
        return len(self.record_id)


def _parse_fingerprints(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(valid mask, (n, FINGERPRINT_SIZE) uint8 rows) from a binary column, without per-row Python."""
    col = col.cast(pa.binary())
    n = len(col)
    valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.zeros((n, FINGERPRINT_SIZE), dtype=np.uint8)
    if not valid.any():
        return valid, rows
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int32)[col.offset: col.offset + n + 1]
    data = np.frombuffer(col.buffers()[2], dtype=np.uint8)
    lengths = np.diff(offsets)
    bad = valid & (lengths != FINGERPRINT_SIZE)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} fingerprint(s) are not {FINGERPRINT_SIZE} bytes long")
    idx = np.flatnonzero(valid)
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi - lo == idx.size * FINGERPRINT_SIZE:  # nulls take no bytes: the values are back to back
        rows[idx] = data[lo:hi].reshape(idx.size, FINGERPRINT_SIZE)
    else:
        rows[idx] = data[offsets[idx][:, None] + np.arange(FINGERPRINT_SIZE)]
    header_ok = (rows[idx, 0] == ord("S")) & (rows[idx, 1] == ord("F")) & (rows[idx, 2] == FINGERPRINT_VERSION)
    header_ok &= rows[idx, 3] == THUMB_SIDE
    if not header_ok.all():
        raise ValueError(f"{int((~header_ok).sum())} fingerprint(s) have an unknown layout or version")
    return valid, rows


def collect_fingerprints(batches: Iterable[pa.RecordBatch | pa.Table],
                         spill_dir: str | Path | None = None) -> FingerprintSet:
    """Stream batches into a FingerprintSet; a ``split_official`` bool column is used when present.

    With ``spill_dir`` the thumbnails (1 KB per record, the only large part) are written to a file
    there and come back memory-mapped: only the thumbnails of candidate pairs are paged in, so
    memory does not grow with the release (335,000 records held 343 MB of them, twice while joined).
    """
    cols: dict[str, list[pa.Array]] = {c: [] for c in (*REQUIRED_COLUMNS, "patient_id", "raw_sha256")}
    official: list[np.ndarray] = []
    has_official = True
    valid_parts, hash_parts, thumb_parts, exact_parts = [], [], [], []
    spill_path = Path(spill_dir) / "thumbs.u8" if spill_dir is not None else None
    spill = open(spill_path, "wb") if spill_path is not None else None  # noqa: SIM115  # closed below
    try:
        for batch in batches:
            if isinstance(batch, pa.Table):
                batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else None
                if batch is None:
                    continue
            missing = [c for c in REQUIRED_COLUMNS if c not in batch.schema.names]
            if missing:
                raise ValueError(f"record batch lacks column(s) {missing}")
            names = batch.schema.names
            for c in cols:
                cols[c].append(batch.column(c).cast(pa.string()) if c in names
                               else pa.nulls(batch.num_rows, pa.string()))
            if "split_official" in batch.schema.names:
                official.append(batch.column("split_official").fill_null(False).to_numpy(zero_copy_only=False))
            else:
                has_official = False
            fp_col = batch.column("fingerprint") if "fingerprint" in names else pa.nulls(batch.num_rows, pa.binary())
            valid, rows = _parse_fingerprints(fp_col)
            valid_parts.append(valid)
            hash_parts.append(rows[:, 4:12].copy().view(">u8").ravel().astype(np.uint64))
            exact_parts.append(np.ascontiguousarray(rows[:, 12:44]))
            if spill is not None:
                spill.write(np.ascontiguousarray(rows[:, 44:]).tobytes())
            else:
                thumb_parts.append(np.ascontiguousarray(rows[:, 44:]))
            del rows
    finally:
        if spill is not None:
            spill.close()
    strings = {c: pa.concat_arrays(v) if v else pa.array([], pa.string()) for c, v in cols.items()}

    def cat(parts: list[np.ndarray], shape: tuple[int, ...], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(shape, dtype)

    n = sum(len(v) for v in valid_parts)
    if spill_path is not None and n:
        thumbs = np.memmap(spill_path, dtype=np.uint8, mode="r", shape=(n, _THUMB_LEN))
    else:
        thumbs = cat(thumb_parts, (0, _THUMB_LEN), np.uint8)
    return FingerprintSet(
        **strings,
        split_official=np.concatenate(official).astype(bool) if (has_official and official) else None,
        has_fp=cat(valid_parts, (0,), bool),
        phash=cat(hash_parts, (0,), np.uint64),
        thumbs=thumbs,
        exact=cat(exact_parts, (0, 32), np.uint8),
    )


def iter_parquet_batches(paths: Iterable[str | Path], batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream only the columns grouping reads from staged records Parquet files (never the images)."""
    import pyarrow.parquet as pq

    for path in paths:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        cols = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in names]
        yield from pf.iter_batches(batch_size=batch_size, columns=cols)


# --------------------------------------------------------------------------- candidates


def _block_layout(blocks: int) -> list[tuple[int, int]]:
    """(shift, width) per block, widths as equal as possible, covering 64 bits."""
    widths = [64 // blocks + (1 if i < 64 % blocks else 0) for i in range(blocks)]
    out, shift = [], 64
    for w in widths:
        shift -= w
        out.append((shift, w))
    return out


def _flip_masks(width: int, weight: int) -> np.ndarray:
    masks = [0]
    for k in range(1, weight + 1):
        masks += [sum(1 << b for b in combo) for combo in itertools.combinations(range(width), k)]
    return np.array(masks, dtype=np.int64)


class _BlockIndex:
    """One block of the multi-index: records sorted by block value, plus bucket lookups."""

    def __init__(self, block_values: np.ndarray, width: int) -> None:
        self.itype = np.int32 if width <= 30 else np.int64
        self.vals = block_values.astype(self.itype)
        self.order = np.argsort(self.vals, kind="stable")
        self.dense = width <= _DENSE_BITS
        if self.dense:  # bucket table (counting sort); a bool occupancy table small enough for cache
            self.counts = np.bincount(self.vals, minlength=1 << width).astype(np.int64)
            self.starts = np.cumsum(self.counts) - self.counts
            self.occupied = self.counts > 0
        else:
            self.sorted_vals = self.vals[self.order]

    def _bucket(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.dense:
            return self.starts[q], self.counts[q]
        start = np.searchsorted(self.sorted_vals, q, "left")
        return start, np.searchsorted(self.sorted_vals, q, "right") - start

    def probe(self, idx: np.ndarray, v: np.ndarray, mask: int, h: np.ndarray, radius: int,
              found: list[np.ndarray]) -> None:
        """Pairs (idx[k], record in bucket v[k] ^ mask) within ``radius`` of each other, as keys i*n+j."""
        q = v ^ self.itype(mask)
        if self.dense:
            hits = np.flatnonzero(self.occupied.take(q))
        else:
            hits = np.flatnonzero(self._bucket(q)[1])
        n = len(h)
        for c0 in range(0, len(hits), _CHUNK):
            hit = hits[c0:c0 + _CHUNK]
            start, cnt = self._bucket(q[hit])
            qi = np.repeat(idx[hit], cnt)
            within = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            qj = self.order[np.repeat(start, cnt) + within]
            if not mask:  # same bucket: each unordered pair once
                keep = qi < qj
                qi, qj = qi[keep], qj[keep]
            else:
                qi, qj = np.minimum(qi, qj), np.maximum(qi, qj)
            near = np.bitwise_count(h[qi] ^ h[qj]) <= radius
            found.append(qi[near].astype(np.int64) * n + qj[near])


def hamming_pairs(
    hashes: np.ndarray,
    radius: int,
    blocks: int,
    candidates: np.ndarray | None = None,
    block_flips: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) with Hamming distance <= radius, by multi-index hashing; also the distances.

    Each block is probed with every flip of up to ``block_flips`` bits (default radius // blocks,
    which finds all pairs within ``radius``). A smaller ``block_flips`` finds all pairs within
    blocks * (block_flips + 1) - 1 and, beyond that, the pairs whose differing bits leave some
    block with at most ``block_flips`` of them (most pairs a little further away): cheaper probing.
    ``candidates``: optional bool mask of rows that take part (rows without a fingerprint do not).
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    rows = np.flatnonzero(candidates) if candidates is not None else np.arange(len(hashes))
    h = hashes[rows]
    n = len(h)
    per_block = radius // blocks if block_flips is None else min(block_flips, radius // blocks)
    found: list[np.ndarray] = []
    for shift, width in _block_layout(blocks):
        ix = _BlockIndex(((h >> np.uint64(shift)) & np.uint64((1 << width) - 1)), width)
        ix.probe(np.arange(n), ix.vals, 0, h, radius, found)
        # A pair whose block values differ by mask m is probed from one end only: the record whose
        # value has m's highest bit clear (its value is the smaller one). Grouping masks by that bit
        # lets each probe touch only those records, half of them.
        masks = _flip_masks(width, per_block)[1:]
        top_bit = np.array([int(m).bit_length() - 1 for m in masks], dtype=np.int64)
        for b in np.unique(top_bit):
            sel = np.flatnonzero(((ix.vals >> ix.itype(b)) & 1) == 0)
            vsel = ix.vals[sel]
            for mask in masks[top_bit == b]:
                ix.probe(sel, vsel, int(mask), h, radius, found)
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    keys = np.unique(np.concatenate(found))
    i, j = keys // n, keys % n
    dist = np.bitwise_count(h[i] ^ h[j]).astype(np.int64)
    return rows[i], rows[j], dist


# --------------------------------------------------------------------------- verification


def _normalise(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.mean(axis=axis, keepdims=True)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


@lru_cache(maxsize=4)
def _warp_operator(scales: tuple[float, ...], shifts: tuple[float, ...]) -> sparse.csr_matrix:
    """Sparse (G * 576, 1024) bilinear resampling: row block g = the central crop of a thumbnail
    zoomed by a scale about the centre and shifted (edge pixels replicated), for each grid point g."""
    side, m = THUMB_SIDE, _MARGIN
    ys, xs = np.mgrid[m:side - m, m:side - m].astype(np.float64)
    ys, xs = ys.ravel(), xs.ravel()
    c = (side - 1) / 2
    data, rows, cols = [], [], []
    for g, (sc, dx, dy) in enumerate(itertools.product(scales, shifts, shifts)):
        sx = np.clip(c + (xs - c) * sc + dx * side / HASH_SIDE, 0, side - 1)
        sy = np.clip(c + (ys - c) * sc + dy * side / HASH_SIDE, 0, side - 1)
        x0, y0 = np.minimum(np.floor(sx).astype(int), side - 2), np.minimum(np.floor(sy).astype(int), side - 2)
        fx, fy = sx - x0, sy - y0
        out = g * len(xs) + np.arange(len(xs))
        for oy, ox, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            data.append(w)
            rows.append(out)
            cols.append((y0 + oy) * side + x0 + ox)
    grid = len(scales) * len(shifts) ** 2
    return sparse.csr_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(grid * len(xs), side * side)
    )


def verify_pairs(
    thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, th: Thresholds, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(accepted mask, score) per candidate pair: score = best thumbnail correlation found.

    Unaligned correlation first; pairs in [prefilter, accept) get the zoom/shift search.
    """
    score = np.zeros(len(i), dtype=np.float32)
    m, side = _MARGIN, THUMB_SIDE
    k = (side - 2 * m) ** 2

    def centre(idx: np.ndarray) -> np.ndarray:  # (P, 24, 24) uint8 view of the central region
        return thumbs[idx].reshape(-1, side, side)[:, m:side - m, m:side - m]

    # Unaligned correlation over the central region: per-record sums once, then one dot per pair.
    used = np.unique(np.concatenate([i, j]))
    total = np.zeros(len(thumbs), np.float64)
    sq = np.zeros(len(thumbs), np.float64)
    for s in range(0, len(used), 16384):
        c = centre(used[s:s + 16384])
        total[used[s:s + 16384]] = c.sum(axis=(1, 2), dtype=np.float64)
        sq[used[s:s + 16384]] = np.einsum("pyx,pyx->p", c, c, dtype=np.float64, casting="unsafe")
    spread = np.sqrt(np.maximum(sq - total * total / k, 1e-12))
    for s in range(0, len(i), 8192):
        ii, jj = i[s:s + 8192], j[s:s + 8192]
        dot = np.einsum("pyx,pyx->p", centre(ii), centre(jj), dtype=np.float64, casting="unsafe")
        score[s:s + 8192] = (dot - total[ii] * total[jj] / k) / (spread[ii] * spread[jj])
    search = np.flatnonzero((score >= th.prefilter_correlation) & (score < th.accept_correlation))
    if search.size:
        op = _warp_operator(th.align_scales, th.align_shifts_px)
        grid = op.shape[0] // k
        for s in range(0, len(search), chunk):
            sel = search[s:s + chunk]
            a = _normalise(centre(i[sel]).reshape(len(sel), -1).astype(np.float32), 1)  # (P, K)
            warped = (op @ thumbs[j[sel]].astype(np.float32).T).reshape(grid, -1, len(sel))  # (G, K, P)
            # Correlation with the centred, unit-norm ``a``: <w, a> / ||w - mean(w)||, without temporaries.
            wsum = warped.sum(axis=1)
            var = np.einsum("gkp,gkp->gp", warped, warped) - wsum * wsum / k
            best = (np.einsum("gkp,pk->gp", warped, a) / np.sqrt(np.maximum(var, 1e-12))).max(axis=0)
            score[sel] = np.maximum(score[sel], best)
    return score >= th.accept_correlation, score


# --------------------------------------------------------------------------- grouping


@dataclass
class GroupResult:
    """``groups``: record_id, duplicate_group, split (group-aware); ``duplicates``: DUPLICATES_SCHEMA rows."""

    groups: pa.Table
    duplicates: pa.Table
    stats: dict[str, float]


def _blank_rows(fs: FingerprintSet) -> np.ndarray:
    """Rows whose fingerprint is that of a constant image (hash first: only those thumbnails are read)."""
    blank = fs.has_fp & (fs.phash == np.uint64(BLANK.phash))
    rows = np.flatnonzero(blank)
    if rows.size:
        blank[rows] = np.all(fs.thumbs[rows] == np.frombuffer(BLANK.thumb, np.uint8), axis=1)
    return blank


def _exact_pairs(fs: FingerprintSet, linkable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(linkable)
    if rows.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = fs.exact[rows].view(">u8")  # (m, 4)
    order = np.lexsort(keys.T[::-1])
    k = keys[order]
    same = np.all(k[1:] == k[:-1], axis=1)
    run_start = np.maximum.accumulate(np.where(np.concatenate([[True], ~same]), np.arange(len(k)), 0))
    dup = np.flatnonzero(np.concatenate([[False], same]))
    return rows[order[run_start[dup]]], rows[order[dup]]


def _identical_pairs(fs: FingerprintSet, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(representative, member) pairs of candidate rows whose 64-bit hash and thumbnail are equal."""
    rows = np.flatnonzero(candidates)
    if rows.size >= 2:  # only rows whose hash another row shares can match: compare their thumbnails alone
        _, inv, counts = np.unique(fs.phash[rows], return_inverse=True, return_counts=True)
        rows = rows[counts[inv.ravel()] > 1]
    if rows.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = np.concatenate([fs.phash[rows].astype(">u8").view(np.uint8).reshape(-1, 8), fs.thumbs[rows]], axis=1)
    void = np.ascontiguousarray(key).view(np.dtype((np.void, key.shape[1]))).ravel()
    _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
    rep = rows[first][inverse.ravel()]
    member = rep != rows
    return rep[member], rows[member]


def _patient_pairs(patient_id: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    codes = pc.dictionary_encode(patient_id).indices.to_numpy(zero_copy_only=False)
    valid = np.asarray(patient_id.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.flatnonzero(valid)
    if rows.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    c = codes[rows].astype(np.int64)
    order = np.argsort(c, kind="stable")
    sc = c[order]
    same = np.concatenate([[False], sc[1:] == sc[:-1]])
    run_start = np.maximum.accumulate(np.where(~same, np.arange(len(sc)), 0))
    dup = np.flatnonzero(same)
    return rows[order[run_start[dup]]], rows[order[dup]]


def _image_groups(n: int, a: np.ndarray, b: np.ndarray, order: np.ndarray, rid_py: list[str]) -> np.ndarray:
    """Components over the image edges only (exact and perceptual, no patient links): the records
    that show one radiograph. Named like duplicate groups, from the smallest member's record_id
    (``order``: record indices sorted by record_id)."""
    graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    lab_sorted = label[order]
    _, idx = np.unique(lab_sorted, return_index=True)
    first = np.empty(label.max() + 1 if n else 0, np.int64)
    first[lab_sorted[idx]] = order[idx]
    return np.array(["i" + group_id(rid_py[k])[1:] for k in first], dtype=object)[label] if n else np.array([], object)


def find_groups(
    batches: Iterable[pa.RecordBatch | pa.Table], thresholds: Thresholds | None = None,
    spill_dir: str | Path | None = None, split_seed: str = DEFAULT_SPLIT_SEED,
) -> GroupResult:
    """Group records that show the same radiograph (or the same patient); see the module docstring.
    ``split_seed`` is the public seed of the seeded draw for groups whose copies disagree."""
    from shardsmith.identity.splits import group_draw_keys, group_splits

    th = thresholds or load_thresholds()
    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return round(clock[-1] - clock[-2], 2)

    fs = collect_fingerprints(batches, spill_dir)
    n = len(fs)
    t_collect = lap()
    blank = _blank_rows(fs)
    linkable = fs.has_fp & ~blank  # a blank frame's fingerprint says nothing about which film it is
    ex_a, ex_b = _exact_pairs(fs, linkable)
    # Exact copies need no perceptual search: keep one representative per exact run.
    rep = linkable.copy()
    rep[ex_b] = False
    # Neither do records whose hash AND thumbnail are identical (the same film re-encoded many times):
    # without this, a big run of equal hashes is a quadratic candidate set.
    id_a, id_b = _identical_pairs(fs, rep)
    rep[id_b] = False
    pi, pj, dist = hamming_pairs(fs.phash, th.hamming_radius, th.hash_blocks, candidates=rep,
                                 block_flips=th.block_flips)
    t_search = lap()
    ok, score = verify_pairs(fs.thumbs, pi, pj, th)
    n_candidates, n_verified = len(pi), int(ok.sum())
    # identical fingerprints join as verified perceptual links at distance 0, similarity 1
    pi, pj = np.concatenate([id_a, pi[ok]]), np.concatenate([id_b, pj[ok]])
    dist = np.concatenate([np.zeros(len(id_a), dist.dtype), dist[ok]])
    score = np.concatenate([np.ones(len(id_a), score.dtype), score[ok]])
    ok = np.ones(len(pi), bool)
    t_verify = lap()
    pt_a, pt_b = _patient_pairs(fs.patient_id)

    # Edge list: method code (index into METHODS: exact, perceptual, patient), distance, similarity.
    a = np.concatenate([ex_a, pi[ok], pt_a])
    b = np.concatenate([ex_b, pj[ok], pt_b])
    method = np.concatenate([np.zeros(len(ex_a), np.int8), np.ones(int(ok.sum()), np.int8),
                             np.full(len(pt_a), 2, np.int8)])
    distance = np.concatenate([np.zeros(len(ex_a)), dist[ok], np.full(len(pt_a), np.nan)])
    simil = np.concatenate([np.ones(len(ex_a)), score[ok], np.full(len(pt_a), np.nan)])
    graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    ncomp, label = connected_components(graph, directed=False)

    # Group id from the smallest record_id per component.
    rid = fs.record_id
    order = np.asarray(pc.sort_indices(rid))
    first = np.full(ncomp, -1, np.int64)
    lab_sorted = label[order]
    _, idx = np.unique(lab_sorted, return_index=True)
    first[lab_sorted[idx]] = order[idx]
    rid_py = rid.to_pylist()
    comp_gid = np.array([group_id(rid_py[k]) for k in first], dtype=object)
    gids = comp_gid[label]
    assigned = group_splits(label, fs.split.to_pylist(), group_draw_keys(label, comp_gid.tolist(), fs.raw_sha256),
                            fs.split_official, split_seed)
    splits = assigned.splits
    groups = pa.table({"record_id": rid, "duplicate_group": pa.array(gids, pa.string()),
                       "split": pa.array(splits, pa.string()),
                       "split_official": pa.array(assigned.official, pa.bool_()),
                       "image_group": pa.array(_image_groups(n, a[method < 2], b[method < 2], order, rid_py),
                                               pa.string())})

    # Duplicates table: every member of a component that has at least one image-identity edge.
    image_edge = method < 2
    has_image = np.zeros(ncomp, bool)
    has_image[label[a[image_edge]]] = True
    members = np.flatnonzero(has_image[label])
    # Best evidence per record: lowest method code, then smallest distance.
    rec = np.concatenate([a, b])
    other = np.concatenate([b, a])
    m2, d2, s2 = np.tile(method, 2), np.tile(distance, 2), np.tile(simil, 2)
    best_order = np.lexsort((np.nan_to_num(d2, nan=1e9), m2, rec))
    urec, first_edge = np.unique(rec[best_order], return_index=True)
    pick = best_order[first_edge]
    best_of = np.full(n, -1, np.int64)
    best_of[urec] = pick
    e = best_of[members]
    dup = pa.table(
        {
            "duplicate_group": pa.array(gids[members], pa.string()),
            "record_id": rid.take(pa.array(members)),
            "source": fs.source.take(pa.array(members)),
            "native_id": fs.native_id.take(pa.array(members)),
            "method": pa.array(np.array(METHODS, dtype=object)[m2[e]], pa.string()),
            "distance": pa.array(np.nan_to_num(d2[e]).astype(np.int32), mask=np.isnan(d2[e])),
            "similarity": pa.array(np.nan_to_num(s2[e]).astype(np.float32), mask=np.isnan(s2[e])),
            "linked_record_id": rid.take(pa.array(other[e])),
            "split": pa.array(np.array(splits, dtype=object)[members], pa.string()),
        },
        schema=DUPLICATES_SCHEMA,
    ).sort_by([("duplicate_group", "ascending"), ("record_id", "ascending")])
    stats = {
        "records": n,
        "fingerprinted": int(fs.has_fp.sum()),
        "blank_fingerprints": int(blank.sum()),
        "exact_pairs": int(len(ex_a)),
        "identical_fingerprint_pairs": int(len(id_a)),
        "candidate_pairs": n_candidates,
        "verified_pairs": n_verified,
        "patient_links": int(len(pt_a)),
        "groups": int(ncomp),
        "duplicate_groups": int(has_image.sum()),
        "moved_split_official": assigned.moved_official,
        "moved_split_seeded": assigned.moved_seeded,
        "seconds_collect": t_collect,
        "seconds_search": t_search,
        "seconds_verify": t_verify,
        "seconds_groups": lap(),
    }
    return GroupResult(groups=groups, duplicates=dup, stats=stats)


def source_pair_counts(duplicates: pa.Table) -> pa.Table:
    """Duplicate groups per source pair (for the card and ``shardsmith dupes``): one row per
    (source_a <= source_b) with the number of groups holding the same radiograph in both; a source
    paired with itself counts groups with two image-identical records inside that source.
    Only image-identity members (exact/perceptual) count, not records joined through a patient."""
    image = duplicates.filter(pc.is_in(duplicates["method"], pa.array(["exact", "perceptual"])))
    per_group: dict[str, dict[str, int]] = {}
    for gid, src in zip(image.column("duplicate_group").to_pylist(), image.column("source").to_pylist(), strict=True):
        per_group.setdefault(gid, {}).setdefault(src, 0)
        per_group[gid][src] += 1
    counts: dict[tuple[str, str], int] = {}
    for sources in per_group.values():
        names = sorted(sources)
        pairs = {(a, b) for a, b in itertools.combinations(names, 2)}
        pairs |= {(a, a) for a in names if sources[a] > 1}
        for pair in pairs:
            counts[pair] = counts.get(pair, 0) + 1
    rows = sorted(counts.items())
    return pa.table({
        "source_a": pa.array([p[0] for p, _ in rows], pa.string()),
        "source_b": pa.array([p[1] for p, _ in rows], pa.string()),
        "groups": pa.array([c for _, c in rows], pa.int64()),
    })
