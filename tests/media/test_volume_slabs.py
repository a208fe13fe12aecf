"""Stored volumes are resampled and written a slab at a time (issue 24 target 3, volumes): the same
voxels and bytes as resampling the whole volume, and no allocation that grows with the length."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk

from shardsmith.config import Settings, VolumeOptions
from shardsmith.demo.volumes_demo import KITS_AFFINE, write_kits
from shardsmith.media import volume as V
from shardsmith.sources.medical.kits import Kits
from shardsmith.sources.medical.volumetric import npy_from_slabs
from shardsmith.staging.runner import run_source


def _ct(length: int, side: int, slice_mm: float) -> sitk.Image:
    rng = np.random.default_rng(length)
    arr = rng.integers(-1000, 3071, size=(length, side, side), dtype=np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing([0.8, 0.8, slice_mm])
    img.SetOrigin([-12.0, 30.0, -40.0])
    img.SetDirection([1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0])
    return img


@pytest.mark.parametrize("slice_mm", [0.8, 2.5])
@pytest.mark.parametrize("slab", [1, 3, 16])
def test_slabs_are_the_whole_resampled_volume(slice_mm, slab):
    img = _ct(23, 24, slice_mm)
    whole = sitk.GetArrayFromImage(V.resample(img, 1.5, label=False, default=-1024.0))
    slabs = list(V.resample_slabs(img, 1.5, label=False, default=-1024.0, slab=slab))
    assert all(s.shape[0] <= slab for s in slabs)
    assert np.array_equal(np.concatenate(slabs), whole)
    labels = sitk.Cast(img > 1500, sitk.sitkUInt8)
    assert np.array_equal(np.concatenate(list(V.resample_slabs(labels, 1.5, label=True, slab=slab))),
                          sitk.GetArrayFromImage(V.resample(labels, 1.5, label=True)))
    grid, ref = V.grid_image(img, 1.5), V.resample(img, 1.5, label=False)
    assert np.array_equal(V.affine_zyx(grid), V.affine_zyx(ref))


def test_npy_from_slabs_writes_what_np_save_writes():
    arr = np.arange(2 * 7 * 5 * 3, dtype=np.int16).reshape(2, 7, 5, 3)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    slabs = [arr.reshape(14, 5, 3)[i:i + 4] for i in range(0, 14, 4)]
    assert bytes(npy_from_slabs(arr.shape, arr.dtype, slabs)) == buf.getvalue()
    with pytest.raises(ValueError, match="slabs held"):
        npy_from_slabs(arr.shape, arr.dtype, slabs[:-1])


def _peak_beyond_output(length: int) -> int:
    """Traced bytes allocated at the peak of writing one thick-slice CT's stored volume, less the
    stored .npy buffer itself (numpy and Python allocations are traced; ITK's slab is not)."""
    img = _ct(length, 64, 2.5)
    nx, ny, nz = V.resample_grid(img, 1.5)[0]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = npy_from_slabs((1, nz, ny, nx), np.int16, V.resample_slabs(img, 1.5, label=False, default=-1024.0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - len(out)


def test_writing_a_stored_volume_does_not_grow_with_its_length():
    short, long = _peak_beyond_output(60), _peak_beyond_output(240)
    # 240 slices at 2.5 mm resample to 400 slices: a whole float32 volume would be 400 x 34 x 34 x 4
    # bytes = 1.8 MB beyond the output; one slab of 16 is 74 kB.
    slab_bytes = V.RESAMPLE_SLAB_SLICES * 34 * 34 * 4
    assert long < 3 * slab_bytes, long
    assert long < short + slab_bytes


def test_a_native_grid_ct_keeps_its_hu_exactly(tmp_path: Path, monkeypatch):
    """On the native grid the stored volume is the file's HU, slab by slab, dense bone included."""
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-slabs")
    raw = tmp_path / "raw" / "kits"
    write_kits(raw, affine=KITS_AFFINE, shape=(12, 32, 32))
    path = raw / "data" / "case_00000" / "imaging.nii.gz"
    nifti = nib.load(path)
    hu = np.asarray(nifti.dataobj).copy()
    hu[0, :4, :4] = [3071, 2049, 2051, 3001]  # dense bone and metal
    nib.save(nib.Nifti1Image(hu, None, header=nifti.header), path)
    settings = Settings(home=tmp_path)
    run_source(settings, Kits(options=VolumeOptions(volume_spacing_mm=None)))
    row = pq.read_table(settings.staging_dir("kits") / "volumes.parquet").to_pylist()[0]
    stored = np.load(io.BytesIO(row["image_npy"]))
    assert stored.dtype == np.int16 and stored.shape == tuple(row["shape"])
    assert {3071, 2049, 2051, 3001} <= set(np.unique(stored).tolist())
    assert set(np.unique(stored).tolist()) <= {-1000, 0, 60, 120, 3071, 2049, 2051, 3001}


def test_a_stored_volume_is_flushed_on_its_own(tmp_path: Path):
    """The staging sink counts a bytearray .npy as media bytes: a volume is written as soon as it
    arrives, never buffered beside the next ones."""
    from shardsmith.staging.sinks import BATCH_BYTES, _StreamWriter

    schema = pa.schema([pa.field("record_id", pa.string()), pa.field("image_npy", pa.binary())])
    writer = _StreamWriter(tmp_path / "volumes.parquet", schema)
    npy = bytearray(np.arange(BATCH_BYTES // 2, dtype=np.int16).tobytes())
    writer.add({"record_id": "a", "image_npy": npy})
    assert writer.count == 1 and writer.buffer == []
    writer.add({"record_id": "b", "image_npy": b"\x01\x02"})
    writer.add({"record_id": "c", "image_npy": None})
    writer.close()
    rows = pq.read_table(tmp_path / "volumes.parquet").to_pylist()
    assert rows == [{"record_id": "a", "image_npy": bytes(npy)}, {"record_id": "b", "image_npy": b"\x01\x02"},
                    {"record_id": "c", "image_npy": None}]


def test_a_one_row_table_is_the_row_from_pylist_would_make():
    from shardsmith.schemas.volumes import VOLUMES_SCHEMA
    from shardsmith.staging.sinks import _one_row_table

    row = {f.name: None for f in VOLUMES_SCHEMA}
    row.update(record_id="r", source="kits", native_id="case_00000", split="train", shape=[1, 2, 3, 4],
               spacing_mm=[1.5, 1.5, 1.5], image_npy=bytearray(b"\x93NUMPY..."), label_npy=b"lab",
               label_names=[{"value": 1, "label": "kidney", "source_label": "kidney", "kind": "anatomy"}])
    assert _one_row_table(row, VOLUMES_SCHEMA).equals(pa.Table.from_pylist([row], schema=VOLUMES_SCHEMA))


def _kits_ct(tmp_path: Path) -> Path:
    from shardsmith.demo.volumes_demo import write_nifti

    rng = np.random.default_rng(7)
    arr = rng.integers(-1000, 3000, size=(40, 96, 80), dtype=np.int16)  # slice-first, as KiTS ships it
    return write_nifti(tmp_path / "imaging.nii.gz", arr, KITS_AFFINE, sform_only=True)


def test_canonical_on_read_is_to_canonical_after_it(tmp_path: Path):
    path = _kits_ct(tmp_path)
    (on_read,), _ = V.read_nifti(path, canonical=True)
    (plain,), _ = V.read_nifti(path)
    after = V.to_canonical(plain)
    assert V.to_canonical(on_read) is on_read  # already LPS+: nothing left to do
    assert on_read.GetSize() == after.GetSize()
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert np.allclose(getattr(on_read, get)(), getattr(after, get)()), get
    assert np.array_equal(sitk.GetArrayViewFromImage(on_read), sitk.GetArrayViewFromImage(after))
    labels = V.read_nifti_labels(_kits_labels(tmp_path), canonical=True)[0]
    assert labels.GetSize() == on_read.GetSize()


def _kits_labels(tmp_path: Path) -> Path:
    from shardsmith.demo.volumes_demo import blob_labels, write_nifti

    return write_nifti(tmp_path / "segmentation.nii.gz", blob_labels((40, 96, 80)), KITS_AFFINE, sform_only=True)


def test_a_compressed_nifti_is_read_into_one_array(tmp_path: Path, monkeypatch):
    """No second whole copy while reading a .nii.gz (nibabel's read held the decompressed bytes and
    the array made from them at once): the traced peak is the array plus one read chunk."""
    path = _kits_ct(tmp_path)
    monkeypatch.setattr(V, "_READ_CHUNK", 1 << 16)
    volume_bytes = 40 * 96 * 80 * 2
    tracemalloc.start()
    try:
        data, _ = V._load_nifti(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(data, np.asarray(nib.load(path).dataobj))
    assert peak < volume_bytes * 1.5, (peak, volume_bytes)  # two copies would be 2x


def test_a_case_is_let_go_once_its_volume_row_is_made(tmp_path: Path, monkeypatch):
    """The native volume and label map are not held while the stored volume is being written."""
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-slabs")
    write_kits(tmp_path / "raw" / "kits", shape=(12, 32, 32))
    source = Kits()
    seen = []
    make_row = Kits.volume_record

    def spy(self, *args, **kwargs):
        row = make_row(self, *args, **kwargs)
        seen.append(self._prepared)
        return row

    monkeypatch.setattr(Kits, "volume_record", spy)
    counts = run_source(Settings(home=tmp_path, workers=1), source)
    assert counts.extra_tables == {"volumes": 1} and seen == [None]


_WRITE_ONE_VOLUME = """
import sys, numpy as np, pyarrow as pa
from pathlib import Path
from shardsmith.staging.sinks import _StreamWriter

def hwm():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))

npy = bytearray(64 << 20)
np.frombuffer(npy, dtype=np.int16)[::7] = 5  # touched, and compressible like a phantom CT
before = hwm()
schema = pa.schema([pa.field("record_id", pa.string()), pa.field("image_npy", pa.binary())])
writer = _StreamWriter(Path(sys.argv[1]), schema)
writer.add({"record_id": "a", "image_npy": npy})
writer.close()
print(hwm() - before)
"""


def test_the_staging_writer_costs_a_stored_volume_once_not_twice(tmp_path: Path):
    """A data page v1 copies a value into one levels+values buffer before compressing it: writing a
    64 MB .npy raised the peak by 2.8x its size (2.3x at 150 MB); v2 pages compress the encoded values
    as they are, one copy fewer (1.8x at 64 MB, 1.3x at 150 MB: a fixed ~50 MB of writer state)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _WRITE_ONE_VOLUME, str(tmp_path / "v.parquet")],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    extra = int(out.stdout.strip())
    assert extra < 2.2 * (64 << 20), extra / (64 << 20)
    assert pq.read_table(tmp_path / "v.parquet").num_rows == 1
