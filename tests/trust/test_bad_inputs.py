"""A corpus of bad inputs, each planted beside good ones in a source's native layout.

Every case must end in a quarantine row with its specific reason (or, for a whole label file that is
unusable, a LabelFileError naming file and line); the run finishes, counts reconcile, and every good
item is still there. The last test plants the whole corpus at once and publishes a release.
"""

from __future__ import annotations

import csv
import json
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo.dicom_fixtures import chest_phantom, make_cxr_dicom, write_png
from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.registry import get_source
from shardsmith.staging.runner import run_source

SIZE = 64
VINDR_HEADER = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
VINDR_GOOD = {"good0000normal": None, "good0001cardio": [8.0, 10.0, 40.0, 50.0]}
NIH_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
NIH_GOOD = {"00000001_000.png": "Cardiomegaly", "00000002_000.png": "No Finding"}
SIIM_GOOD = {"1.2.276.0.7230010.3.1.4.1.1.1": "-1"}


@pytest.fixture(autouse=True)
def _serial(monkeypatch):
    """Tiny inputs: decode in this process (no worker pool start-up per case)."""
    monkeypatch.setenv("SHARDSMITH_WORKERS", "1")
    monkeypatch.delenv("SHARDSMITH_ALLOW_BURNED_IN", raising=False)


# ------------------------------------------------------------------------------- good layouts
def _dicom(path: Path, **kw) -> Path:
    return make_cxr_dicom(path, rows=SIZE, columns=SIZE, bits_stored=8, patient_id=f"P-{path.stem}",
                          **kw)


def _vindr_rows(root: Path, rows: list[list[str]]) -> None:
    path = root / "train.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(VINDR_HEADER)
        w.writerows(rows)


def vindr_good(root: Path) -> list[str]:
    for image_id, box in VINDR_GOOD.items():
        _dicom(root / "train" / f"{image_id}.dicom")
        if box is None:
            _vindr_rows(root, [[image_id, "No finding", "14", f"R{i}", "", "", "", ""] for i in (1, 2, 3)])
        else:
            _vindr_rows(root, [[image_id, "Cardiomegaly", "3", "R1", *map(str, box)]])
    return list(VINDR_GOOD)


def _nih_rows(root: Path, rows: list[list[str]]) -> None:
    path = root / "Data_Entry_2017_v2020.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        if new:
            fh.write(NIH_HEADER + "\r\n")
        csv.writer(fh).writerows(rows)


def _nih_entry(image: str, labels: str, patient: str) -> list[str]:
    return [image, labels, "0", patient, "50", "M", "PA", "1024", "1024", "0.14", "0.14"]


def _nih_boxes(root: Path, rows: list[list[str]]) -> None:
    path = root / "BBox_List_2017.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        if new:
            fh.write("Image Index,Finding Label,Bbox [x,y,w,h],,,\r\n")
        csv.writer(fh).writerows(rows)


def _nih_png(root: Path, name: str) -> Path:
    return write_png(root / "images_001" / "images" / name, chest_phantom(SIZE, SIZE, 8).astype(np.uint8))


def nih_good(root: Path) -> list[str]:
    for i, (image, labels) in enumerate(NIH_GOOD.items()):
        _nih_png(root, image)
        _nih_rows(root, [_nih_entry(image, labels, str(i + 1))])
    _nih_boxes(root, [["00000001_000.png", "Cardiomegaly", "300", "400", "200", "150"]])
    return list(NIH_GOOD)


def _siim_dicom(root: Path, uid: str, **kw) -> Path:
    study, series = f"{uid}.9.1", f"{uid}.9.2"  # nested Study/Series/SOP dirs named by UIDs
    return _dicom(root / "dicom-images-train" / study / series / f"{uid}.dcm", sop_uid=uid, study_uid=study,
                  series_uid=series, modality="CR")


def _siim_rows(root: Path, rows: list[list[str]]) -> None:
    path = root / "train-rle.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        if new:
            fh.write("ImageId, EncodedPixels\n")
        csv.writer(fh).writerows(rows)


def siim_good(root: Path) -> list[str]:
    for uid, rle in SIIM_GOOD.items():
        _siim_dicom(root, uid)
        _siim_rows(root, [[uid, rle]])
    return list(SIIM_GOOD)


def chestx_good(root: Path) -> list[str]:
    items = [{"file_name": "36200.png", "syms": [], "boxes": [], "polygons": []}]
    root.mkdir(parents=True, exist_ok=True)
    (root / "ChestX_Det_train.json").write_text(json.dumps(items))
    with zipfile.ZipFile(root / "train_data.zip", "w") as zf:
        zf.writestr("train_data/36200.png", _png_bytes())
    return ["36200.png"]


def _png_bytes() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", chest_phantom(SIZE, SIZE, 8).astype(np.uint8))
    assert ok
    return buf.tobytes()


def msd_good(root: Path) -> list[str]:
    from shardsmith.demo.volumes_demo import write_msd

    write_msd(root)
    return ["Task01_BrainTumour/BRATS_001"]


GOOD: dict[str, Callable[[Path], list[str]]] = {
    "vindr_cxr": vindr_good, "nih_cxr14": nih_good, "siim_acr": siim_good, "chestx_det": chestx_good,
    "msd": msd_good,
}


# ------------------------------------------------------------------------------- bad inputs
def _vindr_image(root: Path, uid: str, data: bytes | None = None, **kw) -> Path:
    path = root / "train" / f"{uid}.dicom"
    if data is None:
        _dicom(path, **kw)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    _vindr_rows(root, [[uid, "No finding", "14", f"R{i}", "", "", "", ""] for i in (1, 2, 3)])
    return path


def truncated_dicom(root: Path, uid: str) -> None:
    path = _vindr_image(root, uid)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def empty_dicom(root: Path, uid: str) -> None:
    _vindr_image(root, uid, data=b"")


def png_named_dicom(root: Path, uid: str) -> None:
    _vindr_image(root, uid, data=_png_bytes())


def dicom_without_pixels(root: Path, uid: str) -> None:
    _vindr_image(root, uid, omit_pixel_data=True)


def dicom_unsupported_syntax(root: Path, uid: str) -> None:
    import pydicom
    from pydicom.encaps import encapsulate

    path = _vindr_image(root, uid)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video: no pixel plugin decodes it
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)


def dicom_burned_in(root: Path, uid: str) -> None:
    _vindr_image(root, uid, burned_in=True)


def garbage_dicom(root: Path, uid: str) -> None:
    _vindr_image(root, uid, data=b"\x00" * 128 + b"DICM" + bytes(range(7, 71)))  # preamble, then junk


def vindr_unknown_label(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Dragon scales", "99", "R1", "1", "1", "5", "5"]])


def vindr_box_outside(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "10", "10", str(SIZE * 3), "40"]])


def vindr_box_degenerate(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "40", "10", "20", "40"]])


def vindr_box_not_numeric(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "ten", "10", "20", "40"]])


def vindr_label_without_image(root: Path, uid: str) -> None:
    _vindr_rows(root, [[uid, "No finding", "14", "R1", "", "", "", ""]])


def vindr_image_without_label(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")


def vindr_symlink_loop(root: Path, uid: str) -> None:
    train = root / "train"
    train.mkdir(parents=True, exist_ok=True)
    (train / f"{uid}.dicom").symlink_to(f"{uid}.dicom")  # a link to itself: ELOOP on open
    (train / "loop").symlink_to(".", target_is_directory=True)  # a directory loop: must not hang a scan
    (root / "loop").symlink_to("..", target_is_directory=True)
    _vindr_rows(root, [[uid, "No finding", "14", f"R{i}", "", "", "", ""] for i in (1, 2, 3)])


def nih_corrupt_png(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    data = bytearray(_png_bytes())
    rng = np.random.default_rng(7)
    data[40:-20] = rng.integers(0, 256, len(data) - 60, dtype=np.uint8).tobytes()  # keep signature and IEND
    path = root / "images_001" / "images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    _nih_rows(root, [_nih_entry(name, "No Finding", "77")])


def break_deflate(png: bytes) -> bytes:
    """``png`` with one byte of its first IDAT body flipped and that chunk's CRC recomputed: every
    chunk checks out, only inflating the image data finds the damage."""
    data, pos = bytearray(png), 8
    while data[pos + 4:pos + 8] != b"IDAT":
        pos += 12 + int.from_bytes(data[pos:pos + 4], "big")
    length = int.from_bytes(data[pos:pos + 4], "big")
    data[pos + 8 + length // 2] ^= 0xFF
    data[pos + 8 + length:pos + 12 + length] = zlib.crc32(data[pos + 4:pos + 8 + length]).to_bytes(4, "big")
    return bytes(data)


def nih_png_broken_deflate(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    path = _nih_png(root, name)
    path.write_bytes(break_deflate(path.read_bytes()))
    _nih_rows(root, [_nih_entry(name, "No Finding", "86")])


def nih_blank_png(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    write_png(root / "images_001" / "images" / name, np.zeros((48, 80), np.uint8))
    _nih_rows(root, [_nih_entry(name, "No Finding", "87")])


def vindr_blank_dicom(root: Path, uid: str) -> None:
    _vindr_image(root, uid, pixels=np.full((96, 56), 200, np.uint16))


def nih_truncated_png(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    path = _nih_png(root, name)
    path.write_bytes(path.read_bytes()[:-30])
    _nih_rows(root, [_nih_entry(name, "No Finding", "78")])


def nih_unknown_label(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "Dragon Pox", "79")])


def nih_contradictory(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "No Finding|Mass", "80")])


def nih_box_outside(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "Mass", "81")])
    _nih_boxes(root, [[name, "Mass", "900", "900", "400", "300"]])  # 1024-px space: ends at 1300


def nih_box_without_entry(root: Path, uid: str) -> None:
    _nih_boxes(root, [[f"{uid}.png", "Mass", "10", "10", "40", "30"]])


def nih_missing_column(root: Path, uid: str) -> None:
    (root / "Data_Entry_2017_v2020.csv").write_text("Image Index,Patient ID\r\nx.png,1\r\n")


def siim_rle_past_image(root: Path, uid: str) -> None:
    _siim_dicom(root, uid)
    _siim_rows(root, [[uid, f" {SIZE * SIZE - 10} 50"]])  # the run ends 40 px past the last pixel


def siim_rle_malformed(root: Path, uid: str) -> None:
    _siim_dicom(root, uid)
    _siim_rows(root, [[uid, " 10 20 30"]])


def siim_truncated(root: Path, uid: str) -> None:
    path = _siim_dicom(root, uid)
    path.write_bytes(path.read_bytes()[:300])
    _siim_rows(root, [[uid, "-1"]])


def chestx_zip_slip(root: Path, uid: str) -> None:
    with zipfile.ZipFile(root / "train_data.zip", "a") as zf:
        zf.writestr(f"train_data/../../{uid}.png", _png_bytes())


def chestx_corrupt_json(root: Path, uid: str) -> None:
    (root / "ChestX_Det_test.json").write_text('[{"file_name": "1.png", "syms": []},\n {"file_name": ')


def chestx_box_outside(root: Path, uid: str) -> None:
    items = json.loads((root / "ChestX_Det_train.json").read_text())
    items.append({"file_name": f"{uid}.png", "syms": ["Nodule"], "boxes": [[900, 900, 1500, 1400]],
                  "polygons": [[[900, 900], [1500, 900], [1500, 1400]]]})
    (root / "ChestX_Det_train.json").write_text(json.dumps(items))
    with zipfile.ZipFile(root / "train_data.zip", "a") as zf:
        zf.writestr(f"train_data/{uid}.png", _png_bytes())


def _msd_lung(root: Path, image: np.ndarray | None = None, label: np.ndarray | None = None) -> None:
    import nibabel as nib

    from shardsmith.demo.volumes_demo import DEFAULT_AFFINE

    task = root / "Task06_Lung"
    if image is not None:
        nib.save(nib.Nifti1Image(image, DEFAULT_AFFINE), str(task / "imagesTr" / "lung_001.nii.gz"))
    if label is not None:
        nib.save(nib.Nifti1Image(label, DEFAULT_AFFINE), str(task / "labelsTr" / "lung_001.nii.gz"))


def msd_nan(root: Path, uid: str) -> None:
    import nibabel as nib

    img = np.asarray(nib.load(str(root / "Task06_Lung" / "imagesTr" / "lung_001.nii.gz")).dataobj).astype(np.float32)
    img[3, 4, 5] = np.nan
    img[1, 1, 1] = np.inf
    _msd_lung(root, image=img)


def msd_label_shape(root: Path, uid: str) -> None:
    _msd_lung(root, label=np.zeros((16, 32, 12), dtype=np.uint8))


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    plant: Callable[[Path, str], None]
    reason: str | None  # expected quarantine reason; None: the whole label file is refused
    error: str | None = None  # for reason None: text the LabelFileError must contain
    native: bool = True  # the quarantine row names the planted id
    solo: bool = False  # rewrites a whole label file: not combined with other cases in one tree


CASES = [
    Case("truncated_dicom", "vindr_cxr", truncated_dicom, "truncated"),
    Case("empty_dicom", "vindr_cxr", empty_dicom, "empty_file"),
    Case("png_named_dicom", "vindr_cxr", png_named_dicom, "not_dicom"),
    Case("garbage_after_dicm_preamble", "vindr_cxr", garbage_dicom, "truncated"),
    Case("dicom_without_pixel_data", "vindr_cxr", dicom_without_pixels, "no_pixel_data"),
    Case("dicom_unsupported_transfer_syntax", "vindr_cxr", dicom_unsupported_syntax, "unsupported_transfer_syntax"),
    Case("dicom_burned_in_annotation", "vindr_cxr", dicom_burned_in, "burned_in_annotation"),
    Case("vindr_unknown_label", "vindr_cxr", vindr_unknown_label, "unknown_label"),
    Case("vindr_box_outside_image", "vindr_cxr", vindr_box_outside, "box_outside_image"),
    Case("vindr_box_degenerate", "vindr_cxr", vindr_box_degenerate, "box_degenerate"),
    Case("vindr_box_not_numeric", "vindr_cxr", vindr_box_not_numeric, "box_not_numeric"),
    Case("vindr_label_without_image", "vindr_cxr", vindr_label_without_image, "image_missing"),
    Case("vindr_image_without_label", "vindr_cxr", vindr_image_without_label, "unlabelled_image"),
    Case("vindr_symlink_loop", "vindr_cxr", vindr_symlink_loop, "symlink_loop"),
    Case("nih_corrupt_png", "nih_cxr14", nih_corrupt_png, "decode_failed"),
    Case("nih_truncated_png", "nih_cxr14", nih_truncated_png, "truncated"),
    Case("nih_png_broken_deflate_right_crcs", "nih_cxr14", nih_png_broken_deflate, "decode_failed"),
    Case("nih_blank_png", "nih_cxr14", nih_blank_png, "blank_image"),
    Case("vindr_blank_dicom", "vindr_cxr", vindr_blank_dicom, "blank_image"),
    Case("nih_unknown_label", "nih_cxr14", nih_unknown_label, "unknown_label"),
    Case("nih_contradictory_labels", "nih_cxr14", nih_contradictory, "contradictory_labels"),
    Case("nih_box_outside_image", "nih_cxr14", nih_box_outside, "box_outside_image"),
    Case("nih_box_without_entry", "nih_cxr14", nih_box_without_entry, "box_without_entry"),
    Case("nih_csv_missing_columns", "nih_cxr14", nih_missing_column, None, "missing required column"),
    Case("siim_rle_past_image", "siim_acr", siim_rle_past_image, "rle_out_of_bounds"),
    Case("siim_rle_malformed", "siim_acr", siim_rle_malformed, "rle_malformed"),
    Case("siim_truncated_dicom", "siim_acr", siim_truncated, "truncated"),
    Case("chestx_det_zip_slip", "chestx_det", chestx_zip_slip, "unsafe_archive_member", native=False),
    Case("chestx_det_polygon_outside_image", "chestx_det", chestx_box_outside, "polygon_outside_image"),
    Case("chestx_det_malformed_json", "chestx_det", chestx_corrupt_json, None, "line 2"),
    Case("msd_nifti_nan_inf", "msd", msd_nan, "non_finite_voxels", native=False),
    Case("msd_label_shape_mismatch", "msd", msd_label_shape, "label_shape_mismatch", native=False),
]


# ------------------------------------------------------------------------------- more sources
def _demo_good(write: Callable[[Path], None], source: str) -> Callable[[Path], list[str]]:
    """A source's demo layout as the good rows; the good ids are what its catalog accepts."""

    def good(root: Path) -> list[str]:
        write(root)
        src = get_source(source)
        return [src._public_id(e.item.native_id) for e in src.catalog(root, checksum=False).entries]

    return good


def _lazy(module: str, name: str) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        import importlib

        getattr(importlib.import_module(module), name)(root)

    return write


GOOD.update({
    "rsna_pneumonia": _demo_good(_lazy("shardsmith.demo.cxr_more", "write_rsna"), "rsna_pneumonia"),
    "chexpert": _demo_good(_lazy("shardsmith.demo.cxr_more", "write_chexpert"), "chexpert"),
    "ms_cxr": _demo_good(_lazy("shardsmith.demo.cxr_more", "write_ms_cxr"), "ms_cxr"),
    "brats": _demo_good(_lazy("shardsmith.demo.volumes_demo", "write_brats"), "brats"),
    "kits": _demo_good(_lazy("shardsmith.demo.volumes_demo", "write_kits"), "kits"),
    "totalsegmentator": _demo_good(_lazy("shardsmith.demo.volumes_demo", "write_totalsegmentator"),
                                   "totalsegmentator"),
    "lidc_idri": _demo_good(_lazy("shardsmith.demo.volumes_demo", "write_lidc"), "lidc_idri"),
})


def _append_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("a", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _reencode(path: Path, encoding: str) -> None:
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))


def _set_dicom(path: Path, **tags) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)


# VinDr: burned-in tag spelled loosely or oddly, cut and padded rows, broken archives and encodings
def burned_in_lowercase(root: Path, uid: str) -> None:
    _set_dicom(_vindr_image(root, uid), BurnedInAnnotation=" yes ")


def burned_in_odd_value(root: Path, uid: str) -> None:
    _set_dicom(_vindr_image(root, uid), BurnedInAnnotation="MAYBE")


def vindr_cut_row(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "8", "10"]])  # a truncated file's last line


def vindr_extra_cell(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "8", "10", "40", "50", "oops"]])


def vindr_cut_inside_last_cell(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "8", "10", "40", "50.0"]])
    path = root / "train.csv"
    path.write_bytes(path.read_bytes()[:-4])  # "50.0\r\n" -> "50": every cell there, one of them wrong


def vindr_csv_utf16_without_bom(root: Path, uid: str) -> None:
    path = root / "train.csv"
    path.write_bytes(path.read_text().encode("utf-16-le"))


def vindr_csv_bad_zip(root: Path, uid: str) -> None:
    path = root / "train.csv"
    (root / "train.csv.zip").write_bytes(b"PK\x03\x04" + path.read_bytes()[:40])
    path.unlink()


# NIH: encodings a spreadsheet produces, a corrupted UTF-8 byte, a cut row, a cut gzip
def nih_utf16_with_bom(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "Dragon Pox", "82")])
    _reencode(root / "Data_Entry_2017_v2020.csv", "utf-16")  # read as text: the bad row is found


def nih_latin1(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "Neumonía", "83")])
    _reencode(root / "Data_Entry_2017_v2020.csv", "latin-1")


def nih_utf8_corrupted_byte(root: Path, uid: str) -> None:
    path = root / "Data_Entry_2017_v2020.csv"
    _nih_rows(root, [_nih_entry(f"{uid}.png", "Mass", "Zoë")])
    path.write_bytes(path.read_bytes() + b"x.png,Mass,0,1,50,M,PA,1,1,1,1\r\n".replace(b"Mass", b"M\xe9ss"))


def nih_cut_row(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [[name, "Mass", "0", "84"]])


def nih_box_not_numeric(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "Mass", "85")])
    _nih_boxes(root, [[name, "Mass", "ten", "10", "40", "30"]])


def nih_truncated_gzip(root: Path, uid: str) -> None:
    import gzip

    path = root / "Data_Entry_2017_v2020.csv"
    data = gzip.compress(path.read_bytes() * 20)
    (root / "Data_Entry_2017_v2020.csv.gz").write_bytes(data[: len(data) * 2 // 3])
    path.unlink()


# SIIM
def siim_contradictory(root: Path, uid: str) -> None:
    _siim_dicom(root, uid)
    _siim_rows(root, [[uid, "-1"], [uid, " 10 20"]])


def siim_cut_row(root: Path, uid: str) -> None:
    _siim_dicom(root, uid)
    _siim_rows(root, [[uid]])


# ChestX-Det
def _chestx_item(root: Path, item: dict) -> None:
    items = json.loads((root / "ChestX_Det_train.json").read_text())
    (root / "ChestX_Det_train.json").write_text(json.dumps([*items, item]))


def chestx_misaligned(root: Path, uid: str) -> None:
    _chestx_item(root, {"file_name": f"{uid}.png", "syms": ["Nodule"], "boxes": [], "polygons": []})


def chestx_unknown_label(root: Path, uid: str) -> None:
    _chestx_item(root, {"file_name": f"{uid}.png", "syms": ["Dragon"], "boxes": [[1, 1, 9, 9]], "polygons": [[]]})


# RSNA
def _rsna(root: Path, uid: str, label_rows: list[list[str]], cls: str | None, image: bool = True) -> None:
    if image:
        make_cxr_dicom(root / "stage_2_train_images" / f"{uid}.dcm", rows=SIZE, columns=SIZE, bits_stored=8,
                       modality="CR", patient_id=uid)
    _append_csv(root / "stage_2_train_labels.csv", label_rows)
    if cls is not None:
        _append_csv(root / "stage_2_detailed_class_info.csv", [[uid, cls]])


def rsna_negative_width(root: Path, uid: str) -> None:
    _rsna(root, uid, [[uid, "300", "300", "-120", "200", "1"]], "Lung Opacity")


def rsna_bad_target(root: Path, uid: str) -> None:
    _rsna(root, uid, [[uid, "", "", "", "", "2"]], None)


def rsna_box_on_negative(root: Path, uid: str) -> None:
    _rsna(root, uid, [[uid, "10", "10", "20", "20", "0"]], "Normal")


def rsna_class_contradicts_target(root: Path, uid: str) -> None:
    _rsna(root, uid, [[uid, "", "", "", "", "0"]], "Lung Opacity")


def rsna_cut_row(root: Path, uid: str) -> None:
    _rsna(root, uid, [[uid, "10", "10"]], None)


# CheXpert
def _chexpert_row(root: Path, uid: str, values: dict[str, str], path: str | None = None) -> None:
    from shardsmith.demo.cxr_more import CHEXPERT_HEADER

    cells = dict.fromkeys(CHEXPERT_HEADER[5:], "") | values
    rel = path or f"CheXpert-v1.0-small/train/patient99999/study1/{uid}_frontal.jpg"
    _append_csv(root / "CheXpert-v1.0-small" / "train.csv",
                [[rel, "Male", "50", "Frontal", "AP", *(cells[c] for c in CHEXPERT_HEADER[5:])]])


def chexpert_non_numeric_cell(root: Path, uid: str) -> None:
    _chexpert_row(root, uid, {"Edema": "yes"})


def chexpert_bad_path(root: Path, uid: str) -> None:
    _chexpert_row(root, uid, {"Edema": "1.0"}, path=f"CheXpert-v1.0-small/train/{uid}.jpg")


def chexpert_contradictory(root: Path, uid: str) -> None:
    _chexpert_row(root, uid, {"No Finding": "1.0", "Edema": "1.0"})


# MS-CXR
MS_CXR_COLS = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width",
               "image_height", "split"]


def _ms_cxr_row(root: Path, uid: str, category: str = "Pneumonia", box=(10.0, 10.0, 40.0, 40.0),
                size=("384", "320"), image: bool = False) -> None:
    rel = f"files/p10/p10999999/s59999999/{uid}.jpg"
    if image:
        from shardsmith.demo.cxr_more import _jpeg, _phantom8

        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_jpeg(_phantom8(320, 384, seed=9)))
    _append_csv(root / "MS_CXR_Local_Alignment_v1.1.0.csv",
                [[uid, category, "a phrase", rel, *map(str, box), *size, "train"]])


def ms_cxr_box_outside(root: Path, uid: str) -> None:
    _ms_cxr_row(root, uid, box=(350.0, 100.0, 100.0, 50.0), image=True)  # ends at x=450 of 384


def ms_cxr_unknown_label(root: Path, uid: str) -> None:
    _ms_cxr_row(root, uid, category="Dragon scales")


def ms_cxr_size_not_numeric(root: Path, uid: str) -> None:
    _ms_cxr_row(root, uid, size=("wide", "320"))


def ms_cxr_cut_row(root: Path, uid: str) -> None:
    _append_csv(root / "MS_CXR_Local_Alignment_v1.1.0.csv", [[uid, "Pneumonia", "a phrase"]])


# MSD
def _msd_index(root: Path, edit: Callable[[dict], None]) -> None:
    path = root / "Task06_Lung" / "dataset.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def msd_nan_affine(root: Path, uid: str) -> None:
    import gzip
    import struct

    path = root / "Task06_Lung" / "imagesTr" / "lung_001.nii.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    nan = struct.pack("<f", float("nan"))
    for offset in (280, 296):  # srow_x[0] and srow_y[0] of the NIfTI-1 header
        raw[offset:offset + 4] = nan
    raw[76 + 4:76 + 8] = nan  # pixdim[1]: the qform route is broken too
    path.write_bytes(gzip.compress(bytes(raw)))


def msd_label_value_outside_map(root: Path, uid: str) -> None:
    import nibabel as nib

    lab = np.asarray(nib.load(str(root / "Task06_Lung" / "labelsTr" / "lung_001.nii.gz")).dataobj).copy()
    lab[2, 2, 2] = 7  # dataset.json defines 0 and 1 only
    _msd_lung(root, label=lab.astype(np.uint8))


def msd_listed_image_missing(root: Path, uid: str) -> None:
    _msd_index(root, lambda m: m["training"].append({"image": "./imagesTr/lung_404.nii.gz",
                                                      "label": "./labelsTr/lung_404.nii.gz"}))


def msd_unsafe_path(root: Path, uid: str) -> None:
    _msd_index(root, lambda m: m["training"].append({"image": "../../../etc/lung_999.nii.gz", "label": None}))


def msd_truncated_index(root: Path, uid: str) -> None:
    path = root / "Task06_Lung" / "dataset.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=1)[:-60])


# BraTS
def _brats_copy(root: Path, new: str, skip: str | None = None) -> Path:
    import shutil

    src = root / "BraTS2021_00000"
    dst = root / new
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if skip and f.name.endswith(f"_{skip}.nii.gz"):
            continue
        shutil.copy(f, dst / f.name.replace("BraTS2021_00000", new))
    return dst


def brats_missing_sequence(root: Path, uid: str) -> None:
    _brats_copy(root, "BraTS2021_09901", skip="flair")


def brats_label_shape(root: Path, uid: str) -> None:
    from shardsmith.demo.volumes_demo import DEFAULT_AFFINE, write_nifti

    case = _brats_copy(root, "BraTS2021_09902")
    write_nifti(case / "BraTS2021_09902_seg.nii.gz", np.zeros((16, 32, 12), dtype=np.uint8), DEFAULT_AFFINE)


# KiTS
def kits_missing_imaging(root: Path, uid: str) -> None:
    import shutil

    case = root / "data" / "case_00901"
    case.mkdir(parents=True)
    shutil.copy(root / "data" / "case_00000" / "segmentation.nii.gz", case / "segmentation.nii.gz")


def kits_label_outside_map(root: Path, uid: str) -> None:
    import shutil

    import nibabel as nib

    src, case = root / "data" / "case_00000", root / "data" / "case_00902"
    case.mkdir(parents=True)
    shutil.copy(src / "imaging.nii.gz", case / "imaging.nii.gz")
    seg = nib.load(str(src / "segmentation.nii.gz"))
    arr = np.asarray(seg.dataobj).copy()
    arr[arr == 2] = 9  # KiTS19 defines 1 kidney and 2 tumour
    nib.save(nib.Nifti1Image(arr, seg.affine, seg.header), str(case / "segmentation.nii.gz"))


def kits_json_truncated(root: Path, uid: str) -> None:
    path = root / "data" / "kits.json"
    path.write_text(path.read_text()[:-30])


# TotalSegmentator
def _ts_case(root: Path, case: str) -> Path:
    import shutil

    shutil.copytree(root / "s0000", root / case)
    return root / case


def ts_unknown_structure(root: Path, uid: str) -> None:
    import shutil

    case = _ts_case(root, "s0901")
    shutil.copy(case / "segmentations" / "spleen.nii.gz", case / "segmentations" / "dragon_heart.nii.gz")


def ts_mask_not_binary(root: Path, uid: str) -> None:
    import nibabel as nib

    case = _ts_case(root, "s0902")
    img = nib.load(str(case / "segmentations" / "spleen.nii.gz"))
    arr = np.asarray(img.dataobj).copy()
    arr[arr == 1] = 2
    nib.save(nib.Nifti1Image(arr, img.affine, img.header), str(case / "segmentations" / "spleen.nii.gz"))


def ts_meta_cut_row(root: Path, uid: str) -> None:
    with (root / "meta.csv").open("a") as fh:
        fh.write("s0903;41\n")


# LIDC-IDRI: a second series of the demo, under its own patient and series UID, then broken
def _lidc_series(root: Path, patient: str) -> Path:
    import tempfile

    import pydicom

    from shardsmith.demo.volumes_demo import write_lidc

    with tempfile.TemporaryDirectory() as tmp:
        old = write_lidc(Path(tmp))["series_uid"]
        new = str(pydicom.uid.generate_uid(entropy_srcs=[old, patient]))
        series = root / patient / "study" / new
        series.mkdir(parents=True)
        for f in Path(tmp).rglob("*.dcm"):
            ds = pydicom.dcmread(f)
            ds.SeriesInstanceUID, ds.PatientID = new, patient
            ds.save_as(series / f.name, enforce_file_format=True)
        xml = next(Path(tmp).rglob("*.xml"))
        (series / xml.name).write_text(xml.read_text().replace(old, new))
    return series


def lidc_missing_slice(root: Path, uid: str) -> None:
    (_lidc_series(root, uid) / "000011.dcm").unlink()  # z index 1: no contour there, just a gap


def lidc_mixed_orientation(root: Path, uid: str) -> None:
    _set_dicom(_lidc_series(root, uid) / "000002.dcm", ImageOrientationPatient=[0, 1, 0, 0, 0, -1])


def lidc_xml_bad_number(root: Path, uid: str) -> None:
    xml = next(_lidc_series(root, uid).glob("*.xml"))
    xml.write_text(xml.read_text().replace("<xCoord>18</xCoord>", "<xCoord>eighteen</xCoord>", 1))


CASES += [
    Case("dicom_burned_in_lowercase_padded", "vindr_cxr", burned_in_lowercase, "burned_in_annotation"),
    Case("dicom_burned_in_odd_value", "vindr_cxr", burned_in_odd_value, "burned_in_annotation_unreadable"),
    Case("vindr_cut_row", "vindr_cxr", vindr_cut_row, "too_few_cells"),
    Case("vindr_extra_cell", "vindr_cxr", vindr_extra_cell, "too_many_cells"),
    Case("vindr_file_cut_inside_last_cell", "vindr_cxr", vindr_cut_inside_last_cell, "unterminated_last_row",
         solo=True),
    Case("vindr_csv_utf16_without_bom", "vindr_cxr", vindr_csv_utf16_without_bom, None, "NUL", solo=True),
    Case("vindr_csv_bad_zip", "vindr_cxr", vindr_csv_bad_zip, None, "corrupt archive", solo=True),
    Case("nih_csv_utf16_with_bom", "nih_cxr14", nih_utf16_with_bom, "unknown_label", solo=True),
    Case("nih_csv_latin1", "nih_cxr14", nih_latin1, "unknown_label", solo=True),
    Case("nih_csv_corrupted_utf8_byte", "nih_cxr14", nih_utf8_corrupted_byte, None, "not valid UTF-8", solo=True),
    Case("nih_cut_row", "nih_cxr14", nih_cut_row, "too_few_cells"),
    Case("nih_box_not_numeric", "nih_cxr14", nih_box_not_numeric, "box_not_numeric"),
    Case("nih_csv_truncated_gzip", "nih_cxr14", nih_truncated_gzip, None, "truncated or corrupt archive", solo=True),
    Case("siim_contradictory_rows", "siim_acr", siim_contradictory, "contradictory_labels"),
    Case("siim_cut_row", "siim_acr", siim_cut_row, "too_few_cells"),
    Case("chestx_det_misaligned_lists", "chestx_det", chestx_misaligned, "misaligned_lists"),
    Case("chestx_det_unknown_label", "chestx_det", chestx_unknown_label, "unknown_label"),
    Case("rsna_negative_width", "rsna_pneumonia", rsna_negative_width, "box_degenerate", native=False),
    Case("rsna_bad_target", "rsna_pneumonia", rsna_bad_target, "bad_target", native=False),
    Case("rsna_box_on_negative", "rsna_pneumonia", rsna_box_on_negative, "box_on_negative", native=False),
    Case("rsna_class_contradicts_target", "rsna_pneumonia", rsna_class_contradicts_target, "contradictory_labels",
         native=False),
    Case("rsna_cut_row", "rsna_pneumonia", rsna_cut_row, "too_few_cells", native=False),
    Case("chexpert_non_numeric_label_cell", "chexpert", chexpert_non_numeric_cell, "bad_value"),
    Case("chexpert_bad_path", "chexpert", chexpert_bad_path, "bad_path"),
    Case("chexpert_contradictory", "chexpert", chexpert_contradictory, "contradictory_labels"),
    Case("ms_cxr_box_outside_image", "ms_cxr", ms_cxr_box_outside, "box_outside_image"),
    Case("ms_cxr_unknown_label", "ms_cxr", ms_cxr_unknown_label, "unknown_label"),
    Case("ms_cxr_size_not_numeric", "ms_cxr", ms_cxr_size_not_numeric, "bad_size"),
    Case("ms_cxr_cut_row", "ms_cxr", ms_cxr_cut_row, "too_few_cells"),
    Case("msd_nifti_nan_affine", "msd", msd_nan_affine, "bad_affine", native=False),
    Case("msd_label_value_outside_map", "msd", msd_label_value_outside_map, "unknown_label_value", native=False),
    Case("msd_listed_image_missing", "msd", msd_listed_image_missing, "image_missing", native=False),
    Case("msd_path_leaves_root", "msd", msd_unsafe_path, "unsafe_path", native=False),
    Case("msd_dataset_json_truncated", "msd", msd_truncated_index, None, "not valid JSON"),
    Case("brats_missing_sequence", "brats", brats_missing_sequence, "sequence_missing", native=False),
    Case("brats_label_shape_mismatch", "brats", brats_label_shape, "label_shape_mismatch", native=False),
    Case("kits_case_without_imaging", "kits", kits_missing_imaging, "image_missing", native=False),
    Case("kits_label_value_outside_map", "kits", kits_label_outside_map, "unknown_label_value", native=False),
    Case("kits_json_truncated", "kits", kits_json_truncated, None, "not valid JSON"),
    Case("totalsegmentator_unknown_structure", "totalsegmentator", ts_unknown_structure, "unknown_label",
         native=False),
    Case("totalsegmentator_mask_not_binary", "totalsegmentator", ts_mask_not_binary, "label_not_binary",
         native=False),
    Case("totalsegmentator_meta_cut_row", "totalsegmentator", ts_meta_cut_row, None, "cells"),
    Case("lidc_series_missing_slice", "lidc_idri", lidc_missing_slice, "slice_missing"),
    Case("lidc_series_mixed_orientation", "lidc_idri", lidc_mixed_orientation, "mixed_orientation"),
    Case("lidc_xml_coordinate_not_a_number", "lidc_idri", lidc_xml_bad_number, "bad_label_file", native=False),
]


def _uid(case: Case) -> str:
    """A native id per case in the source's own id format (deterministic across runs)."""
    n = zlib.crc32(case.id.encode())
    if case.source == "siim_acr":
        return f"1.2.276.0.7230010.3.1.4.{n % 10**6}.{len(case.id)}"
    if case.source == "nih_cxr14":
        return f"{n % 10**8:08d}_000"
    return f"bad{case.id.replace('_', '')}"


def _run(settings: Settings, source: str):
    return run_source(settings, get_source(source))


def _quarantine(settings: Settings, source: str) -> list[dict]:
    return pq.read_table(settings.quarantine_dir(source) / "quarantine.parquet").to_pylist()


def _staged_ids(settings: Settings, source: str) -> set[str]:
    files = sorted(settings.staging_dir(source).glob("records*.parquet"))
    return {r for f in files for r in pq.read_table(f, columns=["native_id"])["native_id"].to_pylist()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_quarantined_and_good_rows_survive(case: Case, tmp_path: Path):
    settings = Settings(home=tmp_path)
    root = settings.raw_dir(case.source)
    good = GOOD[case.source](root)
    uid = _uid(case)
    case.plant(root, uid)
    if case.reason is None:
        with pytest.raises(LabelFileError) as err:
            _run(settings, case.source)
        msg = str(err.value)
        assert case.error in msg and "line" in msg and str(root) in msg, msg
        return
    counts = _run(settings, case.source)
    assert counts.reconciles, counts
    rows = _quarantine(settings, case.source)
    hits = [r for r in rows if r["reason"] == case.reason]
    assert hits, f"expected a {case.reason!r} quarantine row, got {[(r['reason'], r['detail']) for r in rows]}"
    for r in hits:
        assert r["stage"] in {"catalog", "labels", "decode", "harmonise"} and r["detail"]
        assert r["raw_path"] or r["native_id"]
    if case.native:
        assert any(uid in (r["native_id"] or "") + (r["raw_path"] or "") + r["detail"] for r in hits), hits
    staged = _staged_ids(settings, case.source)
    assert all(any(g in s for s in staged) for g in good), (good, staged)


def test_burned_in_allowed_when_configured(tmp_path: Path, monkeypatch):
    settings = Settings(home=tmp_path, allow_burned_in=True)
    root = settings.raw_dir("vindr_cxr")
    vindr_good(root)
    dicom_burned_in(root, "burnedin0001")
    counts = _run(settings, "vindr_cxr")
    assert counts.quarantined == 0 and "burnedin0001" in _staged_ids(settings, "vindr_cxr")


def test_blank_frames_of_two_sources_are_quarantined_and_join_no_patients(tmp_path: Path):
    """Two constant frames (NIH PNG 48x80 and VinDr DICOM 96x56, different patients, each beside a
    film of the same patient) used to get one fingerprint, one duplicate group and one split, and
    through the patient edges pulled the two patients' films together."""
    from shardsmith.identity.groups import find_groups, iter_parquet_batches

    settings = Settings(home=tmp_path)
    nih, vindr = settings.raw_dir("nih_cxr14"), settings.raw_dir("vindr_cxr")
    nih_good(nih)
    vindr_good(vindr)
    for name, pixels in (("00000177_000.png", chest_phantom(SIZE, SIZE, 8, seed=3).astype(np.uint8)),
                         ("00000177_001.png", np.zeros((48, 80), np.uint8))):
        write_png(nih / "images_001" / "images" / name, pixels)
        _nih_rows(nih, [_nih_entry(name, "No Finding", "177")])
    for image_id, pixels in (("film00blank0patient", None), ("blank0frame0patient", np.full((96, 56), 200, np.uint16))):
        make_cxr_dicom(vindr / "train" / f"{image_id}.dicom", rows=SIZE, columns=SIZE, bits_stored=8, seed=5,
                       pixels=pixels, patient_id="P-blank-frame")
        _vindr_rows(vindr, [[image_id, "No finding", "14", f"R{i}", "", "", "", ""] for i in (1, 2, 3)])
    for source, blank in (("nih_cxr14", "00000177_001.png"), ("vindr_cxr", "blank0frame0patient")):
        counts = _run(settings, source)
        assert counts.reconciles, counts
        rows = [r for r in _quarantine(settings, source) if r["reason"] == "blank_image"]
        assert len(rows) == 1 and blank in rows[0]["raw_path"] and rows[0]["stage"] == "decode", rows
        assert counts.records == counts.inputs - counts.quarantined
    staged = [f for s in ("nih_cxr14", "vindr_cxr") for f in sorted(settings.staging_dir(s).glob("records*.parquet"))]
    res = find_groups(iter_parquet_batches(staged))
    native = {r["record_id"]: r["native_id"] for f in staged
              for r in pq.read_table(f, columns=["record_id", "native_id"]).to_pylist()}
    group = {native[r]: g for r, g in zip(res.groups["record_id"].to_pylist(),
                                          res.groups["duplicate_group"].to_pylist(), strict=True)}
    assert not any("00000177_001" in n or n == "blank0frame0patient" for n in group)
    # the films of the two patients (other seeds than the good fixtures) stand alone: nothing joined them
    for film in (next(n for n in group if "00000177_000" in n), "film00blank0patient"):
        assert list(group.values()).count(group[film]) == 1, (film, group)


def test_an_exception_while_fingerprinting_quarantines_only_that_item(tmp_path: Path, monkeypatch):
    """The reduced decode and the fingerprint run inside the item's guard: an unexpected error there
    is one quarantine row (stage decode, reason fingerprint_failed), and the source still stages."""
    import shardsmith.identity.fingerprint as fingerprint

    real = fingerprint.fingerprint_pixels

    def failing_on_one_size(arr: np.ndarray):
        if arr.shape == (40, 72):
            raise RuntimeError("injected failure")
        return real(arr)

    monkeypatch.setattr(fingerprint, "fingerprint_pixels", failing_on_one_size)
    settings = Settings(home=tmp_path, workers=1)  # the patch lives in this process
    root = settings.raw_dir("nih_cxr14")
    good = nih_good(root)
    write_png(root / "images_001" / "images" / "00000188_000.png", chest_phantom(40, 72, 8).astype(np.uint8))
    _nih_rows(root, [_nih_entry("00000188_000.png", "No Finding", "188")])
    counts = _run(settings, "nih_cxr14")
    assert counts.reconciles and counts.quarantined == 1, counts
    (row,) = _quarantine(settings, "nih_cxr14")
    assert (row["stage"], row["reason"]) == ("decode", "fingerprint_failed"), row
    assert "RuntimeError: injected failure" in row["detail"] and "00000188_000" in row["raw_path"]
    staged = _staged_ids(settings, "nih_cxr14")
    assert all(any(g in s for s in staged) for g in good) and len(staged) == len(good)


def test_whole_corpus_still_publishes_the_good_rows(tmp_path: Path):
    """All per-item cases at once, then a release: it validates and carries exactly the good items."""
    from shardsmith.loaders import open_release
    from shardsmith.pipeline.releases import build_release

    settings = Settings(home=tmp_path)
    sources = ["vindr_cxr", "nih_cxr14", "siim_acr"]
    good = {s: GOOD[s](settings.raw_dir(s)) for s in sources}
    planted = [c for c in CASES if c.source in sources and c.reason is not None and not c.solo]
    for case in planted:
        case.plant(settings.raw_dir(case.source), _uid(case))
    for s in sources:
        counts = _run(settings, s)
        assert counts.reconciles
        reasons = {r["reason"] for r in _quarantine(settings, s)}
        assert {c.reason for c in planted if c.source == s} <= reasons
    result = build_release(settings, "medical", sources)
    rel = open_release(settings.releases, "medical")
    assert rel.verify().ok and rel.version == result.version
    published = set(rel.pandas("records", columns=["native_id"])["native_id"])
    expected = {g for s in sources for g in good[s]}
    assert expected <= published, "a good item was lost"
    assert not published - expected, f"a bad item was published: {published - expected}"


# ------------------------------------------------------------------------------- werewolf
def _season(raw: Path) -> Path:
    return raw / "werebench" / "Season_9"


def werebench_reversed_timestamp(raw: Path) -> None:
    d = _season(raw)
    (d / "02-GAME_CONFIG.py").write_text((d / "01-GAME_CONFIG.py").read_text())
    (d / "02.srt").write_text("1\n00:00:20,000 --> 00:00:19,000\n说话人 1: 时间倒着走\n\n"
                              "2\n00:00:21,000 --> 00:00:22,000\n说话人 2: 正常的一条\n")


def werebench_config_with_code(raw: Path) -> None:
    d = _season(raw)
    cfg = (d / "01-GAME_CONFIG.py").read_text()
    marker = raw / "PWNED"
    evil = f'__import__("pathlib").Path({str(marker)!r}).write_text("x")'
    (d / "03-GAME_CONFIG.py").write_text(cfg.replace("{", "{'pwn': " + evil + ", ", 1))
    (d / "03.srt").write_text((d / "01.srt").read_text(encoding="utf-8-sig"), encoding="utf-8")


def _video_game(raw: Path, name: str, samples: np.ndarray | None, empty: bool = False) -> None:
    from shardsmith.demo.werewolf_demo import DemoTurn, demo_sidecar, write_video

    d = raw / "werewolf_video"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.mp4"
    if empty:
        path.write_bytes(b"")
    else:
        write_video(path, samples)
    turns = [DemoTurn(0.2, 0.8, "host", "Night falls.", "night_1"), DemoTurn(1.0, 1.6, "1", "I am the seer.", "day_1")]
    (d / f"{name}.json").write_text(json.dumps(demo_sidecar(name, turns, True)))


def video_without_audio(raw: Path) -> None:
    _video_game(raw, "silent-game", None)


def zero_length_video(raw: Path) -> None:
    _video_game(raw, "empty-game", None, empty=True)


def _sidecar_game(raw: Path, name: str, edit: Callable[[dict], None] | None = None, text: str | None = None) -> None:
    """A video game whose sidecar is edited (or replaced by ``text``); the sidecar fails before any audio."""
    _video_game(raw, name, np.zeros(16_000, np.float32))
    path = raw / "werewolf_video" / f"{name}.json"
    if edit is not None:
        side = json.loads(path.read_text())
        edit(side)
        path.write_text(json.dumps(side, indent=1))
    if text is not None:
        path.write_text(text)


def sidecar_vote_names_missing_seat(raw: Path) -> None:
    _sidecar_game(raw, "vote-ghost", lambda s: s["votes"].append({"day": 1, "voter": 1, "target": 17}))


def sidecar_turns_overlap(raw: Path) -> None:
    _sidecar_game(raw, "crosstalk", lambda s: s["turns"].append({"start": 0.5, "end": 1.2, "seat": 2}))


def sidecar_turn_names_missing_seat(raw: Path) -> None:
    _sidecar_game(raw, "turn-ghost", lambda s: s["turns"].append({"start": 30.0, "end": 31.0, "seat": 12}))


def sidecar_truncated(raw: Path) -> None:
    _sidecar_game(raw, "cut-sidecar")
    path = raw / "werewolf_video" / "cut-sidecar.json"
    path.write_text(path.read_text()[:-40])


def sidecar_utf16_without_bom(raw: Path) -> None:
    _sidecar_game(raw, "utf16-sidecar")
    path = raw / "werewolf_video" / "utf16-sidecar.json"
    path.write_bytes(path.read_text().encode("utf-16-le"))


def werebench_srt_corrupted_byte(raw: Path) -> None:
    d = _season(raw)
    (d / "04-GAME_CONFIG.py").write_text((d / "01-GAME_CONFIG.py").read_text())
    data = (d / "01.srt").read_bytes()
    (d / "04.srt").write_bytes(data + "\n99\n00:09:00,000 --> 00:09:01,000\n说话人 1: ".encode() + b"\xe8\xaf\n")


def werebench_config_syntax_error(raw: Path) -> None:
    d = _season(raw)
    (d / "05-GAME_CONFIG.py").write_text((d / "01-GAME_CONFIG.py").read_text()[:-25])
    (d / "05.srt").write_bytes((d / "01.srt").read_bytes())


def wau_truncated_list(raw: Path) -> None:
    path = raw / "werewolf_among_us" / "data" / "Youtube" / "train.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def wau_not_a_list(raw: Path) -> None:
    (raw / "werewolf_among_us" / "data" / "Youtube" / "train.json").write_text('{"games": []}')


def wau_unknown_role(raw: Path) -> None:
    path = raw / "werewolf_among_us" / "data" / "Youtube" / "train.json"
    games = json.loads(path.read_text())
    game = json.loads(json.dumps(games[0]))
    game["startRoles"] = ["Space Wizard" for _ in game["startRoles"]]
    game.pop("EG_ID", None)
    game["Game_ID"] = "wizard-game"
    path.write_text(json.dumps([*games, game]))


def wau_game_not_an_object(raw: Path) -> None:
    path = raw / "werewolf_among_us" / "data" / "Youtube" / "train.json"
    path.write_text(json.dumps([*json.loads(path.read_text()), ["not", "a", "game"]]))


# (id, source, plant, quarantine reason; None: the label file is refused with a LabelFileError, error text)
WW_CASES = [
    ("werebench_reversed_srt_timestamp", "werebench", werebench_reversed_timestamp, "broken_timestamp"),
    ("werebench_config_contains_code", "werebench", werebench_config_with_code, "config_contains_code"),
    ("werebench_srt_corrupted_utf8", "werebench", werebench_srt_corrupted_byte, "undecodable_text"),
    ("werebench_config_syntax_error", "werebench", werebench_config_syntax_error, "config_syntax_error"),
    ("video_without_audio", "werewolf_video", video_without_audio, "no_audio_stream"),
    ("zero_length_video", "werewolf_video", zero_length_video, "empty_media"),
    ("sidecar_vote_names_missing_seat", "werewolf_video", sidecar_vote_names_missing_seat, "vote_seat_unknown"),
    ("sidecar_turns_overlap", "werewolf_video", sidecar_turns_overlap, "turns_overlap"),
    ("sidecar_turn_names_missing_seat", "werewolf_video", sidecar_turn_names_missing_seat, "turn_seat_unknown"),
    ("sidecar_truncated_json", "werewolf_video", sidecar_truncated, "sidecar_invalid"),
    ("sidecar_utf16_without_bom", "werewolf_video", sidecar_utf16_without_bom, "sidecar_invalid"),
    ("wau_unknown_role", "werewolf_among_us", wau_unknown_role, "unknown_role"),
    ("wau_game_not_an_object", "werewolf_among_us", wau_game_not_an_object, "game_invalid"),
    ("wau_json_truncated_list", "werewolf_among_us", wau_truncated_list, None, "not valid JSON"),
    ("wau_json_not_a_list", "werewolf_among_us", wau_not_a_list, None, "expected a JSON list"),
]


@pytest.mark.parametrize("case", WW_CASES, ids=[c[0] for c in WW_CASES])
def test_bad_werewolf_input_is_quarantined(case, tmp_path: Path):
    from shardsmith.demo.werewolf_demo import write_werewolf_demo
    from shardsmith.staging.games import build_game, discover_games

    _, source, plant, reason, *error = case
    raw = tmp_path / "raw"
    write_werewolf_demo(raw, video=False)
    plant(raw)
    if reason is None:
        with pytest.raises(LabelFileError) as err:
            discover_games(source, raw / source)
        assert error[0] in str(err.value) and "line" in str(err.value) and str(raw) in str(err.value), err.value
        return
    quarantine, published = [], []
    for ref in discover_games(source, raw / source):
        result = build_game(source, ref)  # no transcriber: bad media must fail before transcription
        assert result.reconciles(), result.counts
        quarantine += result.quarantine
        published += [u["utterance_id"] for u in result.utterances]
    assert any(q["reason"] == reason and q["detail"] for q in quarantine), [(q["reason"], q["detail"]) for q in quarantine]
    assert not (raw / "PWNED").exists(), "a game config was executed"
    if source in ("werebench", "werewolf_among_us"):
        assert published, "the good demo game lost its utterances"
