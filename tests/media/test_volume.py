"""media.volume: NIfTI -> SimpleITK world mapping, LPS reorientation, resampling, windows."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from shardsmith.demo.volumes_demo import KITS_AFFINE, blob_labels, write_nifti
from shardsmith.media import volume as V

LPS = np.diag([-1.0, -1.0, 1.0])
OBLIQUE_FREE_AFFINES = {
    "kits_permuted": KITS_AFFINE,
    "flipped_anisotropic": np.array([[-1.2, 0, 0, 20.0], [0, 0.9, 0, -15.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1]]),
    "sagittal_first": np.array([[0, 0, 1.1, -3.0], [-0.7, 0, 0, 8.0], [0, -2.0, 0, 50.0], [0, 0, 0, 1]]),
}


def _world_lps(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return (LPS @ (affine[:3, :3] @ ijk.T + affine[:3, 3:4])).T


@pytest.mark.parametrize("name", sorted(OBLIQUE_FREE_AFFINES))
def test_canonical_keeps_every_voxel_in_place(tmp_path: Path, name: str) -> None:
    affine = OBLIQUE_FREE_AFFINES[name]
    lab = blob_labels((12, 20, 16), (1, 2))
    path = write_nifti(tmp_path / "lab.nii.gz", lab, affine, sform_only=(name == "kits_permuted"))
    img, _ = V.read_nifti_labels(path)
    canon = V.to_canonical(img)
    # LPS+: array axes (z, y, x) step along +S, +P, +L (world L, P, S) with positive spacing.
    a = V.affine_zyx(canon)
    m = a[:3, :3][:, ::-1]  # columns x, y, z
    assert np.allclose(m, np.diag(np.diag(m))) and (np.diag(m) > 0).all()
    arr = sitk.GetArrayFromImage(canon)
    for v in (1, 2):
        raw = {tuple(p) for p in np.round(_world_lps(affine, np.argwhere(lab == v).astype(float)), 3)}
        zyx = np.argwhere(arr == v).astype(float)
        got = (a[:3, :3] @ zyx.T + a[:3, 3:4]).T
        assert {tuple(p) for p in np.round(got, 3)} == raw


def test_sitk_mapping_matches_nibabel_for_kits_header(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "k.nii.gz", np.zeros((5, 6, 7), np.uint8), KITS_AFFINE, sform_only=True)
    hdr = nib.load(path).header
    assert int(hdr["sform_code"]) == 2 and int(hdr["qform_code"]) == 0
    img, _ = V.read_nifti_labels(path)
    for ijk in ((0, 0, 0), (4, 5, 6), (2, 1, 3)):
        expected = _world_lps(KITS_AFFINE, np.array([ijk], float))[0]
        assert np.allclose(img.TransformIndexToPhysicalPoint(ijk), expected)


def test_resample_keeps_landmark_world_position(tmp_path: Path) -> None:
    lab = np.zeros((40, 30, 10), np.uint8)
    lab[30:33, 5:8, 2:4] = 1  # an off-centre landmark
    affine = OBLIQUE_FREE_AFFINES["flipped_anisotropic"]
    img, _ = V.read_nifti_labels(write_nifti(tmp_path / "l.nii.gz", lab, affine))
    out = V.resample(V.to_canonical(img), 1.5, label=True)
    assert out.GetSpacing() == (1.5, 1.5, 1.5)
    a = V.affine_zyx(out)
    arr = sitk.GetArrayFromImage(out)
    got = a[:3, :3] @ np.argwhere(arr == 1).mean(axis=0) + a[:3, 3]
    want = _world_lps(affine, np.argwhere(lab == 1).astype(float)).mean(axis=0)
    assert np.abs(got - want).max() < 1.5
    # The physical extent is unchanged (edge-aligned grid).
    extent = np.array(img.GetSize()) * np.array(img.GetSpacing())
    assert np.allclose(np.array(out.GetSize()) * 1.5, extent, atol=1.5)


def test_non_finite_and_shape_mismatch_raise_specific_reasons(tmp_path: Path) -> None:
    data = np.zeros((4, 4, 3), np.float32)
    data[1, 1, 1] = np.nan
    with pytest.raises(V.VolumeError) as e:
        V.read_nifti(write_nifti(tmp_path / "nan.nii.gz", data, np.eye(4)))
    assert e.value.reason == "non_finite_voxels"
    a, _ = V.read_nifti(write_nifti(tmp_path / "a.nii.gz", np.zeros((4, 4, 3), np.float32), np.eye(4)))
    b, _ = V.read_nifti_labels(write_nifti(tmp_path / "b.nii.gz", np.zeros((4, 4, 4), np.uint8), np.eye(4)))
    with pytest.raises(V.VolumeError) as e:
        V.check_same_grid(a[0], b, "label")
    assert e.value.reason == "label_shape_mismatch"


def test_windows() -> None:
    w = V.ct_window("lung")
    assert (w.lo, w.hi) == (-1350.0, 150.0) and "lung" in w.description
    assert V.ct_window("40,400").lo == -160.0
    with pytest.raises(ValueError):
        V.ct_window("nonsense")
    arr = np.concatenate([np.zeros(1000), np.linspace(100, 200, 1000)]).astype(np.float32)
    p = V.percentile_window(arr, 0.0, 100.0)
    assert (p.lo, p.hi) == (100.0, 200.0)  # zero background excluded


@pytest.mark.parametrize("name", sorted(OBLIQUE_FREE_AFFINES))
def test_to_canonical_matches_dicomorient(tmp_path: Path, name: str) -> None:
    lab = blob_labels((12, 20, 16), (1, 2))
    img, _ = V.read_nifti_labels(write_nifti(tmp_path / "l.nii.gz", lab, OBLIQUE_FREE_AFFINES[name]))
    ours, itk = V.to_canonical(img), sitk.DICOMOrient(img, "LPS")
    assert ours.GetSize() == itk.GetSize()
    assert np.allclose(ours.GetSpacing(), itk.GetSpacing()) and np.allclose(ours.GetOrigin(), itk.GetOrigin())
    assert np.allclose(ours.GetDirection(), itk.GetDirection())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(itk))
