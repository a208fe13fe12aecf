"""Issue 23: MIMIC-CXR-JPG label reading at scale, and the cost of the pretraining views.

    .venv/bin/python -m bench.pretraining [N]     # default N = 20000 metadata rows; full size 377110

Two phases, each in its own process (peak RSS is per phase):

* ``labels``: MIMIC-CXR-JPG's four gzip CSVs with the real headers for N images (~1.65 images per
  study, ~3.5 studies per patient, as the real 377,110 / 227,835 / 65,379) and a reports zip, then
  ``MimicCxr.catalog_stream`` over them (labels streamed, items spilled and merged; the JPEG paths
  are stat'ed, so the images are left out and every entry is ``image_missing``: this times the
  label side, which is what grows with the metadata). µs per row and peak RSS.
* ``views``: N synthetic final records (no pixels: the views never read them) with image groups
  (3% copies), studies, day offsets and reports, written by a child process; ``stage_pretraining``
  (pretrain, pairs, knowledge, card) timed per record and compared with a full build's marginal
  cost per image (``BUILD_MS_PER_IMAGE``, bench/RESULTS.md); the target is <= 10%. Its peak RSS is
  the views' (``baseline_rss_mb``: the process before them, imports included); the target is <= 1 GB.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

BUILD_MS_PER_IMAGE = 56.5  # marginal wall ms/img of the full build, bench/RESULTS.md (latest ingest run)
REPORT = ("FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n INDICATION:  ___ with cough\n\n FINDINGS:\n\n"
          " The heart is mildly enlarged. There is a small left pleural effusion. No pneumothorax is seen.\n\n"
          " IMPRESSION:\n\n Cardiomegaly and small left pleural effusion.\n")


def _layout(n: int, seed: int = 0) -> list[tuple[str, str, str, str, int]]:
    """(dicom_id, subject, study, view, day) for n images."""
    rng = np.random.default_rng(seed)
    rows, i, subject = [], 0, 10_000_000
    while i < n:
        subject += 1
        day = 0
        for s in range(int(rng.integers(1, 7))):
            study = f"{50_000_000 + i:08d}"
            day += int(rng.integers(1, 400)) if s else 0
            for view in ("PA", "LATERAL", "AP")[: int(rng.integers(1, 3))]:
                if i < n:
                    rows.append((f"{i:08x}-0000-0000-0000-{subject:012d}", str(subject), study, view, day))
                    i += 1
    return rows


def _gz(path: Path, header: list[str], rows) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))


def write_labels(root: Path, n: int) -> None:
    from shardsmith.demo.mimic_demo import LABEL_COLUMNS, METADATA_HEADER

    layout = _layout(n)
    base = np.datetime64("2150-01-01")
    _gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA_HEADER,
        ([d, sub, st, "", v, "2544", "3056", str(base + day).replace("-", ""), "101010.000", "", "", ""]
         for d, sub, st, v, day in layout))
    _gz(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"],
        ([d, st, sub, "train"] for d, sub, st, _, _ in layout))
    studies = sorted({(sub, st) for _, sub, st, _, _ in layout})
    rng = np.random.default_rng(2)  # 5,000 label patterns, mostly blank, as the labellers' files are
    patterns = [list(rng.choice(["", "", "", "", "1.0", "0.0", "-1.0"], size=len(LABEL_COLUMNS))) for _ in range(5000)]
    for p in patterns:
        p[LABEL_COLUMNS.index("No Finding")] = ""
    for name in ("chexpert", "negbio"):
        _gz(root / f"mimic-cxr-2.0.0-{name}.csv.gz", ["subject_id", "study_id", *LABEL_COLUMNS],
            ([sub, st, *patterns[int(rng.integers(len(patterns)))]] for sub, st in studies))
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for sub, st in studies:
            zf.writestr(f"files/p{sub[:2]}/p{sub}/s{st}.txt", REPORT)


def _labels(n: int, out: dict) -> None:
    from shardsmith.sources.medical.mimic_cxr import MimicCxr

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_labels(root, n)
        t = time.perf_counter()
        stream = MimicCxr().catalog_stream(root, checksum=False)
        entries = sum(1 for _ in stream.entries)
        seconds = time.perf_counter() - t
    out.update(rows=n, entries=entries, quarantined=len(stream.quarantine), seconds=round(seconds, 2),
               us_per_row=round(1e6 * seconds / n, 1),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


def synthetic_records(n: int, seed: int = 1):
    import pyarrow as pa

    from shardsmith.schemas.records import RECORDS_SCHEMA
    from shardsmith.sources.medical.mimic_reports import parse_sections

    rng = np.random.default_rng(seed)
    sections = parse_sections(REPORT)
    findings = [{"label": lab, "source_label": lab, "status": st, "readers": ["chexpert"]}
                for lab, st in (("cardiomegaly", "present"), ("pleural_effusion", "present"),
                                ("pneumothorax", "absent"))]
    rows = []
    for i, (d, sub, st, view, day) in enumerate(_layout(n, seed)):
        copy = rng.random() < 0.03 and i > 0
        rows.append({
            "record_id": f"{i:024x}", "source": "mimic_cxr", "native_id": d, "patient_id": f"p{sub}",
            "study_id": f"s{st}", "split": "train", "split_source": "official", "split_official": True,
            "modality": "DX", "view": view, "height": 1024, "width": 832, "complete": False, "abnormal": True,
            "findings": findings, "targets": [], "text": REPORT, "report_sections": sections,
            "raw_path": f"files/p{sub}/s{st}/{d}.jpg", "study_day": day, "study_order": None,
            "image_group": f"i{i - 1 if copy else i:016x}",
        })
    return pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA)


def _write_records(n: int, path: str) -> None:
    import pyarrow.parquet as pq

    pq.write_table(synthetic_records(n), path, row_group_size=8192)


def _views(n: int, out: dict) -> None:
    from shardsmith.views.pretraining_stage import stage_pretraining

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.parquet"
        # made in a process of its own: the records' Python rows (1.2 GB at 377,110) are the
        # bench's, not the views', and would otherwise be this phase's peak
        p = mp.get_context("spawn").Process(target=_write_records, args=(n, str(path)))
        p.start()
        p.join()
        out.update(baseline_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        t = time.perf_counter()
        staged = stage_pretraining([path], Path(tmp) / "views")
        seconds = time.perf_counter() - t
    ms = 1000 * seconds / n
    out.update(records=n, rows=staged.rows, seconds=round(seconds, 2), ms_per_record=round(ms, 3),
               share_of_build=f"{100 * ms / BUILD_MS_PER_IMAGE:.1f}%",
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


def _run(phase, n: int) -> dict:
    with mp.Manager() as manager:
        out = manager.dict()
        p = mp.get_context("spawn").Process(target=phase, args=(n, out))
        p.start()
        p.join()
        return dict(out)


def main(n: int) -> dict:
    return {"labels": _run(_labels, n), "views": _run(_views, n)}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000), indent=2))
