"""Benchmark for issue 13: group 500,000 fingerprints (synthetic) within 60 s on two cores.

Synthetic fingerprints, built directly in the records' binary layout (no images are decoded):
- hashes: independent bits, each with its own bias drawn so that bit balance resembles chest films
  (``--bias``: 0 = uniform random bits; the default 0.3 lets some bits be set in up to 80% of films,
  which crowds buckets as real chest X-rays do);
- thumbnails: random 32x32 rank images (distinct films are uncorrelated, the easy case for
  verification, so the time measured is the search, which is what grows with n);
- planted near-duplicates: ``--planted`` copies of random records with 0-10 hash bits flipped and
  a slightly noised thumbnail, under another source; plus a few exact copies and shared patients.

Prints timings per stage, the counts, recall of planted copies and peak RSS. Run:
    taskset -c 0,1 .venv/bin/python -m bench.dupes            # 500,000 records
"""

from __future__ import annotations

import argparse
import resource
import struct
import time

import numpy as np
import pyarrow as pa

from shardsmith.identity.fingerprint import _HEADER, FINGERPRINT_VERSION, THUMB_SIDE
from shardsmith.identity.groups import find_groups


def synthetic_batches(n: int, planted: int, bias: float, seed: int, batch: int = 50_000):
    rng = np.random.default_rng(seed)
    p_bits = 0.5 + rng.uniform(-bias, bias, 64)
    base_thumbs_seed = seed + 1
    copies = rng.choice(n - planted, size=planted, replace=False)  # originals of the planted copies
    flips = rng.integers(0, 11, size=planted)
    hashes = np.zeros(n, np.uint64)
    for b in range(64):
        hashes |= (rng.random(n) < p_bits[b]).astype(np.uint64) << np.uint64(b)
    for k, (src, f) in enumerate(zip(copies, flips, strict=True)):
        mask = sum(1 << int(x) for x in rng.choice(64, size=int(f), replace=False))
        hashes[n - planted + k] = hashes[src] ^ np.uint64(mask)
    header = struct.Struct(">2sBBQ32s")
    assert header.size == _HEADER.size
    trng = np.random.default_rng(base_thumbs_seed)
    perm_base = np.argsort(trng.random((n - planted, THUMB_SIDE * THUMB_SIDE)), axis=1).astype(np.float32)
    for start in range(0, n, batch):
        idx = np.arange(start, min(n, start + batch))
        fps = []
        for i in idx:
            if i < n - planted:
                thumb = perm_base[i]
                exact = int(i).to_bytes(32, "big")
            else:
                k = i - (n - planted)
                thumb = perm_base[copies[k]] + trng.normal(0, 15, THUMB_SIDE * THUMB_SIDE)
                exact = (int(copies[k]) if k % 50 == 0 else int(i)).to_bytes(32, "big")  # 2% exact
            t8 = np.clip(thumb * 255 / 1023 + 0.5, 0, 255).astype(np.uint8)
            fps.append(header.pack(b"SF", FINGERPRINT_VERSION, THUMB_SIDE, int(hashes[i]), exact) + t8.tobytes())
        m = len(idx)
        yield pa.record_batch({
            "record_id": pa.array([f"r{i:07d}" for i in idx]),
            "source": pa.array(["copyset" if i >= n - planted else f"src{i % 4}" for i in idx]),
            "native_id": pa.array([str(i) for i in idx]),
            "patient_id": pa.array([f"p{(i // 97) % 500}" if i % 97 == 0 else None for i in idx]),
            "split": pa.array(["train"] * m),
            "fingerprint": pa.array(fps, pa.binary()),
        })
    del perm_base


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500_000)
    ap.add_argument("--planted", type=int, default=5_000)
    ap.add_argument("--bias", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    t0 = time.perf_counter()
    batches = list(synthetic_batches(args.n, args.planted, args.bias, args.seed))
    t1 = time.perf_counter()
    res = find_groups(iter(batches))
    t2 = time.perf_counter()
    recs = set(res.duplicates.column("record_id").to_pylist())
    found = sum(f"r{i:07d}" in recs for i in range(args.n - args.planted, args.n))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"records={args.n:,} planted={args.planted:,} bias={args.bias}")
    print(f"make synthetic batches: {t1 - t0:.1f} s (not part of grouping)")
    print(f"find_groups: {t2 - t1:.1f} s")
    print("stats:", res.stats)
    print(f"planted copies found: {found:,}/{args.planted:,} (0-10 flipped bits; 9-10 are best-effort)")
    print(f"peak RSS: {peak_mib:,.0f} MiB (includes the synthetic batches)")


if __name__ == "__main__":
    main()
