"""Demo samples for RSNA Pneumonia, SIIM-ACR, ChestX-Det, CheXpert and MS-CXR in their native layouts.

Each sample is small (a few 256-384 px images) but keeps the traps of the real release, so the
adapters are exercised the way the real data exercises them:

* RSNA: class-info rows repeated once per box, a negative with empty coordinates, both kinds of
  negative (``Normal`` and ``No Lung Opacity / Not Normal``).
* SIIM: the ``" EncodedPixels"`` header with a leading space, ``" -1"`` and ``-1`` values, an
  image with two component rows, JPEG Baseline DICOMs nested ``<Study>/<Series>/<SOP>.dcm``, and
  one image with no CSV row.
* ChestX-Det: a normal image with empty lists, train images in ``train_data.zip`` and test images
  in an extracted ``test_data/`` folder.
* CheXpert: blank vs ``-1.0`` vs ``0.0``, ``No Finding`` with ``Support Devices``, a lateral view,
  ``train.csv`` and ``valid.csv`` under ``CheXpert-v1.0-small/``.
* MS-CXR: two phrases with boxes on one image, two boxes for one phrase on another.

Everything is deterministic (fixed seeds, UIDs, zip timestamps), so demo releases reproduce.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from shardsmith.demo.dicom_fixtures import chest_phantom, make_cxr_dicom, write_png
from shardsmith.media.masks import siim_rle_encode

SOURCES = ("rsna_pneumonia", "siim_acr", "chestx_det", "chexpert", "ms_cxr")
ZIP_TIME = (2019, 1, 1, 0, 0, 0)


def _write_csv(path: Path, header: list[str], rows: list[list[object]], raw_header: str | None = None) -> None:
    """CSV with ``\\n`` line ends; ``raw_header`` writes the header line verbatim (SIIM's space)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if raw_header is None:
        writer.writerow(header)
    else:
        buf.write(raw_header + "\n")
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _jpeg(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def _phantom8(rows: int, columns: int, seed: int) -> np.ndarray:
    return chest_phantom(rows, columns, bits_stored=8, seed=seed).astype(np.uint8)


def _ellipse_mask(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """A filled ellipse in normalised coordinates (a pneumothorax-like blob for SIIM RLE)."""
    yy = (np.arange(h)[:, None] + 0.5) / h
    xx = (np.arange(w)[None, :] + 0.5) / w
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


# --------------------------------------------------------------------------- RSNA

RSNA_PATIENTS = (
    # patientId, boxes (x, y, w, h in 1024 px), class, view
    ("0a0f91dc-6015-4342-b809-d19610854a21", [(264.0, 152.0, 213.0, 379.0), (562.0, 152.0, 256.0, 453.0)],
     "Lung Opacity", "AP"),
    ("0a1e8e8e-77a7-4e2b-8a4c-3c5e6a0b7f10", [], "Normal", "PA"),
    ("0b2c6d3f-2f1a-4d4e-9a8b-5e6f7a8b9c01", [], "No Lung Opacity / Not Normal", "PA"),
    ("0c3d7e4a-3a2b-4e5f-8b9c-6f7a8b9cad12", [(600.0, 300.0, 180.0, 260.0)], "Lung Opacity", "AP"),
)


def write_rsna(root: Path) -> None:
    labels, classes = [], []
    for pid, boxes, cls, view in RSNA_PATIENTS:
        if boxes:
            for x, y, w, h in boxes:
                labels.append([pid, x, y, w, h, 1])
                classes.append([pid, cls])  # repeated once per box, as in the real file
        else:
            labels.append([pid, "", "", "", "", 0])
            classes.append([pid, cls])
        make_cxr_dicom(root / "stage_2_train_images" / f"{pid}.dcm", rows=256, columns=256, bits_stored=8,
                       modality="CR", patient_id=pid, view=view, age="051Y", seed=300 + len(labels))
    _write_csv(root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], labels)
    _write_csv(root / "stage_2_detailed_class_info.csv", ["patientId", "class"], classes)


# --------------------------------------------------------------------------- SIIM

SIIM_SIZE = 256
SIIM_UIDS = tuple(f"1.2.276.0.7230010.3.1.4.8323329.{n}.1517875{n:03d}.{n * 7}" for n in (101, 102, 103, 104, 105))


def siim_components() -> dict[str, list[np.ndarray]]:
    """The demo's pneumothorax components per ImageId (tests compare decoded masks with these)."""
    h = w = SIIM_SIZE
    return {
        SIIM_UIDS[0]: [_ellipse_mask(h, w, 0.30, 0.30, 0.08, 0.10)],
        SIIM_UIDS[1]: [_ellipse_mask(h, w, 0.70, 0.28, 0.07, 0.09), _ellipse_mask(h, w, 0.76, 0.55, 0.05, 0.06)],
    }


def write_siim(root: Path) -> None:
    comps = siim_components()
    rows: list[list[object]] = []
    for uid in SIIM_UIDS[:2]:
        rows.extend([uid, " " + siim_rle_encode(m)] for m in comps[uid])
    rows.append([SIIM_UIDS[2], " -1"])  # the Kaggle original: leading space
    rows.append([SIIM_UIDS[3], "-1"])  # the TXV copy: no space
    _write_csv(root / "train-rle.csv", [], rows, raw_header="ImageId, EncodedPixels")
    for i, uid in enumerate(SIIM_UIDS):  # the last image has no CSV row: unlabelled, not negative
        study = f"1.2.276.0.7230010.3.1.2.8323329.{200 + i}.1517875{i:03d}.1"
        series = f"1.2.276.0.7230010.3.1.3.8323329.{300 + i}.1517875{i:03d}.2"
        make_cxr_dicom(root / "dicom-images-train" / study / series / f"{uid}.dcm", rows=SIIM_SIZE,
                       columns=SIIM_SIZE, bits_stored=8, transfer_syntax="jpeg_baseline", modality="CR",
                       patient_id=f"5c7b8a1e-0d4f-4c2a-9e3b-{i:012d}", study_uid=study, series_uid=series,
                       sop_uid=uid, age="038Y", seed=10 + i)


# --------------------------------------------------------------------------- ChestX-Det


def _square(x0: int, y0: int, x1: int, y1: int) -> list[list[int]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


CHESTX_DET = {
    "train": [
        {"file_name": "36200.png", "syms": [], "boxes": [], "polygons": []},
        {"file_name": "36204.png", "syms": ["Cardiomegaly", "Nodule"], "boxes": [[387, 497, 752, 734], [233, 666, 258, 693]],
         "polygons": [[[410, 497], [752, 560], [700, 734], [387, 700]], [[233, 666], [258, 670], [250, 693], [235, 690]]]},
        {"file_name": "36210.png", "syms": ["Effusion"], "boxes": [[700, 600, 880, 820]],
         "polygons": [_square(700, 600, 880, 820)]},
    ],
    "test": [
        {"file_name": "40001.png", "syms": ["Pneumothorax"], "boxes": [[180, 150, 420, 380]],
         "polygons": [[[180, 150], [420, 160], [400, 380], [190, 370]]]},
    ],
}


def _nih_rerelease() -> np.ndarray:
    """ChestX-Det's images are NIH ChestX-ray14 images under new names (the dataset's known trap): the
    first demo image is the first NIH demo film (same phantom seed as cxr_core), 2% cropped and
    downsized, so the demo release shows one duplicate group across the two sources."""
    film = _phantom8(1024, 1024, 100)
    m = int(1024 * 0.02)
    return cv2.resize(film[m:-m, m:-m], (256, 256), interpolation=cv2.INTER_AREA)


def write_chestx_det(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for split, items in CHESTX_DET.items():
        (root / f"ChestX_Det_{split}.json").write_text(json.dumps(items), encoding="utf-8")
    train_zip = root / "train_data.zip"
    with zipfile.ZipFile(train_zip, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, item in enumerate(CHESTX_DET["train"]):
            ok, buf = cv2.imencode(".png", _nih_rerelease() if i == 0 else _phantom8(256, 256, 20 + i),
                                   [cv2.IMWRITE_PNG_COMPRESSION, 3])
            zf.writestr(zipfile.ZipInfo(f"train_data/{item['file_name']}", date_time=ZIP_TIME), buf.tobytes())
    for i, item in enumerate(CHESTX_DET["test"]):
        write_png(root / "test_data" / item["file_name"], _phantom8(256, 256, 30 + i))


# --------------------------------------------------------------------------- CheXpert

CHEXPERT_HEADER = [
    "Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly",
    "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
    "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices",
]
_BLANK14 = [""] * 14


def _chex_row(path: str, sex: str, age: int, fl: str, appa: str, values: dict[str, str]) -> list[str]:
    labels = dict(zip(CHEXPERT_HEADER[5:], _BLANK14, strict=True))
    labels.update(values)
    return [f"CheXpert-v1.0-small/{path}", sex, str(age), fl, appa] + [labels[c] for c in CHEXPERT_HEADER[5:]]


CHEXPERT_ROWS = {
    "train.csv": [
        _chex_row("train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP",
                  {"No Finding": "1.0", "Pneumothorax": "0.0", "Support Devices": "1.0"}),
        _chex_row("train/patient00002/study2/view1_frontal.jpg", "Female", 87, "Frontal", "PA",
                  {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "Edema": "-1.0", "Pleural Effusion": "0.0"}),
        _chex_row("train/patient00002/study2/view2_lateral.jpg", "Female", 87, "Lateral", "",
                  {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0"}),
        _chex_row("train/patient00003/study1/view1_frontal.jpg", "Male", 41, "Frontal", "AP",
                  {"Edema": "-1.0", "Pneumonia": "-1.0"}),
    ],
    "valid.csv": [
        _chex_row("valid/patient64541/study1/view1_frontal.jpg", "Male", 73, "Frontal", "AP",
                  {k: "0.0" for k in CHEXPERT_HEADER[6:]} | {"Cardiomegaly": "1.0", "Support Devices": "1.0"}),
    ],
}


def write_chexpert(root: Path) -> None:
    base = root / "CheXpert-v1.0-small"
    seed = 40  # one phantom per image across both files: valid/ is other patients than train/
    for name, rows in CHEXPERT_ROWS.items():
        _write_csv(base / name, CHEXPERT_HEADER, rows)
        for row in rows:
            seed += 1
            rel = row[0].removeprefix("CheXpert-v1.0-small/")
            shape = (320, 256) if "lateral" in rel else (256, 320)  # CheXpert-small keeps the aspect
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_jpeg(_phantom8(*shape, seed=seed)))


# --------------------------------------------------------------------------- MS-CXR

MS_CXR_IMAGES = (
    # dicom_id, path dirs, (width, height), split, rows of (category, phrase, x, y, w, h)
    ("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "p10/p10000032/s50414267", (384, 320), "train", [
        ("Pleural Effusion", "small left pleural effusion", 250.0, 200.0, 90.0, 70.0),
        ("Cardiomegaly", "the heart is enlarged", 130.0, 140.0, 140.0, 110.0),
    ]),
    ("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "p11/p11000566/s52011736", (384, 320), "test", [
        ("Pneumonia", "bilateral patchy opacities concerning for pneumonia", 70.0, 90.0, 80.0, 120.0),
        ("Pneumonia", "bilateral patchy opacities concerning for pneumonia", 235.0, 95.0, 80.0, 115.0),
    ]),
)


def write_ms_cxr(root: Path) -> None:
    header = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width",
              "image_height", "split"]
    rows: list[list[object]] = []
    for i, (dicom_id, dirs, (w, h), split, boxes) in enumerate(MS_CXR_IMAGES):
        rel = f"files/{dirs}/{dicom_id}.jpg"
        for category, phrase, x, y, bw, bh in boxes:
            rows.append([dicom_id, category, phrase, rel, x, y, bw, bh, w, h, split])
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_jpeg(_phantom8(h, w, seed=50 + i)))
    _write_csv(root / "MS_CXR_Local_Alignment_v1.1.0.csv", header, rows)


WRITERS = {
    "rsna_pneumonia": write_rsna,
    "siim_acr": write_siim,
    "chestx_det": write_chestx_det,
    "chexpert": write_chexpert,
    "ms_cxr": write_ms_cxr,
}


def write_demo(raw_root: Path) -> None:
    """Write every sample under ``raw_root/<source>/`` in its native layout."""
    for name, writer in WRITERS.items():
        writer(Path(raw_root) / name)
