"""SIIM-ACR adapter: real label facts, the real JPEG-Baseline DICOM end to end, RLE exactness and
orientation (a real mask lands on the lungs), and the demo's traps."""

from __future__ import annotations

import csv
import gzip
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest

from shardsmith.config import Settings
from shardsmith.demo.cxr_more import SIIM_UIDS, siim_components, write_siim
from shardsmith.demo.dicom_fixtures import make_cxr_dicom
from shardsmith.media.masks import coco_rle_decode, siim_rle_decode
from shardsmith.sources.medical.siim_acr import SiimAcr
from shardsmith.sources.medical.stats import label_stats
from shardsmith.staging.runner import run_source

REAL = Path(os.environ.get("SHARDSMITH_REAL_SAMPLES") or "/nonexistent")
REAL_CSV = REAL / "cxr-labels" / "siim-pneumothorax-train-rle.csv.gz"
REAL_DCM = REAL / "cxr-images" / "siim" / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
needs_real = pytest.mark.skipif(
    not (REAL_CSV.is_file() and REAL_DCM.is_file()),
    reason="SHARDSMITH_REAL_SAMPLES is unset or lacks the SIIM label file / DICOM",
)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-siim")


def _real_rows() -> list[tuple[str, str]]:
    with gzip.open(REAL_CSV, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["ImageId", " EncodedPixels"]  # the leading space is real
        return [(a, b) for a, b in reader]


def _records(settings: Settings) -> list[dict]:
    return pq.read_table(settings.staging_dir("siim_acr") / "records.parquet").to_pylist()


def _place(raw: Path, sop: str, study: str = "1.2.3.4", series: str = "1.2.3.4.5", **kw) -> Path:
    return make_cxr_dicom(raw / "dicom-images-train" / study / series / f"{sop}.dcm", sop_uid=sop,
                          study_uid=study, series_uid=series, modality="CR", **kw)


# --------------------------------------------------------------------------- real data


@needs_real
def test_real_labels_give_published_facts(tmp_path: Path) -> None:
    (tmp_path / "train-rle.csv.gz").symlink_to(REAL_CSV)
    src = SiimAcr()
    result = src.read_labels(tmp_path)
    stats = label_stats(src.name, result)
    rows = _real_rows()
    per_image: dict[str, list[str]] = defaultdict(list)
    for image, rle in rows:
        per_image[image].append(rle.strip())
    positive = {k for k, v in per_image.items() if v != ["-1"]}
    assert result.rows_read == len(rows) == 12954
    assert stats["images"] == len(per_image) == 12047
    assert stats["findings"]["pneumothorax"] == {"present": len(positive), "absent": 12047 - 2669, "uncertain": 0}
    assert len(positive) == 2669
    assert stats["targets"] == {"pneumothorax": 3576}
    assert sum(len(per_image[k]) for k in positive) == 3576
    # -1 is "no pneumothorax", never a normal study
    assert stats["abnormal"] == {"true": 2669, "false": 0, "unknown": 12047 - 2669}
    assert all(not i.complete for i in result.items)
    assert stats["quarantined_rows"] == 0


@needs_real
def test_real_dicom_goes_through_the_source(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    raw = settings.raw_dir("siim_acr")
    header = pydicom.dcmread(REAL_DCM, stop_before_pixels=True)
    sop = REAL_DCM.stem
    dest = raw / "dicom-images-train" / header.StudyInstanceUID / header.SeriesInstanceUID / f"{sop}.dcm"
    dest.parent.mkdir(parents=True)
    shutil.copyfile(REAL_DCM, dest)
    row = next((a, b) for a, b in _real_rows() if a == sop)
    assert row[1].strip() == "-1"
    (raw / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{row[0]},{row[1]}\n")
    counts = run_source(settings, SiimAcr())
    assert (counts.records, counts.quarantined) == (1, 0), counts.reasons
    (rec,) = _records(settings)
    assert rec["native_id"] == sop
    assert rec["abnormal"] is None and rec["complete"] is False
    assert rec["findings"] == [{"label": "pneumothorax", "source_label": "Pneumothorax", "status": "absent",
                                "readers": []}]
    assert rec["targets"] == []
    assert (rec["height"], rec["width"], rec["modality"]) == (1024, 1024, "CR")
    assert rec["patient_id"] and rec["patient_id"] != str(header.PatientID)
    assert rec["image"]["bytes"][:8] == b"\x89PNG\r\n\x1a\n"


@needs_real
def test_real_mask_lands_on_the_lungs(tmp_path: Path) -> None:
    """A real positive RLE on a lung-like 1024 image: the stored mask is in the upper lung field."""
    rows = _real_rows()
    image_id, rle = next((a, b.strip()) for a, b in rows if b.strip() != "-1")
    settings = Settings(home=tmp_path)
    raw = settings.raw_dir("siim_acr")
    _place(raw, image_id, rows=1024, columns=1024, bits_stored=8, transfer_syntax="jpeg_baseline")
    (raw / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{image_id}, {rle}\n")
    counts = run_source(settings, SiimAcr())
    assert counts.records == 1, counts.reasons
    (rec,) = _records(settings)
    (target,) = rec["targets"]
    mask = coco_rle_decode(target["mask_rle"])
    assert np.array_equal(mask, siim_rle_decode(rle, 1024, 1024))  # exact, no resampling at 1024
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    in_upper_half = (ys < h / 2).mean()
    outside_mediastinum = ((xs < 0.45 * w) | (xs > 0.55 * w)).mean()
    inside_body = ((xs > 0.1 * w) & (xs < 0.9 * w) & (ys > 0.1 * h)).mean()
    assert in_upper_half > 0.9 and outside_mediastinum > 0.9 and inside_body > 0.9
    assert target["box_xyxy"][3] <= h / 2 + 50


@needs_real
def test_real_masks_are_anatomically_oriented() -> None:
    """Over 300 real components: apical (78% above mid-height) and in both lungs, not on the midline.
    A transposed decode would put only ~60% of centroids in the upper half."""
    cy, cx = [], []
    for _, rle in _real_rows():
        if rle.strip() == "-1":
            continue
        ys, xs = np.nonzero(siim_rle_decode(rle, 1024, 1024))
        cy.append(ys.mean())
        cx.append(xs.mean())
        if len(cy) == 300:
            break
    cy_arr, cx_arr = np.array(cy), np.array(cx)
    assert (cy_arr < 512).mean() > 0.72
    assert 0.3 < (cx_arr < 512).mean() < 0.8  # both lungs
    assert ((cx_arr > 0.45 * 1024) & (cx_arr < 0.55 * 1024)).mean() < 0.1


# --------------------------------------------------------------------------- RLE exactness


def official_mask2rle(img: np.ndarray) -> str:
    """SIIM's published mask2rle (column-major walk, relative starts), written out independently,
    with the final-run flush that the original omits."""
    height, width = img.shape
    rle: list[str] = []
    last, run_start, run_len, current = 0, -1, 0, 0
    for x in range(width):
        for y in range(height):
            value = 255 if img[y, x] else 0
            if value != last:
                if value == 255:
                    run_start = current
                    run_len = 1
                else:
                    rle.append(f"{run_start} {run_len}")
                    run_len = 0
                last = value
            elif value == 255:
                run_len += 1
            current += 1
    if last == 255:
        rle.append(f"{run_start} {run_len}")
    # convert absolute starts to SIIM's relative gaps
    out, prev_end = [], 0
    for pair in rle:
        start, length = map(int, pair.split())
        out += [str(start - prev_end), str(length)]
        prev_end = start + length
    return " ".join(out) if out else "-1"


def test_masks_round_trip_through_siim_encoding(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    h, w = 48, 64
    comps: dict[str, list[np.ndarray]] = {}
    for k in range(3):
        blobs = []
        for _ in range(k + 1):  # 1, 2, 3 components per image
            m = np.zeros((h, w), dtype=bool)
            y0, x0 = rng.integers(0, h - 10), rng.integers(0, w - 10)
            m[y0:y0 + rng.integers(3, 10), x0:x0 + rng.integers(3, 10)] = True
            m &= rng.random((h, w)) > 0.2  # ragged runs
            blobs.append(m)
        comps[f"1.2.9.{k}"] = blobs
    comps["1.2.9.9"] = [np.zeros((h, w), dtype=bool)]
    comps["1.2.9.9"][0][-5:, -1] = True  # a run that reaches the last pixel
    settings = Settings(home=tmp_path)
    raw = settings.raw_dir("siim_acr")
    lines = ["ImageId, EncodedPixels"]
    film = (np.add.outer(np.arange(h), np.arange(w)) * 2).astype(np.uint16)  # not blank: a constant one is quarantined
    for i, (uid, blobs) in enumerate(comps.items()):
        _place(raw, uid, study=f"1.2.8.{i}", pixels=film, bits_stored=8)
        lines += [f"{uid}, {official_mask2rle(b)}" for b in blobs]
    (raw / "train-rle.csv").write_text("\n".join(lines) + "\n")
    counts = run_source(settings, SiimAcr())
    assert (counts.records, counts.quarantined) == (4, 0), counts.reasons
    for rec in _records(settings):
        expected = comps[rec["native_id"]]
        decoded = [coco_rle_decode(t["mask_rle"]) for t in rec["targets"]]
        assert len(decoded) == len(expected)
        for got, want in zip(decoded, expected, strict=True):
            assert np.array_equal(got, want)
        assert np.array_equal(np.logical_or.reduce(decoded), np.logical_or.reduce(expected))


# --------------------------------------------------------------------------- demo traps


def test_demo_traps(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    raw = settings.raw_dir("siim_acr")
    write_siim(raw)
    assert (raw / "train-rle.csv").read_text().splitlines()[0] == "ImageId, EncodedPixels"
    src = SiimAcr()
    assert src.detect(raw)
    counts = run_source(settings, src)
    assert (counts.records, counts.quarantined) == (5, 0), counts.reasons
    by_id = {r["native_id"]: r for r in _records(settings)}
    status = {k: [(f["label"], f["status"]) for f in r["findings"]] for k, r in by_id.items()}
    assert status[SIIM_UIDS[2]] == status[SIIM_UIDS[3]] == [("pneumothorax", "absent")]  # " -1" and "-1"
    assert by_id[SIIM_UIDS[2]]["abnormal"] is None and by_id[SIIM_UIDS[3]]["abnormal"] is None
    unlabelled = by_id[SIIM_UIDS[4]]  # on disk, no CSV row: unlabelled, not negative
    assert unlabelled["findings"] == [] and unlabelled["abnormal"] is None and unlabelled["targets"] == []
    two = by_id[SIIM_UIDS[1]]
    assert two["abnormal"] is True and len(two["targets"]) == 2
    want = siim_components()[SIIM_UIDS[1]]
    got = [coco_rle_decode(t["mask_rle"]) for t in two["targets"]]
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    assert all(r["raw_path"].count("/") == 3 for r in by_id.values())  # dicom-images-train/Study/Series/SOP
    assert {r["intensity"] for r in by_id.values()} and all(r["height"] == 256 for r in by_id.values())


def test_mixed_and_malformed_rows_are_quarantined(tmp_path: Path) -> None:
    (tmp_path / "stage_2_train.csv").write_text(
        "ImageId,EncodedPixels\n"
        "1.2.1,-1\n1.2.1,10 5\n"  # -1 and a mask for one image
        "1.2.2,10 5 3\n"  # odd count
        "1.2.3,abc 4\n"
        "1.2.4,100 20 30 10\n"
    )
    result = SiimAcr().read_labels(tmp_path)
    assert [i.native_id for i in result.items] == ["1.2.4"]
    assert Counter(q["reason"] for q in result.quarantine) == Counter(
        {"contradictory_labels": 1, "rle_malformed": 2})
    assert result.rows_read == 5
