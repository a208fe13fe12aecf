"""Demo data for the walking-skeleton sources, in their exact native layouts and traps.

VinDr-CXR (Kaggle layout): ``train.csv`` with three readers per image, ``No finding`` rows with
empty coordinates, a non-square 12-bit DICOM, a MONOCHROME1 DICOM, an RLE-compressed DICOM,
``.dicom`` extensions, and a CSV row whose image is missing. NIH ChestX-ray14: the bracketed
``Data_Entry_2017_v2020.csv`` header, ``BBox_List_2017.csv`` with its odd header and
``Infiltrate`` spelling, boxes in 1024-px space over PNGs downsized to 512 px,
``images_001/images/``, the official split lists, and a row whose PNG is missing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2

from shardsmith.demo.dicom_fixtures import chest_phantom, make_cxr_dicom, write_png

VINDR_IMAGES = {
    # image_id: (rows, columns, photometric, transfer syntax, bits)
    "0a1b2c3d4e5f60718293a4b5c6d7e8f9": (320, 256, "MONOCHROME2", "explicit_little", 12),
    "1b2c3d4e5f60718293a4b5c6d7e8f90a": (288, 288, "MONOCHROME1", "explicit_little", 12),
    "2c3d4e5f60718293a4b5c6d7e8f90a1b": (256, 304, "MONOCHROME2", "rle", 12),
    "3d4e5f60718293a4b5c6d7e8f90a1b2c": (300, 240, "MONOCHROME2", "explicit_little", 14),
}
VINDR_MISSING = "4e5f60718293a4b5c6d7e8f90a1b2c3d"


def _vindr_rows() -> list[list[str]]:
    a, b, c, d = VINDR_IMAGES
    rows = [
        [a, "Cardiomegaly", "3", "R8", "70.0", "150.0", "190.0", "240.0"],
        [a, "Cardiomegaly", "3", "R9", "72.5", "148.0", "188.0", "236.0"],
        [a, "Aortic enlargement", "0", "R10", "110.0", "90.0", "150.0", "140.0"],
        [a, "Pleural thickening", "11", "R10", "20.0", "60.0", "60.0", "90.0"],
    ]
    rows += [[b, "No finding", "14", r, "", "", "", ""] for r in ("R1", "R2", "R3")]
    rows += [
        [c, "Nodule/Mass", "8", "R4", "200.0", "100.0", "230.0", "128.0"],
        [c, "Nodule/Mass", "8", "R5", "201.0", "102.0", "229.0", "127.0"],
        [c, "Pleural effusion", "10", "R6", "30.0", "180.0", "110.0", "240.0"],
    ]
    rows += [[d, "No finding", "14", r, "", "", "", ""] for r in ("R11", "R12", "R13")]
    rows += [[VINDR_MISSING, "No finding", "14", r, "", "", "", ""] for r in ("R1", "R2", "R3")]
    return rows


def write_vindr(root: Path) -> None:
    (root / "train").mkdir(parents=True, exist_ok=True)
    with (root / "train.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"])
        w.writerows(_vindr_rows())
    for i, (image_id, (rows, cols, photometric, ts, bits)) in enumerate(VINDR_IMAGES.items()):
        make_cxr_dicom(
            root / "train" / f"{image_id}.dicom", rows=rows, columns=cols, bits_stored=bits,
            photometric=photometric, transfer_syntax=ts, window=(2**(bits - 1), 2**bits * 0.9),
            patient_id=f"VINDR-PAT-{i:04d}", patient_name=f"DOE^JANE{i}", sex="F" if i % 2 else "M",
            age=f"{40 + 7 * i:03d}Y", seed=i,
        )


NIH_ROWS = [
    # Image Index, Finding Labels, Follow-up #, Patient ID, Age, Gender, View, W, H, sx, sy
    ["00000001_000.png", "Cardiomegaly", "0", "1", "58", "M", "PA", "2682", "2749", "0.143", "0.143"],
    ["00000001_001.png", "No Finding", "1", "1", "58", "M", "PA", "2894", "2729", "0.143", "0.143"],
    ["00000002_000.png", "Infiltration|Effusion", "0", "2", "81", "F", "AP", "2500", "2048", "0.171", "0.171"],
    ["00000003_000.png", "No Finding", "0", "3", "34", "F", "PA", "2048", "2500", "0.168", "0.168"],
    ["00000004_000.png", "Nodule|Mass", "0", "4", "66", "M", "PA", "2992", "2991", "0.143", "0.143"],
    ["00000005_000.png", "Pneumothorax", "0", "5", "23", "M", "AP", "2048", "2048", "0.168", "0.168"],
]
NIH_MISSING = "00000005_000.png"
NIH_BOXES = [
    ["00000001_000.png", "Cardiomegaly", "300.5", "420.25", "410.0", "300.0"],
    ["00000002_000.png", "Infiltrate", "600.0", "300.0", "200.0", "240.0"],
    ["00000002_000.png", "Effusion", "120.0", "640.0", "220.0", "180.0"],
    ["00000004_000.png", "Nodule", "700.0", "350.0", "60.0", "58.0"],
]


def write_nih(root: Path) -> None:
    images = root / "images_001" / "images"
    images.mkdir(parents=True, exist_ok=True)
    header = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
    with (root / "Data_Entry_2017_v2020.csv").open("w", newline="") as fh:
        fh.write(header + "\r\n")
        csv.writer(fh).writerows(NIH_ROWS)
    with (root / "BBox_List_2017.csv").open("w", newline="") as fh:
        fh.write("Image Index,Finding Label,Bbox [x,y,w,h],,,\r\n")
        csv.writer(fh).writerows(NIH_BOXES)
    (root / "train_val_list.txt").write_text("\n".join(r[0] for r in NIH_ROWS[:4]) + "\n")
    (root / "test_list.txt").write_text("\n".join(r[0] for r in NIH_ROWS[4:]) + "\n")
    for i, row in enumerate(NIH_ROWS):
        if row[0] == NIH_MISSING:
            continue
        phantom = chest_phantom(1024, 1024, bits_stored=8, seed=100 + i).astype("uint8")
        write_png(images / row[0], cv2.resize(phantom, (512, 512), interpolation=cv2.INTER_AREA))


def write_demo(raw_root: Path) -> None:
    write_vindr(raw_root / "vindr_cxr")
    write_nih(raw_root / "nih_cxr14")
