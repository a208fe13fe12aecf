"""The walking skeleton end to end: native layouts -> Dagster materialisation -> release -> loader."""

import json
import shutil

import numpy as np
import pytest

from shardsmith.defs.run import run_build
from shardsmith.demo import cxr_core
from shardsmith.loaders import ReleaseVerificationError, open_release


@pytest.fixture(scope="module")
def built_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    cxr_core.write_demo(home / "raw")
    summary = run_build(home)
    assert summary["success"], summary
    return home


def test_release_layout_and_manifest(built_home):
    coll = built_home / "releases" / "medical"
    assert (coll / "LATEST").read_text().strip() == "v1"
    rel = open_release(built_home / "releases", "medical")
    m = rel.manifest
    paths = {f["path"] for f in m["files"]}
    assert any(p.startswith("data/records/train/") and p.endswith(".parquet") for p in paths)
    assert any(p.startswith("wds/records/train/shard-") and p.endswith(".tar") for p in paths)
    assert "README.md" in paths and any(p.startswith("validation/") for p in paths)
    assert all(len(f["sha256"]) == 64 for f in m["files"])
    assert set(m["input_fingerprints"]) == {"vindr_cxr", "nih_cxr14"}
    # 4 VinDr + 5 NIH images on disk; the two label rows without an image are not published
    assert sum(m["row_counts"]["records"].values()) == 9
    card = (rel.path / "README.md").read_text()
    assert card.startswith("---\n") and "\nconfigs:\n- config_name: records" in card and "pleural_effusion" in card
    # card pictures: the label chart and one contact sheet per present label, listed in the manifest
    present = {f["label"] for r in rel.pandas("records")["findings"] for f in r if f["status"] == "present"}
    assert "![labels](pictures/labels.png)" in card and "pictures/labels.png" in paths
    for label in present:
        assert f"pictures/contact-{label}.png" in paths and f"![{label}](pictures/contact-{label}.png)" in card


def test_validation_results_ship_with_the_release(built_home):
    rel = open_release(built_home / "releases", "medical")
    result = json.loads((rel.path / "validation" / "records.json").read_text())
    assert result["success"] is True
    assert {s["suite"] for s in result["suites"]} == {"records.records", "records.findings", "records.targets"}
    assert (rel.path / "validation" / "docs" / "index.html").is_file()


def test_loader_gives_frames_and_decoded_samples(built_home):
    rel = open_release(built_home / "releases", "medical")
    df = rel.pandas("records")
    assert len(df) == 9 and df["record_id"].is_unique
    nih = df[df.source == "nih_cxr14"]
    assert set(nih.split) == {"train", "test"}  # official split lists
    samples = list(rel.webdataset("records"))
    assert len(samples) == 9
    by_native = {s["meta"]["native_id"]: s for s in samples}
    # NIH PNG is 512 px while boxes are given in 1024-px space: the box is halved
    s = by_native["00000001_000.png"]
    assert s["image"].shape == (512, 512)
    np.testing.assert_allclose(s["boxes"][0], [150.25, 210.125, 355.25, 360.125])
    assert s["labels"] == ["cardiomegaly"]
    # VinDr non-square 12-bit DICOM keeps its geometry and its three readers' boxes
    v = by_native["0a1b2c3d4e5f60718293a4b5c6d7e8f9"]
    assert v["image"].shape == (320, 256)
    assert sorted(t["reader"] for t in v["meta"]["targets"]) == ["R10", "R10", "R8", "R9"]
    normal = by_native["1b2c3d4e5f60718293a4b5c6d7e8f90a"]
    assert normal["meta"]["abnormal"] is False and normal["boxes"].shape == (0, 4)


def test_quarantine_names_the_missing_images(built_home):
    import pyarrow.parquet as pq

    for source, missing in [("vindr_cxr", cxr_core.VINDR_MISSING), ("nih_cxr14", cxr_core.NIH_MISSING)]:
        rows = pq.read_table(built_home / "quarantine" / source / "quarantine.parquet").to_pylist()
        assert [(r["native_id"], r["reason"]) for r in rows] == [(missing, "image_missing")]


def test_verify_passes_and_fails_on_a_tampered_copy(built_home, tmp_path):
    rel = open_release(built_home / "releases", "medical")
    assert rel.verify().ok
    copy = tmp_path / "releases"
    shutil.copytree(built_home / "releases", copy)
    shard = next((copy / "medical" / "v1" / "wds" / "records" / "train").glob("*.tar"))
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0xFF
    shard.write_bytes(bytes(data))
    tampered = open_release(copy, "medical")
    with pytest.raises(ReleaseVerificationError, match="checksum mismatch"):
        tampered.verify()
    assert not tampered.verify(raise_on_error=False).ok


def test_same_inputs_give_byte_identical_shards_and_no_new_version(built_home, tmp_path):
    other = tmp_path / "home2"
    cxr_core.write_demo(other / "raw")
    assert run_build(other)["success"]
    a = open_release(built_home / "releases", "medical").manifest
    b = open_release(other / "releases", "medical").manifest
    assert a["content_digest"] == b["content_digest"]
    data_files = lambda m: {f["path"]: f["sha256"] for f in m["files"] if f["path"].startswith(("data/", "wds/"))}  # noqa: E731
    assert data_files(a) == data_files(b)
    # building again over the same home publishes nothing new
    assert run_build(other)["success"]
    assert sorted(p.name for p in (other / "releases" / "medical").iterdir() if p.name.startswith("v")) == ["v1"]
