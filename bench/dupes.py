"""Benchmark for issue 13: group 500,000 fingerprints (synthetic) within 60 s on two cores.

Synthetic fingerprints, built directly in the records' binary layout (no images are decoded):
- hashes: independent bits, each with its own bias drawn so that bit balance resembles chest films
  (``--bias``: 0 = uniform random bits; the default 0.3 lets some bits be set in up to 80% of films,
  which crowds buckets as real chest X-rays do);
- thumbnails: random 32x32 images (distinct films are uncorrelated, the easy case for
  verification, so the time measured is mostly the search, which is what grows with n);
- planted near-duplicates: ``--planted`` copies of random records with 0-10 hash bits flipped and
  a slightly noised thumbnail, under another source; plus a few exact copies and shared patients.

Prints timings per stage, the counts, recall of planted copies and peak RSS. Run:
    taskset -c 0,1 .venv/bin/python -m bench.dupes            # 500,000 records
    .venv/bin/python -m bench.dupes --records-step            # fingerprint cost vs the records step
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pyarrow as pa

from shardsmith.identity.fingerprint import _HEADER, FINGERPRINT_VERSION, THUMB_SIDE
from shardsmith.identity.groups import find_groups


def synthetic_batches(n: int, planted: int, bias: float, seed: int, batch: int = 50_000):
    """Record batches with only the columns grouping reads; fingerprints built as byte arrays."""
    rng = np.random.default_rng(seed)
    p_bits = 0.5 + rng.uniform(-bias, bias, 64)
    originals = rng.choice(n - planted, size=planted, replace=False)  # records that get a planted copy
    hashes = np.zeros(n, np.uint64)
    for b in range(64):
        hashes |= (rng.random(n) < p_bits[b]).astype(np.uint64) << np.uint64(b)
    for k, f in enumerate(rng.integers(0, 11, size=planted)):
        mask = sum(1 << int(x) for x in rng.choice(64, size=int(f), replace=False))
        hashes[n - planted + k] = hashes[originals[k]] ^ np.uint64(mask)
    copy_of = np.full(n, -1, np.int64)
    copy_of[n - planted:] = originals
    header = np.frombuffer(_HEADER.pack(b"SF", FINGERPRINT_VERSION, THUMB_SIDE, 0, b"\0" * 32)[:4], np.uint8)
    side2 = THUMB_SIDE * THUMB_SIDE
    for start in range(0, n, batch):
        idx = np.arange(start, min(n, start + batch))
        m = len(idx)
        # Thumbnails: a per-record pseudo-random image from the record's own seed, so a copy can
        # regenerate its original's thumbnail and add noise.
        src = np.where(copy_of[idx] >= 0, copy_of[idx], idx)
        thumbs = np.empty((m, side2), np.uint8)
        for r, s in enumerate(src):
            thumbs[r] = np.random.default_rng(int(s)).integers(0, 256, side2, dtype=np.uint8)
        is_copy = copy_of[idx] >= 0
        noise = rng.normal(0, 12, (int(is_copy.sum()), side2))
        thumbs[is_copy] = np.clip(thumbs[is_copy] + noise, 0, 255).astype(np.uint8)
        exact_src = np.where(is_copy & (idx % 50 == 0), copy_of[idx], idx)  # 2% of copies are exact
        exact = np.zeros((m, 32), np.uint8)
        exact[:, 24:] = exact_src.astype(">u8").view(np.uint8).reshape(m, 8)
        rows = np.concatenate([np.broadcast_to(header, (m, 4)),
                               hashes[idx].astype(">u8").view(np.uint8).reshape(m, 8), exact, thumbs], axis=1)
        fp = pa.FixedSizeBinaryArray.from_buffers(pa.binary(rows.shape[1]), m, [None, pa.py_buffer(rows.tobytes())])
        yield pa.record_batch({
            "record_id": pa.array([f"r{i:07d}" for i in idx]),
            "source": pa.array(np.where(is_copy, "copyset", np.char.add("src", (idx % 4).astype(str)))),
            "native_id": pa.array(idx.astype(str)),
            "patient_id": pa.array([f"p{(i // 97) % 500}" if i % 97 == 0 else None for i in idx]),
            "split": pa.array(["train"] * m),
            "fingerprint": fp.cast(pa.binary()),
        })


def records_step_cost(repeats: int = 40) -> None:
    """Per-image cost of the records step's pixel path (read 1024-px PNG, encode_png) vs fingerprinting.

    Uses the real NIH image (upscaled to 1024 px, as the release stores NIH) when
    SHARDSMITH_REAL_SAMPLES is set, else the demo chest phantom; 8-bit and 16-bit stored images.
    """
    import os
    from pathlib import Path

    import cv2

    from shardsmith.demo.dicom_fixtures import chest_phantom
    from shardsmith.identity.fingerprint import fingerprint_pixels
    from shardsmith.media.raster import decode_png, encode_png, read_raster

    real = os.environ.get("SHARDSMITH_REAL_SAMPLES")
    nih = Path(real or "-") / "cxr-images/nih/00000001_000.png"
    if nih.is_file():
        img8 = cv2.resize(cv2.imread(str(nih), cv2.IMREAD_GRAYSCALE), (1024, 1024), interpolation=cv2.INTER_CUBIC)
        what = "real NIH image upscaled to 1024 px"
    else:
        img8 = (chest_phantom(1024, 1024, 8, seed=1)).astype(np.uint8)
        what = "demo chest phantom, 1024 px"
    for bits in (8, 16):
        arr = img8 if bits == 8 else img8.astype(np.uint16) * 257
        png = cv2.imencode(".png", arr)[1].tobytes()
        stored = decode_png(encode_png(read_raster(png), 1024, bits).png)

        def step(png: bytes = png, bits: int = bits) -> None:
            encode_png(read_raster(png), 1024, bits)

        def fp(stored: np.ndarray = stored) -> None:
            fingerprint_pixels(stored)

        times = {}
        for name, fn in (("records step", step), ("fingerprint", fp)):
            fn()
            best = []
            for _ in range(3):  # best of three rounds: the machine is shared
                t = time.perf_counter()
                for _ in range(repeats):
                    fn()
                best.append((time.perf_counter() - t) / repeats * 1000)
            times[name] = min(best)
        print(f"{what}, {bits}-bit: records step {times['records step']:.1f} ms/image, "
              f"fingerprint {times['fingerprint']:.2f} ms/image "
              f"(+{100 * times['fingerprint'] / times['records step']:.1f}%)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records-step", action="store_true", help="measure fingerprint cost per image instead")
    ap.add_argument("--n", type=int, default=500_000)
    ap.add_argument("--planted", type=int, default=5_000)
    ap.add_argument("--bias", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    if args.records_step:
        records_step_cost()
        return
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
