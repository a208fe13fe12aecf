"""A NIfTI volume streamed into a scratch file a block of planes at a time (issue 24 target 3, volumes):
the same voxels, types and geometry as reading it whole, resampled slab by slab to the same voxels,
the same records and stored volume from a KiTS case, and no allocation that grows with the length."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk

from shardsmith.config import Settings
from shardsmith.demo.volumes_demo import DEFAULT_AFFINE, KITS_AFFINE, blob_labels, write_kits, write_nifti
from shardsmith.media import volume as V
from shardsmith.media.volume_slabs import TILE_SLICES, SlabVolume
from shardsmith.sources.medical.base import CatalogEntry
from shardsmith.sources.medical.kits import Kits
from shardsmith.staging.runner import run_source

# A KiTS array is slice-first (the file's fastest axis is the slice axis: every block of planes
# spans all slices); DEFAULT_AFFINE stores axial planes (a block is a run of slices), flipped in x.
# "head_first" stores its axial planes from the head down (the plane axis runs against LPS+ z).
HEAD_FIRST = DEFAULT_AFFINE.copy()
HEAD_FIRST[2, 2] = -DEFAULT_AFFINE[2, 2]
LAYOUTS = {"kits": KITS_AFFINE, "axial": DEFAULT_AFFINE, "head_first": HEAD_FIRST}


def _shape(layout: str, slices: int, side: int = 24) -> tuple[int, int, int]:
    return (slices, side + 3, side) if layout == "kits" else (side, side + 3, slices)


def _whole(path: Path) -> sitk.Image:
    return V.read_nifti(path, canonical=True)[0][0]


def _same_grid(a, b) -> None:
    assert tuple(a.GetSize()) == tuple(b.GetSize())
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(a, get)() == getattr(b, get)(), get  # exactly: the stored affine comes from them


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few planes, so a volume is read in many blocks that cut across its tiles."""
    monkeypatch.setattr(V, "_READ_CHUNK", 3 * 27 * 37 * 2)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("slices", [1, 15, 16, 17, 37])
def test_a_streamed_ct_is_the_ct_read_whole(tmp_path: Path, small_blocks, layout, slices):
    rng = np.random.default_rng(slices)
    arr = rng.integers(-1024, 3071, size=_shape(layout, slices), dtype=np.int16)
    path = write_nifti(tmp_path / "ct.nii.gz", arr, LAYOUTS[layout], sform_only=layout == "kits")
    (vol,) = V.read_nifti_slabs(path)
    whole = _whole(path)
    assert isinstance(vol, SlabVolume) and vol.dtype == np.int16
    _same_grid(vol, whole)
    expected = sitk.GetArrayViewFromImage(whole)
    assert np.array_equal(vol[0:slices], expected)
    assert all(np.array_equal(vol[z], expected[z]) for z in range(slices))
    assert np.array_equal(vol.slab(TILE_SLICES - 2, TILE_SLICES + 3), expected[TILE_SLICES - 2:TILE_SLICES + 3])


def test_scaled_and_4d_images_stream_as_they_read_whole(tmp_path: Path, small_blocks):
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 4000, size=(27, 24, 19, 2), dtype=np.int16)
    img = nib.Nifti1Image(arr, DEFAULT_AFFINE)
    img.header.set_slope_inter(0.5, -1024.0)
    nib.save(img, tmp_path / "mr.nii.gz")
    vols = V.read_nifti_slabs(tmp_path / "mr.nii.gz")
    whole = V.read_nifti(tmp_path / "mr.nii.gz", canonical=True)[0]
    assert len(vols) == len(whole) == 2
    for vol, ref in zip(vols, whole, strict=True):
        assert vol.dtype == np.float32
        _same_grid(vol, ref)
        assert np.array_equal(vol[0:19], sitk.GetArrayViewFromImage(ref))


@pytest.mark.parametrize(("values", "dtype"), [((1, 2), np.uint8), ((1, 300), np.int16), ((1, 2), np.float32)])
def test_a_streamed_label_map_is_the_label_map_read_whole(tmp_path: Path, small_blocks, values, dtype):
    lab = blob_labels((37, 27, 24), (1, 2)).astype(dtype)
    lab[lab == 2] = values[1]
    path = write_nifti(tmp_path / "seg.nii.gz", lab, KITS_AFFINE, sform_only=True)
    vol = V.read_nifti_labels_slabs(path)
    whole = V.read_nifti_labels(path, canonical=True)[0]
    expected = sitk.GetArrayViewFromImage(whole)
    assert vol.dtype == expected.dtype == (np.uint8 if max(values) < 256 else np.uint16)
    _same_grid(vol, whole)
    assert np.array_equal(vol[0:37], expected)


@pytest.mark.parametrize("dtype,value,reason", [
    (np.int16, -1, "label_negative"), (np.float32, 1.5, "label_not_integer"),
    (np.int32, 70000, "label_out_of_range"), (np.float32, np.nan, "non_finite_voxels")])
def test_a_broken_label_block_is_refused_like_the_whole_map(tmp_path: Path, small_blocks, dtype, value, reason):
    lab = blob_labels((37, 27, 24), (1, 2)).astype(dtype)
    lab[30, 3, 3] = value
    path = write_nifti(tmp_path / "seg.nii.gz", lab, KITS_AFFINE, sform_only=True)
    with pytest.raises(V.VolumeError) as streamed:
        V.read_nifti_labels_slabs(path)
    with pytest.raises(V.VolumeError) as whole:
        V.read_nifti_labels(path, canonical=True)
    assert streamed.value.reason == whole.value.reason == reason


def test_a_cut_file_is_unreadable(tmp_path: Path):
    arr = np.random.default_rng(0).integers(-1000, 1000, size=(37, 27, 24), dtype=np.int16)
    path = write_nifti(tmp_path / "ct.nii.gz", arr, KITS_AFFINE, sform_only=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(V.VolumeError) as err:
        V.read_nifti_slabs(path)
    assert err.value.reason == "unreadable_nifti"


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(("slices", "slice_mm"), [(37, 0.8), (37, 2.5), (16, 2.5), (33, 3.0), (5, 2.5)])
@pytest.mark.parametrize("slab", [1, 7, 16])
def test_slab_wise_resampling_of_a_streamed_volume_is_the_whole_resampled_volume(
        tmp_path: Path, small_blocks, layout, slices, slice_mm, slab):
    """Each output slab from only the input slices it reaches equals sitk.Resample of the whole image,
    voxel for voxel, thin and thick, at odd lengths and across tile and slab boundaries."""
    affine = LAYOUTS[layout].copy()
    if layout == "kits":
        affine[2, 0] = -slice_mm
    else:
        affine[2, 2] = np.sign(affine[2, 2]) * slice_mm
    rng = np.random.default_rng(slices)
    arr = rng.integers(-1024, 3071, size=_shape(layout, slices), dtype=np.int16)
    path = write_nifti(tmp_path / "ct.nii.gz", arr, affine, sform_only=layout == "kits")
    lab_path = write_nifti(tmp_path / "seg.nii.gz", blob_labels(arr.shape, (1, 2)), affine,
                           sform_only=layout == "kits")
    (vol,), whole = V.read_nifti_slabs(path), _whole(path)
    expected = sitk.GetArrayFromImage(V.resample(whole, 1.5, label=False, default=-1024.0))
    for source in (vol, whole):
        got = np.concatenate(list(V.resample_slabs(source, 1.5, label=False, default=-1024.0, slab=slab)))
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    labels, labels_whole = V.read_nifti_labels_slabs(lab_path), V.read_nifti_labels(lab_path, canonical=True)[0]
    expected = sitk.GetArrayFromImage(V.resample(labels_whole, 1.5, label=True))
    got = np.concatenate(list(V.resample_slabs(labels, 1.5, label=True, slab=slab)))
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert np.array_equal(V.affine_zyx(V.grid_image(vol, 1.5)), V.affine_zyx(V.resample(whole, 1.5, label=False)))


class _WholeKits(Kits):
    """KiTS read whole into SimpleITK images, as before streaming: the reference for the bytes."""

    def load_case(self, entry, root):
        case = super().load_case(entry, root)
        extra = entry.item.extra
        case.channels = V.read_nifti(root / extra["main"], canonical=True)[0]
        case.label = V.read_nifti_labels(root / extra["label"], canonical=True)[0]
        return case


@pytest.mark.parametrize("slice_mm", [0.8, 2.5])
def test_a_streamed_kits_case_stages_the_bytes_the_whole_case_staged(tmp_path: Path, monkeypatch, small_blocks,
                                                                       slice_mm):
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-streaming")
    affine = KITS_AFFINE.copy()
    affine[2, 0] = -slice_mm
    write_kits(tmp_path / "raw" / "kits", affine=affine, shape=(37, 27, 24))
    tables = {}
    for name, source in (("streamed", Kits()), ("whole", _WholeKits())):
        settings = Settings(home=tmp_path / name, workers=1)
        (tmp_path / name / "raw").mkdir(parents=True)
        (tmp_path / name / "raw" / "kits").symlink_to(tmp_path / "raw" / "kits")
        run_source(settings, source)
        staged = settings.staging_dir("kits")
        tables[name] = {f.name: pq.read_table(f).to_pylist() for f in sorted(staged.glob("*.parquet"))
                        if f.name != "catalog.parquet"}
    assert tables["streamed"] == tables["whole"]
    (row,) = tables["streamed"]["volumes.parquet"]
    assert np.load(io.BytesIO(row["label_npy"])).any()  # the comparison covers a real label map
    assert len([r for f, rows in tables["streamed"].items() if f.startswith("records") for r in rows]) > 3


def _traced_peak_of_a_kits_case(tmp_path: Path, slices: int) -> tuple[int, int]:
    """(traced peak of reading, checking and resampling one KiTS case, bytes of its native CT and labels)."""
    root = tmp_path / f"kits-{slices}"
    write_kits(root, shape=(slices, 64, 64))
    source = Kits()
    (item,) = source.read_labels(root).items
    entry = CatalogEntry(item=item, raw_path=item.extra["main"], raw_sha256=str(slices), size=0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        prep = source.prepare(entry, root)  # read, reoriented, label values checked, presence per slice
        for vol, label in ((prep.canon_channels[0], False), (prep.canon_label, True)):
            for _ in V.resample_slabs(vol, 1.5, label=label, default=-1024.0):
                pass
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return peak, slices * 64 * 64 * 3


def test_a_streamed_case_is_never_in_memory_whole(tmp_path: Path, monkeypatch):
    """Reading a KiTS case (CT and label map), checking it and resampling it allocate (numpy and
    Python, traced) a working set far below the case, which grows by a small fraction of what the
    case grows by (the index of its tiles, 56 bytes a tile); a whole read would grow by all of it."""
    monkeypatch.setattr(V, "_READ_CHUNK", 64 * 64 * 2 * 4)
    short, short_case = _traced_peak_of_a_kits_case(tmp_path, 96)
    long, long_case = _traced_peak_of_a_kits_case(tmp_path, 384)
    assert long < long_case / 4, (long, long_case)
    assert long - short < (long_case - short_case) / 8, (short, long, short_case, long_case)


def test_scratch_volumes_live_beside_the_staging_and_leave_nothing(tmp_path: Path, monkeypatch):
    """The scratch files are unlinked files in the source's staging folder (the build's disk, not a
    /tmp that may be memory), and nothing of them is left once the case is staged."""
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-streaming")
    write_kits(tmp_path / "raw" / "kits", shape=(20, 24, 24))
    settings = Settings(home=tmp_path, workers=1)
    opened = []
    make = SlabVolume.__init__

    def spy(self, *args, **kwargs):
        make(self, *args, **kwargs)
        opened.append(Path(f"/proc/self/fd/{self._file.fileno()}").readlink())

    monkeypatch.setattr(SlabVolume, "__init__", spy)
    source = Kits()

    (item,) = source.read_labels(tmp_path / "raw" / "kits").items
    entry = CatalogEntry(item=item, raw_path=item.extra["main"], raw_sha256="x", size=0)
    list(source.build_records(entry, tmp_path / "raw" / "kits", settings))
    list(source.build_extra("volumes", entry, tmp_path / "raw" / "kits", settings))
    staging = settings.layout.source_dir("kits")
    assert len(opened) == 2 and all(p.parent == staging for p in opened), opened
    assert source._prepared is None and list(staging.iterdir()) == []
