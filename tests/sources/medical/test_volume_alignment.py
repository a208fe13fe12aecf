"""End to end: native layouts -> pipeline -> stored PNG + RLE + volume arrays stay aligned in the world."""

from __future__ import annotations

import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import volumes_demo as demo
from shardsmith.media.masks import coco_rle_decode
from shardsmith.media.raster import decode_png
from shardsmith.sources.medical.brats import Brats
from shardsmith.sources.medical.kits import Kits
from shardsmith.sources.medical.msd import Msd
from shardsmith.sources.medical.volumetric import VolumeOptions
from shardsmith.staging.runner import run_source

LPS = np.diag([-1.0, -1.0, 1.0])
ALL_NATIVE = VolumeOptions(slices="all", volume_spacing_mm=None, mr_percentiles=(0.0, 100.0))


def _run(tmp_path: Path, source, writer, max_side: int = 0) -> tuple[list[dict], list[dict]]:
    settings = Settings(home=tmp_path, image=ImageOptions(max_side=max_side))
    writer(settings.raw_dir(source.name))
    counts = run_source(settings, source)
    assert counts.quarantined == 0, counts.reasons
    recs = pq.read_table(settings.staging_dir(source.name) / "records.parquet").to_pylist()
    vols = pq.read_table(settings.staging_dir(source.name) / "volumes.parquet").to_pylist()
    return recs, vols


def _value_of(target: dict) -> int | None:
    geo = target["source_geometry"]
    return int(geo.rsplit(" ", 1)[1]) if geo.startswith("label-map value ") else None


def assert_png_and_rle_coincide(rec: dict) -> None:
    """Intensities encode labels (one grey level per value): the pixels of that grey level are the mask."""
    png = decode_png(rec["image"]["bytes"])
    assert png.shape == (rec["height"], rec["width"])
    for t in rec["targets"]:
        v = _value_of(t)
        if v is None:
            continue
        mask = coco_rle_decode(t["mask_rle"])
        levels = np.unique(png[mask])
        assert len(levels) == 1, (t["label"], levels)
        np.testing.assert_array_equal(png == levels[0], mask)


def _world_points(rec_or_none, affine: np.ndarray, z: int, mask: np.ndarray) -> set[tuple]:
    rc = np.argwhere(mask).astype(float)
    zyx = np.column_stack([np.full(len(rc), z, float), rc])
    w = (affine[:3, :3] @ zyx.T + affine[:3, 3:4]).T
    return {tuple(p) for p in np.round(w, 2)}


def _raw_world(label: np.ndarray, affine_ras: np.ndarray, value: int) -> set[tuple]:
    ijk = np.argwhere(label == value).astype(float)
    w = (LPS @ (affine_ras[:3, :3] @ ijk.T + affine_ras[:3, 3:4])).T
    return {tuple(p) for p in np.round(w, 2)}


def check_world(recs: list[dict], vol: dict, raw_label: np.ndarray, raw_affine: np.ndarray,
                values: tuple[int, ...], sequence: str | None = None) -> None:
    """Every target pixel of every slice lies where the raw label has that value, and vice versa."""
    affine = np.array(vol["affine_lps"]).reshape(4, 4)
    m = affine[:3, :3][:, ::-1]
    assert np.allclose(m, np.diag(np.diag(m))) and (np.diag(m) > 0).all()  # LPS+, no rotation
    for v in values:
        got: set[tuple] = set()
        for r in recs:
            if r["native_id"] != vol["native_id"] or r["sequence"] != sequence:
                continue
            for t in r["targets"]:
                if _value_of(t) == v:
                    got |= _world_points(r, affine, r["slice_index"], coco_rle_decode(t["mask_rle"]))
        assert got == _raw_world(raw_label, raw_affine, v), f"value {v}"


def test_kits_permuted_affine_alignment(tmp_path: Path) -> None:
    recs, vols = _run(tmp_path, Kits(options=ALL_NATIVE), lambda root: demo.write_kits(root, "19"))
    seg = nib.load(tmp_path / "raw/kits/data/case_00000/segmentation.nii.gz")
    lab = np.asarray(seg.dataobj)
    assert lab.shape[0] == 12 and vols[0]["shape"] == [1, 12, 32, 32]  # slice-first on disk too
    for r in recs:
        assert_png_and_rle_coincide(r)
    check_world(recs, vols[0], lab, seg.affine, (1, 2))
    # The volume arrays: image and label coincide voxel by voxel (intensity = 60 * label inside the body).
    image = np.load(io.BytesIO(vols[0]["image_npy"]))[0]
    label = np.load(io.BytesIO(vols[0]["label_npy"]))
    assert set(np.unique(image[label == 2])) == {120}
    assert set(np.unique(image[label == 1])) == {60}


def test_msd_ct_alignment_resized_png(tmp_path: Path) -> None:
    """Downsized PNGs (max_side 16): masks are resized with the image, so they still coincide."""
    recs, _ = _run(tmp_path, Msd(options=ALL_NATIVE), demo.write_msd, max_side=16)
    lung = [r for r in recs if r["native_id"].startswith("Task06") and r["targets"]]
    assert lung and all(r["width"] == 16 or r["height"] == 16 for r in lung)
    for r in lung:
        png = decode_png(r["image"]["bytes"]).astype(float)
        mask = coco_rle_decode(r["targets"][0]["mask_rle"])
        assert png[mask].mean() > png[~mask].mean() + 50  # the bright tumour is under its mask


def test_msd_4d_brain_channels_alignment(tmp_path: Path) -> None:
    recs, vols = _run(tmp_path, Msd(options=ALL_NATIVE), demo.write_msd)
    lab_img = nib.load(tmp_path / "raw/msd/Task01_BrainTumour/labelsTr/BRATS_001.nii.gz")
    lab = np.asarray(lab_img.dataobj)
    brain = [r for r in recs if r["native_id"] == "Task01_BrainTumour/BRATS_001"]
    assert {r["sequence"] for r in brain} == {"FLAIR", "T1w", "t1gd", "T2w"}
    for r in brain:
        assert r["channel_names"] == [r["sequence"]]
        assert_png_and_rle_coincide(r)
    vol = next(v for v in vols if v["native_id"] == "Task01_BrainTumour/BRATS_001")
    assert vol["channel_names"] == ["FLAIR", "T1w", "t1gd", "T2w"] and vol["shape"][0] == 4
    for seq in ("FLAIR", "T2w"):
        check_world(recs, vol, lab, lab_img.affine, (1, 2, 3), sequence=seq)


def test_brats_volume_landmark_after_resampling(tmp_path: Path) -> None:
    opts = VolumeOptions(volume_spacing_mm=1.5, mr_percentiles=(0.0, 100.0), slices="labelled")
    recs, vols = _run(tmp_path, Brats(options=opts), demo.write_brats)
    for vol in vols:
        case = vol["native_id"]
        seg_path = next((tmp_path / "raw/brats" / case).glob("*seg.nii.gz"))
        seg = nib.load(seg_path)
        raw = np.asarray(seg.dataobj)
        et = 4 if case.startswith("BraTS2021") else 3
        label = np.load(io.BytesIO(vol["label_npy"]))
        affine = np.array(vol["affine_lps"]).reshape(4, 4)
        assert vol["spacing_mm"] == [1.5, 1.5, 1.5]
        for v in (2, et):
            ijk = np.argwhere(raw == v).astype(float).mean(axis=0)
            want = LPS @ (seg.affine[:3, :3] @ ijk + seg.affine[:3, 3])
            got = affine[:3, :3] @ np.argwhere(label == v).astype(float).mean(axis=0) + affine[:3, 3]
            assert np.abs(got - want).max() < 1.5, (case, v, got, want)
        image = np.load(io.BytesIO(vol["image_npy"]))
        assert image.shape[0] == 4 and image.dtype == np.float32
        flair = image[3]
        assert np.median(flair[label == et]) > np.median(flair[label == 2]) > np.median(flair[(label == 0) & (flair > 0)])
    for r in recs:
        assert_png_and_rle_coincide(r)


@pytest.mark.parametrize("max_side", [0])
def test_slice_spacing_recorded(tmp_path: Path, max_side: int) -> None:
    recs, vols = _run(tmp_path, Kits(options=ALL_NATIVE), lambda root: demo.write_kits(root, "19"), max_side)
    # KiTS demo: in-plane 0.8 mm, slices 3 mm; LPS rows = P (0.8), cols = L (0.8).
    assert recs[0]["pixel_spacing_mm"] == pytest.approx([0.8, 0.8])
    assert vols[0]["spacing_mm"] == pytest.approx([3.0, 0.8, 0.8])
