"""Volumetric adapters on their native layouts: traps, labels, regions, semantics, quarantine."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import volumes_demo as demo
from shardsmith.sources.medical.kits import Kits
from shardsmith.sources.medical.lidc_idri import LidcIdri
from shardsmith.sources.medical.msd import Msd
from shardsmith.sources.medical.totalsegmentator import TotalSegmentator
from shardsmith.sources.medical.volumetric import VolumeOptions
from shardsmith.sources.registry import get_source
from shardsmith.staging.runner import run_source

VOLUME_SOURCES = ("msd", "brats", "kits", "lidc_idri", "totalsegmentator")
SMALL = VolumeOptions(volume_spacing_mm=3.0)


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, image=ImageOptions(max_side=64))


def _records(settings: Settings, name: str) -> list[dict]:
    return pq.read_table(settings.staging_dir(name) / "records.parquet").to_pylist()


def test_demo_has_a_case_of_every_source(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    demo.write_demo(settings.raw)
    for name in VOLUME_SOURCES:
        counts = run_source(settings, get_source(name))
        assert counts.reconciles and counts.quarantined == 0, (name, counts.reasons)
        assert counts.records > 0 and counts.extra_tables == {"volumes": counts.items_ok}, name
        assert any(r["targets"] for r in _records(settings, name)), name


def test_msd_traps_and_splits(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    demo.write_msd(settings.raw_dir("msd"))
    assert (settings.raw_dir("msd") / "Task01_BrainTumour/imagesTr/._BRATS_001.nii.gz").exists()
    counts = run_source(settings, Msd(options=SMALL))
    assert counts.quarantined == 0 and counts.items_ok == 3  # 2 training + 1 test string; no ._ file
    recs = _records(settings, "msd")
    test = [r for r in recs if r["native_id"] == "Task01_BrainTumour/BRATS_485"]
    assert test and all(r["split"] == "test" and r["abnormal"] is None and not r["targets"] for r in test)
    train = [r for r in recs if r["native_id"] != "Task01_BrainTumour/BRATS_485"]
    assert {r["split"] for r in train} <= {"train", "val"}
    labels = {t["label"] for r in train for t in r["targets"]}
    assert {"peritumoral_edema", "necrotic_tumor_core", "enhancing_tumor", "tumor_core", "whole_tumor",
            "lung_tumor"} <= labels
    lung = [r for r in recs if r["native_id"].startswith("Task06")]
    assert all(r["modality"] == "CT" and "lung" in r["intensity"] for r in lung)
    brain = [r for r in recs if r["native_id"] == "Task01_BrainTumour/BRATS_001"]
    assert all(r["modality"] == "MR" and r["body_part"] == "brain" for r in brain)


def test_msd_unknown_label_is_quarantined(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    demo.write_msd(settings.raw_dir("msd"))
    index = settings.raw_dir("msd") / "Task06_Lung/dataset.json"
    meta = json.loads(index.read_text())
    meta["labels"]["1"] = "mystery"
    index.write_text(json.dumps(meta))
    counts = run_source(settings, Msd(options=SMALL))
    assert counts.reasons == {"unknown_label": 1} and counts.reconciles


def test_brats_years_labels_and_regions(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    demo.write_brats(settings.raw_dir("brats"))
    run_source(settings, get_source("brats"))
    recs = _records(settings, "brats")
    assert {r["native_id"] for r in recs} == {"BraTS2021_00000", "BraTS-GLI-00000-000"}
    assert {r["sequence"] for r in recs} == {"T1", "T1CE", "T2", "FLAIR"}
    for case, et in (("BraTS2021_00000", 4), ("BraTS-GLI-00000-000", 3)):
        geos = {t["label"]: t["source_geometry"] for r in recs if r["native_id"] == case for t in r["targets"]}
        assert geos["enhancing_tumor"] == f"label-map value {et}"
        assert geos["tumor_core"] == f"label-map values 1|{et}"
        assert geos["whole_tumor"] == f"label-map values 1|2|{et}"
    vols = pq.read_table(settings.staging_dir("brats") / "volumes.parquet").to_pylist()
    names = {v["native_id"]: {n["value"]: n["label"] for n in v["label_names"]} for v in vols}
    assert names["BraTS2021_00000"][4] == "enhancing_tumor" and names["BraTS-GLI-00000-000"][3] == "enhancing_tumor"


def test_kits23_regions_and_slice_semantics(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    demo.write_kits(settings.raw_dir("kits"), "23")
    opts = VolumeOptions(slices="all", volume_spacing_mm=None)
    run_source(settings, Kits(options=opts))
    recs = _records(settings, "kits")
    assert len(recs) == 12 and all(r["num_slices"] == 12 for r in recs)
    labels = {t["label"] for r in recs for t in r["targets"]}
    assert labels == {"kidney", "renal_tumor", "renal_cyst", "kidney_and_mass", "renal_mass"}
    for r in recs:
        present = {f["label"] for f in r["findings"] if f["status"] == "present"}
        assert {f["label"] for f in r["findings"]} == {"renal_tumor", "renal_cyst"}  # anatomy is never a finding
        assert r["abnormal"] is (True if present else None)  # a tumour-free slice is not "normal"
        assert r["complete"] is False
        assert r["sex"] == "F" and r["age_band"] == "50-59"
        tl = {t["label"] for t in r["targets"]}
        assert present <= tl
        if "renal_tumor" in tl or "renal_cyst" in tl:
            assert "renal_mass" in tl and "kidney_and_mass" in tl


def test_slice_selection_is_deterministic(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    demo.write_kits(settings.raw_dir("kits"), "19", shape=(60, 24, 24))
    seg = np.asarray(nib.load(settings.raw_dir("kits") / "data/case_00000/segmentation.nii.gz").dataobj)
    labelled = int((seg > 0).any(axis=(1, 2)).sum())
    picks = []
    for _ in range(2):
        run_source(settings, Kits(options=VolumeOptions(empty_fraction=0.3, volume_spacing_mm=None)))
        picks.append([r["slice_index"] for r in _records(settings, "kits")])
    assert picks[0] == picks[1]
    assert labelled < len(picks[0]) < 60  # every labelled slice plus some empty ones
    run_source(settings, Kits(options=VolumeOptions(slices="labelled", volume_spacing_mm=None)))
    assert len(_records(settings, "kits")) == labelled


def test_bad_volumes_are_quarantined_with_reasons(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    root = settings.raw_dir("kits")
    demo.write_kits(root, "19")
    good = root / "data/case_00000"
    nan_case, bad_shape = root / "data/case_00001", root / "data/case_00002"
    for case in (nan_case, bad_shape):
        case.mkdir()
    img = np.asarray(nib.load(good / "imaging.nii.gz").dataobj).astype(np.float32)
    img[3, 4, 5] = np.inf
    demo.write_nifti(nan_case / "imaging.nii.gz", img, demo.KITS_AFFINE, sform_only=True)
    (nan_case / "segmentation.nii.gz").write_bytes((good / "segmentation.nii.gz").read_bytes())
    (bad_shape / "imaging.nii.gz").write_bytes((good / "imaging.nii.gz").read_bytes())
    demo.write_nifti(bad_shape / "segmentation.nii.gz", np.zeros((11, 32, 32), np.uint8), demo.KITS_AFFINE,
                     sform_only=True)
    counts = run_source(settings, Kits(options=SMALL))
    assert counts.reasons == {"label_shape_mismatch": 1, "non_finite_voxels": 1}
    assert counts.items_ok == 1 and counts.reconciles
    q = pq.read_table(settings.quarantine_dir("kits") / "quarantine.parquet").to_pylist()
    assert {r["native_id"] for r in q} == {"case_00001", "case_00002"}


def test_lidc_readers_consensus_and_sorting(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, image=ImageOptions(max_side=0))
    info = demo.write_lidc(settings.raw_dir("lidc_idri"))
    counts = run_source(settings, LidcIdri(options=VolumeOptions(slices="labelled", volume_spacing_mm=None)))
    assert counts.quarantined == 0
    recs = _records(settings, "lidc_idri")
    # Reader 2 draws one slice more (slices 4..7), reader 1 slices 4..6; the series files are stored in
    # reverse order and must be sorted by position (slice 0 = most inferior = demo slice 0).
    assert sorted(r["slice_index"] for r in recs) == [4, 5, 6, 7]
    by_z = {r["slice_index"]: r for r in recs}
    assert {t["reader"] for t in by_z[5]["targets"]} == {"reader1", "reader2", "consensus"}
    assert by_z[5]["findings"][0]["readers"] == ["reader1", "reader2"]
    assert {t["reader"] for t in by_z[7]["targets"]} == {"reader2", "consensus"}  # 1 of 2 readers = 50%
    r1 = next(t for t in by_z[5]["targets"] if t["reader"] == "reader1")
    r0, r1_, c0, c1 = info["rows"][0], info["rows"][1], info["cols"][0], info["cols"][1]
    assert r1["box_xyxy"] == [c0, r0, c1, r1_]  # contour (x=col, y=row) filled incl. outline
    assert "malignancy ratings 4,3" in by_z[5]["text"] and by_z[5]["abnormal"] is True
    vol = pq.read_table(settings.staging_dir("lidc_idri") / "volumes.parquet").to_pylist()[0]
    notes = json.loads(vol["annotations_json"])
    assert notes["readers"] == ["reader1", "reader2", "reader3"] and len(notes["nodules"]) == 1
    assert vol["label_names"] == [{"value": 1, "label": "lung_nodule", "source_label": "nodule consensus",
                                   "kind": "abnormality"}]
    assert "lung" in recs[0]["intensity"]


def test_totalsegmentator_meta_and_anatomy(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    demo.write_totalsegmentator(settings.raw_dir("totalsegmentator"))
    run_source(settings, TotalSegmentator(options=VolumeOptions(slices="all", volume_spacing_mm=None)))
    recs = _records(settings, "totalsegmentator")
    assert {r["split"] for r in recs} == {"train"} and recs[0]["sex"] == "F"
    kinds = {t["label"]: t["kind"] for r in recs for t in r["targets"]}
    assert kinds["kidney_left"] == "anatomy" and kinds["spleen"] == "anatomy"
    assert kinds["renal_cyst"] == "abnormality" and "liver" not in kinds  # empty mask: no target
    for r in recs:
        cyst = any(t["label"] == "renal_cyst" for t in r["targets"])
        assert r["abnormal"] is (True if cyst else None)
