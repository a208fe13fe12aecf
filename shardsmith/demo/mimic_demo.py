"""Demo sample of MIMIC-CXR-JPG (+ the MIMIC-CXR reports) in PhysioNet's layout, with its traps.

Gzip CSVs with the real headers (``mimic-cxr-2.0.0-{metadata,chexpert,negbio,split}.csv.gz``),
``files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg`` and ``mimic-cxr-reports.zip``. The traps:

* a study with images but no row in either label file (published without findings);
* ``-1.0`` (uncertain) labels, and a label the CheXpert file leaves blank that NegBio states;
* a lateral-only study;
* a report with no FINDINGS section (IMPRESSION only), and a study with no report at all;
* a metadata row whose JPEG is missing from ``files/`` (quarantined ``image_missing``);
* a patient with two studies 30 days apart (a follow-up pair) and a PA + lateral study;
* the two MS-CXR demo images are the same JPEG bytes under the same ``dicom_id`` and path, as
  MS-CXR's images are MIMIC-CXR-JPG's (one duplicate group, found by pixels).

Deterministic: fixed seeds, gzip mtime 0, fixed zip timestamps.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from pathlib import Path

from shardsmith.demo.cxr_more import MS_CXR_IMAGES, ZIP_TIME, _jpeg, _phantom8

METADATA_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
                   "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                   "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]
LABEL_COLUMNS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
                 "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
                 "Pneumothorax", "Support Devices"]
VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral"}

# dicom_id, subject, study, ViewPosition, (rows, columns), StudyDate, StudyTime, split, on disk
IMAGES = (
    (MS_CXR_IMAGES[0][0], "10000032", "50414267", "PA", (320, 384), "21800506", "213014.531", "train", True),
    ("174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "10000032", "50414267", "LATERAL", (384, 320), "21800506",
     "213015.000", "train", True),
    ("68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714", "10000032", "53189527", "AP", (320, 384), "21800605",
     "064512", "train", True),
    (MS_CXR_IMAGES[1][0], "11000566", "52011736", "PA", (320, 384), "21520708", "224657", "test", True),
    ("3c4f1b2e-9a0d7c15-55e0a7d2-0b1f6a43-77aa0c9e", "12000001", "57000001", "LATERAL", (384, 320), "21310101",
     "101010", "validate", True),
    ("5d1e8f20-11aa22bb-33cc44dd-55ee66ff-77008899", "12000001", "57000002", "PA", (320, 384), "21310301",
     "090000", "validate", False),  # named by the metadata, missing from files/
)
# study -> label cells (CheXpert labeller), by column; a study absent here has no row at all
CHEXPERT = {
    "50414267": {"Cardiomegaly": "1.0", "Pleural Effusion": "1.0", "Edema": "-1.0", "Pneumothorax": "0.0"},
    "53189527": {"Pleural Effusion": "-1.0", "Support Devices": "1.0"},
    "52011736": {"Pneumonia": "1.0", "Consolidation": "-1.0"},
    "57000002": {"No Finding": "1.0"},
}
NEGBIO = {
    "50414267": {"Cardiomegaly": "1.0", "Pleural Effusion": "1.0", "Edema": "-1.0", "Pneumothorax": "0.0",
                 "Atelectasis": "0.0"},  # NegBio states a label the CheXpert labeller left blank
    "53189527": {"Pleural Effusion": "1.0", "Support Devices": "1.0"},  # disagrees: CheXpert's wins
    "52011736": {"Pneumonia": "1.0", "Consolidation": "-1.0"},
    "57000002": {"No Finding": "1.0"},
}
REPORTS = {
    ("10000032", "50414267"): """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with shortness of breath

 COMPARISON:  None.

 FINDINGS:

 The heart is enlarged. There is a small left pleural effusion. No pneumothorax is seen.
 Mild pulmonary vascular congestion without frank edema.

 IMPRESSION:

 Cardiomegaly with small left pleural effusion.
""",
    ("10000032", "53189527"): """                                 FINAL REPORT
 EXAMINATION:  CHEST (PORTABLE AP)

 INDICATION:  ___F with effusion, follow-up

 FINDINGS:

 Left pleural effusion is slightly smaller. Right internal jugular line ends in the SVC.

 IMPRESSION:

 Decreasing left pleural effusion.
""",
    ("11000566", "52011736"): """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA)

 INDICATION:  ___M with fever and cough

 IMPRESSION:

 Bilateral patchy opacities concerning for pneumonia. No pleural effusion.
""",  # no FINDINGS section
    # study 57000001 (lateral only) has no report
}


def _gzip_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))


def _label_rows(studies: dict[str, dict[str, str]]) -> list[list[str]]:
    subject = {study: sub for _, sub, study, *_ in IMAGES}
    return [[subject[s], s, *(cells.get(c, "") for c in LABEL_COLUMNS)] for s, cells in studies.items()]


def image_bytes(dicom_id: str, shape: tuple[int, int], index: int) -> bytes:
    """The JPEG of one demo image; an MS-CXR demo image gets exactly MS-CXR's bytes."""
    for i, (ms_id, *_rest) in enumerate(MS_CXR_IMAGES):
        if ms_id == dicom_id:
            return _jpeg(_phantom8(*shape, seed=50 + i))
    return _jpeg(_phantom8(*shape, seed=70 + index))


def write_mimic(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    meta, split = [], []
    for i, (dicom_id, sub, study, view, (rows, cols), date, time, part, on_disk) in enumerate(IMAGES):
        meta.append([dicom_id, sub, study, f"CHEST ({view})", view, str(rows), str(cols), date, time,
                     "CHEST (PA AND LAT)", VIEW_MEANING.get(view, ""), "Erect"])
        split.append([dicom_id, study, sub, part])
        if on_disk:
            target = root / "files" / f"p{sub[:2]}" / f"p{sub}" / f"s{study}" / f"{dicom_id}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(image_bytes(dicom_id, (rows, cols), i))
    _gzip_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA_HEADER, meta)
    _gzip_csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split)
    _gzip_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *LABEL_COLUMNS],
              _label_rows(CHEXPERT))
    _gzip_csv(root / "mimic-cxr-2.0.0-negbio.csv.gz", ["subject_id", "study_id", *LABEL_COLUMNS],
              _label_rows(NEGBIO))
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for (sub, study), text in REPORTS.items():
            info = zipfile.ZipInfo(f"files/p{sub[:2]}/p{sub}/s{study}.txt", ZIP_TIME)
            zf.writestr(info, text, zipfile.ZIP_DEFLATED)


def write_demo(raw_root: Path) -> None:
    write_mimic(Path(raw_root) / "mimic_cxr")
