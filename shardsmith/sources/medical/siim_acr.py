"""SIIM-ACR Pneumothorax (Kaggle 2019): ``train-rle.csv`` or ``stage_2_train.csv`` + nested DICOMs.

Each CSV row is one pneumothorax component in SIIM's own RLE (relative gaps, column-major, see
``media.masks.siim_rle_decode``); an image with several rows has several components and its
pneumothorax is their union. Each component becomes one target. ``-1`` (also ``" -1"``) says
only "no pneumothorax": the finding is absent, but abnormal stays None (the image is not called
normal; SIIM labels nothing else). An image on disk without a CSV row is published unlabelled
(abnormal None, no findings), not as a negative.

Images: ``dicom-images-{train,test}/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm`` (JPEG
Baseline); ImageId = SOPInstanceUID = file stem. No official split for the labelled images:
the split is the seeded patient split (PatientID from the DICOM header); unlabelled images in
``dicom-images-test`` are the official test set.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.sources.labelfiles import BadRow, bad_row_quarantine, find_label_file, read_rows
from shardsmith.sources.medical.base import Finding, LabelledItem, LabelResult, SourceTarget
from shardsmith.sources.medical.cxr import CxrSource

LABEL_FILES = ("train-rle.csv", "stage_2_train.csv")
TEST_DIR = "dicom-images-test"
IMAGE_DIRS = ("dicom-images-train", TEST_DIR)
PNEUMOTHORAX = "Pneumothorax"
EMPTY = "-1"


def rle_problem(rle: str) -> str | None:
    """Why an RLE string cannot be a SIIM mask (checked at label time, without pixels), else None."""
    tokens = rle.split()
    if not tokens:
        return "empty RLE"
    if len(tokens) % 2:
        return f"odd number of values ({len(tokens)})"
    bad = next((t for t in tokens if not (t.isascii() and t.isdigit())), None)
    if bad is not None:
        return f"value {bad!r} is not a non-negative integer"
    if any(int(t) == 0 for t in tokens[1::2]):
        return "a run has length 0"
    return None


class SiimAcr(CxrSource):
    name = "siim_acr"
    partitioned = True
    gated = True
    licence = "SIIM-ACR Pneumothorax Segmentation terms (Kaggle)"
    citation = 'Zawacki et al., SIIM-ACR Pneumothorax Segmentation, Kaggle (2019)'
    homepage = 'https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation'
    layouts = (
        "train-rle.csv / stage_2_train.csv (column ' EncodedPixels') + dicom-images-*/<study>/<series>/<SOPInstanceUID>.dcm",
    )
    adapter_version = "1"
    default_modality = "CR"
    unlabelled_images = "unlabelled"

    def unlabelled_item(self, native_id: str, path: Path, root: Path) -> LabelledItem:
        """An unlabelled image in ``dicom-images-test`` is the competition's official test set; an
        unlabelled training image keeps the seeded split (stage 2 labels the stage-1 test images,
        so a LABELLED image there is training data, not test)."""
        official = "test" if path.relative_to(root).parts[0] == TEST_DIR else None
        return LabelledItem(native_id=native_id, split=official)

    def detect(self, root: Path) -> bool:
        return find_label_file(root, *LABEL_FILES) is not None

    def read_labels(self, root: Path) -> LabelResult:
        path = find_label_file(root, *LABEL_FILES)
        if path is None:
            return LabelResult(items=[])
        mapping = self.map_label(PNEUMOTHORAX)
        rles: dict[str, list[str]] = defaultdict(list)
        quarantine: list[dict] = []
        bad: set[str] = set()
        rows_read = 0
        bad_rows: list[BadRow] = []
        for lineno, row in read_rows(path, ("ImageId", "EncodedPixels"), bad_rows=bad_rows):
            rows_read += 1
            image_id, rle = row["ImageId"], row["EncodedPixels"]
            problem = None if rle == EMPTY else rle_problem(rle)
            if problem:
                quarantine.append(quarantine_row(self.name, "labels", "rle_malformed",
                                                 f"{path.name}:{lineno}: {problem}", image_id, path.name))
                bad.add(image_id)
                continue
            rles[image_id].append(rle)
        for b in bad_rows:
            rows_read += 1
            quarantine.append(bad_row_quarantine(self.name, path, b, "ImageId"))
            if b.row.get("ImageId"):
                bad.add(b.row["ImageId"])
        items: list[LabelledItem] = []
        for image_id in sorted(rles):
            if image_id in bad:
                continue
            values = rles[image_id]
            components = [r for r in values if r != EMPTY]
            if components and len(components) != len(values):
                quarantine.append(quarantine_row(self.name, "labels", "contradictory_labels",
                                                 f"{path.name}: image has both -1 and mask rows",
                                                 image_id, path.name))
                bad.add(image_id)
                continue
            targets = [
                SourceTarget(
                    label=mapping.canonical, source_label=PNEUMOTHORAX, kind="abnormality",
                    geometry={"type": "siim_rle", "rle": rle, "size": None}, source_geometry="siim-rle",
                )
                for rle in components
            ]
            items.append(LabelledItem(
                native_id=image_id,
                modality="CR",
                body_part="chest",
                abnormal=True if components else None,  # -1 is "no pneumothorax", never "normal"
                complete=False,
                findings=[Finding(mapping.canonical, PNEUMOTHORAX, "present" if components else "absent")],
                targets=targets,
                extra={"components": len(components)},
            ))
        # images whose label rows were rejected must not come back as "unlabelled" records
        return LabelResult(items=items, quarantine=quarantine, label_files=[str(path.relative_to(root))],
                           rows_read=rows_read, withheld=bad)

    def find_images(self, root: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for d in IMAGE_DIRS:
            for p in sorted((root / d).glob("*/*/*.dcm")):
                if not p.name.startswith("."):
                    out.setdefault(p.stem, p)
        return out
