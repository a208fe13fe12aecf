"""Small volumetric cases of every 3D source in its native layout (tests and ``make demo``).

Each case is a tiny phantom (32x32x12 voxels by default) whose intensities encode the label map
exactly (``image = base + step * label`` inside the body), with an asymmetric label blob, so
that a test can decode a stored PNG and its RLE and check they coincide, and any flip or
transpose shows. Each layout carries the traps its real dataset has: MSD ``._*`` AppleDouble
files, the ``relase`` key and string-list ``test``, a 4D BrainTumour image; BraTS 2021 and
2023 naming; KiTS slice-first arrays with a permuted, anisotropic affine; an LIDC DICOM series
stored out of order with a default-namespace XML of three readers (one only marks a small
nodule); TotalSegmentator's ``;``-separated ``meta.csv``. Output is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = [
    "KITS_AFFINE",
    "blob_labels",
    "phantom_image",
    "write_brats",
    "write_demo",
    "write_kits",
    "write_lidc",
    "write_msd",
    "write_nifti",
    "write_totalsegmentator",
]

SHAPE = (32, 32, 12)  # i, j, k of the NIfTI arrays (KiTS stores (k, j, i)-like slice-first arrays)
# KiTS-style permuted affine: array axis 0 is the slice axis (world -z), axes 1/2 in-plane.
KITS_AFFINE = np.array([[0.0, 0.0, -0.8, 12.0], [0.0, -0.8, 0.0, -30.0], [-3.0, 0.0, 0.0, 40.0], [0, 0, 0, 1]])
# An oblique-free but flipped, anisotropic affine for MSD/BraTS/TotalSegmentator cases.
DEFAULT_AFFINE = np.array([[-1.2, 0.0, 0.0, 20.0], [0.0, 0.9, 0.0, -15.0], [0.0, 0.0, 2.5, -10.0], [0, 0, 0, 1]])


def blob_labels(shape: tuple[int, int, int], values: tuple[int, ...] = (1, 2), offset: int = 0) -> np.ndarray:
    """An asymmetric label map: an L-shaped block of ``values[0]`` with ``values[1:]`` nested inside
    or beside it, away from the centre on every axis so that flips and transposes are visible."""
    a, b, c = shape
    lab = np.zeros(shape, dtype=np.uint8)
    i0, j0, k0 = a // 4 + offset, b // 3, c // 4
    lab[i0:i0 + a // 3, j0:j0 + b // 5, k0:k0 + max(2, c // 2)] = values[0]
    lab[i0:i0 + a // 8, j0:j0 + b // 2, k0:k0 + max(1, c // 4)] = values[0]  # the arm of the L
    for n, v in enumerate(values[1:]):
        s = 2 + n * 3
        lab[i0 + s:i0 + s + 3, j0 + 1:j0 + 4, k0 + 1 + n:k0 + 3 + n] = v
    return lab


def phantom_image(labels: np.ndarray, *, base: float, step: float, background: float) -> np.ndarray:
    """Body ellipse at ``base``, each label value v at ``base + step * v``, air/background outside."""
    a, b = labels.shape[0], labels.shape[1]
    ii, jj = np.meshgrid(np.arange(a), np.arange(b), indexing="ij")
    body2d = ((ii - a / 2 + 0.5) / (0.48 * a)) ** 2 + ((jj - b / 2 + 0.5) / (0.48 * b)) ** 2 <= 1.0
    body = np.broadcast_to(body2d.reshape(a, b, *([1] * (labels.ndim - 2))), labels.shape)
    img = np.where(body, base, background).astype(np.float32)
    img = img + step * labels.astype(np.float32)
    return img


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray, *, sform_only: bool = False) -> Path:
    """Write a .nii.gz; ``sform_only`` mimics KiTS (sform_code 2, qform_code 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(array, affine)
    if sform_only:
        img.set_sform(affine, code=2)
        img.set_qform(None, code=0)
    else:
        img.set_sform(affine, code=1)
        img.set_qform(affine, code=1)
    nib.save(img, str(path))
    return path


def _appledouble(path: Path) -> None:
    path.with_name("._" + path.name).write_bytes(b"\x00\x05\x16\x07AppleDouble junk")


# --------------------------------------------------------------------------- MSD


def write_msd(root: Path, affine: np.ndarray = DEFAULT_AFFINE, shape: tuple[int, int, int] = SHAPE) -> None:
    """Task01_BrainTumour (4D, 4 MR channels, one training case, one test image) and Task06_Lung (CT)."""
    task = root / "Task01_BrainTumour"
    lab = blob_labels(shape, (1, 2, 3))  # 1 edema, 2 non-enhancing, 3 enhancing
    chans = [phantom_image(lab, base=200.0 + 50 * c, step=150.0, background=0.0) for c in range(4)]
    write_nifti(task / "imagesTr" / "BRATS_001.nii.gz", np.stack(chans, axis=-1), affine)
    write_nifti(task / "labelsTr" / "BRATS_001.nii.gz", lab, affine)
    write_nifti(task / "imagesTs" / "BRATS_485.nii.gz", np.stack(chans, axis=-1), affine)
    _appledouble(task / "imagesTr" / "BRATS_001.nii.gz")
    _appledouble(task / "labelsTr" / "BRATS_001.nii.gz")
    (task / "dataset.json").write_text(json.dumps({
        "name": "BRATS", "tensorImageSize": "4D", "relase": "2.0 04/05/2018",
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "numTraining": 1, "numTest": 1,
        "training": [{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}],
        "test": ["./imagesTs/BRATS_485.nii.gz"],
    }, indent=1))
    lung = root / "Task06_Lung"
    lab = blob_labels(shape, (1,), offset=2)
    write_nifti(lung / "imagesTr" / "lung_001.nii.gz",
                phantom_image(lab, base=-800.0, step=850.0, background=-1024.0).astype(np.int16), affine)
    write_nifti(lung / "labelsTr" / "lung_001.nii.gz", lab, affine)
    _appledouble(lung / "imagesTr" / "lung_001.nii.gz")
    (lung / "dataset.json").write_text(json.dumps({
        "name": "Lung", "tensorImageSize": "3D", "release": "1.0",
        "modality": {"0": "CT"}, "labels": {"0": "background", "1": "cancer"},
        "training": [{"image": "./imagesTr/lung_001.nii.gz", "label": "./labelsTr/lung_001.nii.gz"}],
        "test": [],
    }, indent=1))


# --------------------------------------------------------------------------- BraTS


def write_brats(root: Path, affine: np.ndarray = DEFAULT_AFFINE, shape: tuple[int, int, int] = SHAPE) -> None:
    """One 2021 case (labels 1/2/4) and one 2023 GLI case (labels 1/2/3)."""
    for case, seqs, et in (("BraTS2021_00000", ("t1", "t1ce", "t2", "flair"), 4),
                           ("BraTS-GLI-00000-000", ("t1n", "t1c", "t2w", "t2f"), 3)):
        lab = blob_labels(shape, (2, 1, et))  # edema around, NCR and ET inside
        sep = "_" if case.startswith("BraTS2021") else "-"
        folder = root / case
        for n, s in enumerate(seqs):
            img = phantom_image(lab, base=300.0 + 40 * n, step=100.0, background=0.0)
            write_nifti(folder / f"{case}{sep}{s}.nii.gz", img, affine)
        write_nifti(folder / f"{case}{sep}seg.nii.gz", lab, affine)


# --------------------------------------------------------------------------- KiTS


def write_kits(root: Path, version: str = "19", affine: np.ndarray = KITS_AFFINE,
               shape: tuple[int, int, int] = (12, 32, 32)) -> None:
    """``data/`` + ``kits.json`` (19) or ``dataset/`` + ``kits23.json`` (23), slice-first arrays."""
    folder = root / ("data" if version == "19" else "dataset")
    values = (1, 2) if version == "19" else (1, 2, 3)
    lab = blob_labels(shape, values).astype(np.uint8)
    img = phantom_image(lab.transpose(1, 2, 0), base=0.0, step=60.0, background=-1000.0).transpose(2, 0, 1)
    case = folder / "case_00000"
    write_nifti(case / "imaging.nii.gz", img.astype(np.int16), affine, sform_only=True)
    write_nifti(case / "segmentation.nii.gz", lab, affine, sform_only=True)
    meta = [{"case_id": "case_00000", "age_at_nephrectomy": 57, "gender": "female", "malignant": True}]
    (folder / ("kits.json" if version == "19" else "kits23.json")).write_text(json.dumps(meta, indent=1))


# --------------------------------------------------------------------------- TotalSegmentator


def write_totalsegmentator(root: Path, affine: np.ndarray = DEFAULT_AFFINE,
                           shape: tuple[int, int, int] = SHAPE) -> None:
    """``s0000/ct.nii.gz`` + binary masks (liver, spleen, kidney_left with a cyst) + ``;`` meta.csv."""
    lab = blob_labels(shape, (1, 2))
    spleen = np.zeros(shape, dtype=np.uint8)
    spleen[shape[0] * 3 // 4:shape[0] * 3 // 4 + 3, 4:8, 2:5] = 1
    img = phantom_image(lab + 3 * spleen, base=0.0, step=50.0, background=-1000.0)
    case = root / "s0000"
    write_nifti(case / "ct.nii.gz", img.astype(np.int16), affine)
    write_nifti(case / "segmentations" / "kidney_left.nii.gz", (lab > 0).astype(np.uint8), affine)
    write_nifti(case / "segmentations" / "kidney_cyst_left.nii.gz", (lab == 2).astype(np.uint8), affine)
    write_nifti(case / "segmentations" / "spleen.nii.gz", spleen, affine)
    write_nifti(case / "segmentations" / "liver.nii.gz", np.zeros(shape, dtype=np.uint8), affine)
    (root / "meta.csv").write_text("image_id;age;gender;institute;study_type;split\ns0000;63;f;A;ct abdomen;train\n")


# --------------------------------------------------------------------------- LIDC-IDRI

LIDC_NS = "http://www.nih.gov"


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def write_lidc(root: Path, rows: int = 32, cols: int = 32, depth: int = 12, spacing: float = 0.7,
               thickness: float = 2.5) -> dict[str, object]:
    """One CT series (files written in reverse position order) and its XML with three readers.

    Returns the series geometry and the nodule box so tests can check placement.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    patient = "LIDC-IDRI-0001"
    study_uid, series_uid = _uid(patient, "study"), _uid(patient, "series")
    series_dir = root / patient / study_uid / series_uid
    series_dir.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:rows, 0:cols]
    # Nodule: rows 10-15, cols 18-23 (right of centre = patient left), slices 4-6.
    nod_rows, nod_cols, nod_slices = (10, 16), (18, 24), (4, 7)
    z0 = -120.0
    sops = []
    for k in range(depth):
        hu = np.where(((yy - rows / 2) / (0.45 * rows)) ** 2 + ((xx - cols / 2) / (0.45 * cols)) ** 2 <= 1,
                      -800.0, -1000.0)
        if nod_slices[0] <= k < nod_slices[1]:
            hu[nod_rows[0]:nod_rows[1], nod_cols[0]:nod_cols[1]] = 60.0
        sop = _uid(series_uid, k)
        sops.append(sop)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = sop
        ds.Modality = "CT"
        ds.PatientID = patient
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = depth - k  # scanners number head-first: numbering runs against z
        ds.ImagePositionPatient = [-cols * spacing / 2, -rows * spacing / 2, z0 + thickness * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = thickness
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (hu + 1024).astype("<i2").tobytes()
        ds.save_as(series_dir / f"{depth - k:06d}.dcm", enforce_file_format=True)

    def roi(k: int, r: tuple[int, int], c: tuple[int, int]) -> str:
        pts = [(c[0], r[0]), (c[1] - 1, r[0]), (c[1] - 1, r[1] - 1), (c[0], r[1] - 1)]
        edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in pts)
        return (f"<roi><imageZposition>{z0 + thickness * k:.3f}</imageZposition><imageSOP_UID>{sops[k]}"
                f"</imageSOP_UID><inclusion>TRUE</inclusion>{edges}</roi>")

    def nodule(nid: str, malignancy: int, r: tuple[int, int], c: tuple[int, int], ks: range) -> str:
        chars = f"<characteristics><subtlety>4</subtlety><malignancy>{malignancy}</malignancy></characteristics>"
        return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{chars}{''.join(roi(k, r, c) for k in ks)}" \
               f"</unblindedReadNodule>"

    small = (f"<unblindedReadNodule><noduleID>s1</noduleID><roi><imageZposition>{z0 + thickness * 9:.3f}"
             f"</imageZposition><imageSOP_UID>{sops[9]}</imageSOP_UID><inclusion>TRUE</inclusion>"
             f"<edgeMap><xCoord>5</xCoord><yCoord>20</yCoord></edgeMap></roi></unblindedReadNodule>")
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<LidcReadMessage xmlns="{LIDC_NS}" uid="demo">'
           f"<ResponseHeader><StudyInstanceUID>{study_uid}</StudyInstanceUID>"
           f"<SeriesInstanceUid>{series_uid}</SeriesInstanceUid></ResponseHeader>"
           f"<readingSession><servicingRadiologistID>anon1</servicingRadiologistID>"
           f"{nodule('n1', 4, nod_rows, nod_cols, range(*nod_slices))}</readingSession>"
           f"<readingSession><servicingRadiologistID>anon2</servicingRadiologistID>"
           f"{nodule('IL057', 3, (nod_rows[0], nod_rows[1] + 2), nod_cols, range(nod_slices[0], nod_slices[1] + 1))}"
           f"</readingSession>"
           f"<readingSession><servicingRadiologistID>anon3</servicingRadiologistID>{small}</readingSession>"
           f"</LidcReadMessage>\n")
    (series_dir / "069.xml").write_text(xml, encoding="utf-8")
    return {"series_uid": series_uid, "rows": nod_rows, "cols": nod_cols, "slices": nod_slices,
            "depth": depth, "z0": z0, "thickness": thickness}


# --------------------------------------------------------------------------- all


def write_demo(raw_root: Path) -> None:
    """Write a small case of every volumetric source under ``raw_root/<source>/``."""
    raw_root = Path(raw_root)
    write_msd(raw_root / "msd")
    write_brats(raw_root / "brats")
    write_kits(raw_root / "kits", "19")
    write_lidc(raw_root / "lidc_idri")
    write_totalsegmentator(raw_root / "totalsegmentator")
