"""Real KiTS19 label volumes (slice-first, permuted affine) with a test-made image of the same geometry."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq

from shardsmith.config import ImageOptions, Settings
from shardsmith.media.masks import coco_rle_decode, resize_mask
from shardsmith.media.raster import decode_png
from shardsmith.sources.medical.kits import Kits
from shardsmith.sources.medical.volumetric import VolumeOptions
from shardsmith.staging.runner import run_source

CASES = ("case_00061", "case_00148")
MAX_SIDE = 128  # the real slices are 512x512: downsize so the test stays fast


def _to_lps_zyx(arr: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Independent of the adapter: nibabel's orientation tools, RAS -> LPS, then array order (z, y, x)."""
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(affine),
                                           nib.orientations.axcodes2ornt(("L", "P", "S")))
    lps = nib.orientations.apply_orientation(arr, ornt)
    return lps.transpose(2, 1, 0)


def test_real_kits19_tumour_slices(real_samples: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, image=ImageOptions(max_side=MAX_SIDE))
    data = settings.raw_dir("kits") / "data"
    data.mkdir(parents=True)
    (data / "kits.json").symlink_to(real_samples / "kits19/data/kits.json")
    expected: dict[str, tuple[set[int], np.ndarray]] = {}
    for case in CASES:
        src = real_samples / "kits19/data" / case / "segmentation.nii.gz"
        (data / case).mkdir()
        (data / case / "segmentation.nii.gz").symlink_to(src)
        seg = nib.load(src)
        lab = np.asarray(seg.dataobj)
        assert lab.shape[1:] == (512, 512) and lab.shape[0] < 100  # slice-first on disk
        image = np.where(lab > 0, 40 + 60 * lab.astype(np.int16), -100).astype(np.int16)
        nib.save(nib.Nifti1Image(image, seg.affine, seg.header), data / case / "imaging.nii.gz")
        canon = _to_lps_zyx(lab, seg.affine)
        expected[case] = ({int(z) for z in np.flatnonzero((canon == 2).any(axis=(1, 2)))}, canon)
    counts = run_source(settings, Kits(options=VolumeOptions(slices="labelled", volume_spacing_mm=4.0)))
    assert counts.quarantined == 0 and counts.items_ok == 2
    recs = pq.read_table(settings.staging_dir("kits") / "records.parquet").to_pylist()
    for case in CASES:
        tumour_slices, canon = expected[case]
        rows = [r for r in recs if r["native_id"] == case]
        got = {r["slice_index"]: [t for t in r["targets"] if t["label"] == "renal_tumor"] for r in rows}
        assert {z for z, ts in got.items() if ts} == tumour_slices
        assert all(len(ts) <= 1 for ts in got.values())  # one tumour target per slice
        for r in rows:
            assert r["num_slices"] == canon.shape[0] and r["sex"] in {"M", "F"}
            tumour = r["slice_index"] in tumour_slices
            assert r["abnormal"] is (True if tumour else None)
            f = next(f for f in r["findings"] if f["label"] == "renal_tumor")
            assert f["status"] == ("present" if tumour else "absent")
            if tumour:
                mask = coco_rle_decode(got[r["slice_index"]][0]["mask_rle"])
                want = resize_mask(canon[r["slice_index"]] == 2, r["height"], r["width"])
                np.testing.assert_array_equal(mask, want)
                png = decode_png(r["image"]["bytes"]).astype(float)
                assert png[mask].mean() > png[~mask].mean() + 40  # the bright tumour sits under its mask
