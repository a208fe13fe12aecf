"""Splits are a function of the public split seed, the source and the native patient id, or the
dataset's official split: never of the secret pseudonym key."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardsmith.config import DEFAULT_SPLIT_SEED, ImageOptions, Settings, settings_from_env
from shardsmith.demo import cxr_core, cxr_more, volumes_demo
from shardsmith.sources.medical.base import CatalogEntry, LabelledItem
from shardsmith.sources.medical.nih_cxr14 import NihCxr14
from shardsmith.sources.registry import get_source
from shardsmith.staging.runner import run_source

SEEDED_DEMOS = {"nih_cxr14": cxr_core.write_nih, "rsna_pneumonia": cxr_more.write_rsna,
                "siim_acr": cxr_more.write_siim}


def _stage(home: Path, key: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple]:
    """Stage the seeded demo sources under ``key``: raw_sha256 -> (source, split, split_source, patient_id)."""
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", key)
    settings = Settings(home=home, image=ImageOptions(max_side=128), workers=1)
    out: dict[str, tuple] = {}
    for name, write in SEEDED_DEMOS.items():
        write(settings.raw_dir(name))
        for listed in ("train_val_list.txt", "test_list.txt"):  # NIH without its lists: all seeded
            settings.raw_dir(name).joinpath(listed).unlink(missing_ok=True)
        run_source(settings, get_source(name, settings))
        for f in sorted(settings.staging_dir(name).glob("records*.parquet")):
            cols = ["raw_sha256", "source", "split", "split_source", "patient_id"]
            for r in pq.read_table(f, columns=cols).to_pylist():
                out[r["raw_sha256"]] = (r["source"], r["split"], r["split_source"], r["patient_id"])
    return out


def test_the_records_step_gives_the_same_splits_under_two_pseudonym_keys(tmp_path, monkeypatch):
    a = _stage(tmp_path / "site-a", "key-of-site-a", monkeypatch)
    b = _stage(tmp_path / "site-b", "key-of-site-b", monkeypatch)
    assert a.keys() == b.keys() and len(a) >= 12
    assert {k: v[:3] for k, v in a.items()} == {k: v[:3] for k, v in b.items()}
    assert Counter(v[1] for v in a.values()) == Counter(v[1] for v in b.values())
    assert {v[2] for v in a.values()} == {"seeded"}
    patients = [(a[k][3], b[k][3]) for k in a if a[k][3] is not None]
    assert patients and all(pa != pb for pa, pb in patients)  # the keys really differed


def _entry(native_id: str, patient: str, **split: str) -> CatalogEntry:
    return CatalogEntry(LabelledItem(native_id=native_id, patient_raw=patient, **split), f"{native_id}", "0" * 64, 1)


def test_record_base_split_depends_on_the_seed_and_native_patient_not_on_the_key(monkeypatch):
    nih = NihCxr14()
    entries = [_entry(f"{p:08d}_{k:03d}.png", str(p)) for p in range(300) for k in range(2)]

    def splits(key: str, seed: str = DEFAULT_SPLIT_SEED) -> list[tuple[str, str, bool]]:
        monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", key)
        return [(r["split"], r["split_source"], r["split_official"])
                for r in (nih.record_base(e, split_seed=seed) for e in entries)]

    one, two = splits("first-key"), splits("rotated-key")
    assert one == two  # rotating the key moves no patient
    assert all(one[2 * p][0] == one[2 * p + 1][0] for p in range(300))  # one split per patient
    counts = Counter(s for s, _, _ in one)
    assert set(counts) == {"train", "val", "test"} and 0.7 < counts["train"] / 600 < 0.9
    assert {(src, off) for _, src, off in one} == {("seeded", False)}
    assert splits("first-key", seed="another-public-seed") != one  # the seed, not the key, draws


def test_the_split_seed_is_a_public_setting_with_a_documented_default(tmp_path):
    assert settings_from_env(tmp_path, environ={}).split_seed == DEFAULT_SPLIT_SEED
    assert settings_from_env(tmp_path, environ={"SHARDSMITH_SPLIT_SEED": "site-x"}).split_seed == "site-x"
    with pytest.raises(ValueError, match="split_seed"):
        Settings(home=tmp_path, split_seed=" ")


def test_a_train_val_pool_never_draws_test():
    nih = NihCxr14()
    rows = [nih.record_base(_entry(f"{p}.png", str(p), split_pool="trainval"), split_seed="s") for p in range(800)]
    counts = Counter(r["split"] for r in rows)
    assert set(counts) == {"train", "val"} and 0.08 < counts["val"] / 800 < 0.17
    assert {r["split_source"] for r in rows} == {"seeded"}


def _splits(name: str, root: Path) -> dict[str, tuple[str, str]]:
    source = get_source(name)
    return {e.item.native_id: source.split_of(e.item, DEFAULT_SPLIT_SEED) for e in source.catalog(root).entries}


def test_nih_official_lists_and_one_split_per_patient(tmp_path):
    """test_list.txt is official test; train_val_list.txt is train or val (seeded, never test); a
    patient with one film on each list goes to test with both (strictest official split wins)."""
    cxr_core.write_nih(tmp_path)
    (tmp_path / "test_list.txt").write_text("00000001_001.png\n00000004_000.png\n")
    (tmp_path / "train_val_list.txt").write_text("00000001_000.png\n00000002_000.png\n")
    got = _splits("nih_cxr14", tmp_path)
    assert got["00000004_000.png"] == ("test", "official")
    assert got["00000001_001.png"] == got["00000001_000.png"] == ("test", "official")
    assert got["00000002_000.png"][0] in ("train", "val") and got["00000002_000.png"][1] == "seeded"
    assert got["00000003_000.png"][1] == "seeded"  # on neither list


@pytest.mark.parametrize(("name", "write", "expected"), [
    ("chexpert", cxr_more.write_chexpert, {"valid/patient64541/study1/view1_frontal": ("val", "official"),
                                           "train/patient00001/study1/view1_frontal": ("train", "official")}),
    ("chestx_det", cxr_more.write_chestx_det, {"40001.png": ("test", "official"), "36200.png": ("train", "official")}),
    ("ms_cxr", cxr_more.write_ms_cxr, {"2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab": ("test", "official")}),
    ("msd", volumes_demo.write_msd, {"Task01_BrainTumour/BRATS_485": ("test", "official")}),
    ("totalsegmentator", volumes_demo.write_totalsegmentator, {"s0000": ("train", "official")}),
])
def test_official_splits_are_honoured(tmp_path, name, write, expected):
    write(tmp_path)
    got = _splits(name, tmp_path)
    assert {k: got[k] for k in expected} == expected


def test_msd_training_cases_are_seeded_train_or_val(tmp_path):
    volumes_demo.write_msd(tmp_path)
    got = _splits("msd", tmp_path)
    training = {k: v for k, v in got.items() if k != "Task01_BrainTumour/BRATS_485"}
    assert training and all(s in ("train", "val") and src == "seeded" for s, src in training.values())


def test_siim_unlabelled_images_of_the_test_folder_are_the_official_test_set(tmp_path):
    cxr_more.write_siim(tmp_path)
    train_dcm = next((tmp_path / "dicom-images-train").glob("*/*/*.dcm"))
    test_dcm = tmp_path / "dicom-images-test" / "1.2.3" / "1.2.3.4" / "1.2.3.4.5.dcm"
    test_dcm.parent.mkdir(parents=True)
    shutil.copyfile(train_dcm, test_dcm)
    got = _splits("siim_acr", tmp_path)
    assert got["1.2.3.4.5"] == ("test", "official")
    assert got[cxr_more.SIIM_UIDS[4]][1] == "seeded"  # unlabelled, but in the training folder


def test_kits_cases_without_labels_are_the_official_test_set(tmp_path):
    volumes_demo.write_kits(tmp_path)
    test_case = tmp_path / "data" / "case_00210"
    test_case.mkdir()
    shutil.copyfile(tmp_path / "data" / "case_00000" / "imaging.nii.gz", test_case / "imaging.nii.gz")
    got = _splits("kits", tmp_path)
    assert got["case_00210"] == ("test", "official") and got["case_00000"][1] == "seeded"


def test_brats_a_validation_timepoint_takes_the_whole_patient_to_test(tmp_path):
    """BraTS 2023 names timepoints <patient>-<tp>: an unlabelled (validation) timepoint is official
    test, and the patient's labelled timepoint follows it (strictest official split per patient)."""
    volumes_demo.write_brats(tmp_path)
    src, dst = tmp_path / "BraTS-GLI-00000-000", tmp_path / "BraTS-GLI-00000-001"
    dst.mkdir()
    for f in src.glob("*.nii.gz"):
        if not f.name.endswith("-seg.nii.gz"):
            shutil.copyfile(f, dst / f.name.replace("-000-", "-001-"))
    got = _splits("brats", tmp_path)
    assert got["BraTS-GLI-00000-001"] == got["BraTS-GLI-00000-000"] == ("test", "official")
    assert got["BraTS2021_00000"][1] == "seeded"


def test_volumes_and_their_slices_carry_the_split_and_its_source(tmp_path):
    settings = Settings(home=tmp_path, image=ImageOptions(max_side=64), workers=1)
    volumes_demo.write_msd(settings.raw_dir("msd"))
    run_source(settings, get_source("msd", settings))
    cols = ["native_id", "split", "split_source", "split_official"]
    for table in ("volumes", "records"):
        files = sorted(settings.staging_dir("msd").glob(f"{table}*.parquet"))
        rows = [r for f in files for r in pq.read_table(f, columns=cols).to_pylist()]
        assert rows, table
        for r in rows:
            official = r["native_id"] == "Task01_BrainTumour/BRATS_485"
            assert (r["split_source"], r["split_official"]) == (("official", True) if official else ("seeded", False))
            assert r["split"] == "test" if official else r["split"] in ("train", "val")


def test_a_new_split_seed_restages_the_records(tmp_path):
    from shardsmith.staging.versions import records_version

    one = records_version(Settings(home=tmp_path), "nih_cxr14/1", [], [])
    assert one == records_version(Settings(home=tmp_path), "nih_cxr14/1", [], [])
    assert one != records_version(Settings(home=tmp_path, split_seed="another"), "nih_cxr14/1", [], [])
