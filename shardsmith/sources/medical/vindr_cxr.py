"""VinDr-CXR: the Kaggle ``train.csv`` layout and the PhysioNet ``annotations/`` layout.

Three readers per training image (five-reader consensus on PhysioNet test). A finding is
present when at least one reader marked it (the readers are kept); a finding the layout
annotates but no reader marked is absent. ``No finding`` from every reader makes the image
normal (abnormal=False, complete=True). Boxes are absolute corners in the DICOM pixel grid.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError
from shardsmith.sources.labelfiles import BadRow, bad_row_quarantine, find_label_file, is_blank, read_rows
from shardsmith.sources.medical.base import Finding, LabelledItem, LabelResult, SourceTarget
from shardsmith.sources.medical.cxr import CxrSource

# The 14 local labels the Kaggle competition kept; PhysioNet annotates 22 local + 6 global.
KAGGLE_LABELS = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
    "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
    "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis",
)
NO_FINDING = "No finding"
BOX_COLS = ("x_min", "y_min", "x_max", "y_max")


class VinDrCxr(CxrSource):
    name = "vindr_cxr"
    partitioned = True
    gated = True
    licence = "PhysioNet Credentialed Health Data License 1.5.0 (VinDr-CXR)"
    citation = ("Nguyen et al., VinDr-CXR: An open dataset of chest X-rays with radiologist's annotations, "
                'Scientific Data 9, 429 (2022)')
    homepage = 'https://physionet.org/content/vindr-cxr/'
    layouts = (
        'Kaggle VinBigData: train.csv (one row per reader and box) + train/<image_id>.dicom',
        'PhysioNet 1.0.0: annotations/{image_labels,annotations}_{train,test}.csv + {train,test}/<image_id>.dicom',
    )
    adapter_version = "1"

    def detect(self, root: Path) -> bool:
        return self._kaggle_csv(root) is not None or (root / "annotations").is_dir()

    def _kaggle_csv(self, root: Path) -> Path | None:
        return find_label_file(root, "train.csv", "vinbigdata-train.csv")

    def read_labels(self, root: Path) -> LabelResult:
        kaggle = self._kaggle_csv(root)
        if kaggle is not None:
            return self._read(root, [(kaggle, "train")], [], KAGGLE_LABELS)
        ann = root / "annotations"
        boxes, globals_ = [], []
        for split in ("train", "test"):
            if p := find_label_file(ann, f"annotations_{split}.csv"):
                boxes.append((p, split))
            if p := find_label_file(ann, f"image_labels_{split}.csv"):
                globals_.append((p, split))
        if not boxes and not globals_:
            return LabelResult(items=[])
        annotated = tuple(m.source_label for m in self.vocab.source_rows(self.name) if m.kind == "finding")
        return self._read(root, boxes, globals_, annotated)

    def _read(self, root: Path, box_files, global_files, annotated: tuple[str, ...]) -> LabelResult:
        # per image: split, readers, reader -> set(labels marked), boxes
        split_of: dict[str, str] = {}
        readers: dict[str, set[str]] = defaultdict(set)
        marked: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        no_finding: dict[str, set[str]] = defaultdict(set)
        boxes: dict[str, list[SourceTarget]] = defaultdict(list)
        quarantine: list[dict] = []
        tainted: set[str] = set()
        rows_read = 0
        files: list[str] = []
        for path, split in box_files:
            files.append(str(path.relative_to(root)))
            bad: list[BadRow] = []
            for lineno, row in read_rows(path, ("image_id", "class_name", "rad_id") + BOX_COLS, bad_rows=bad):
                rows_read += 1
                image_id, label, rad = row["image_id"], row["class_name"], row["rad_id"]
                split_of.setdefault(image_id, split)
                readers[image_id].add(rad)
                try:
                    mapping = self.map_label(label)
                except UnknownLabelError as e:
                    quarantine.append(self.unknown_label_row(e, image_id, f"{path.name}:{lineno}"))
                    tainted.add(image_id)
                    continue
                if mapping.kind == "normal":
                    no_finding[image_id].add(rad)
                    continue
                marked[image_id][label].add(rad)
                if all(not is_blank(row[c]) for c in BOX_COLS):
                    try:
                        coords = [float(row[c]) for c in BOX_COLS]
                    except ValueError:
                        quarantine.append(quarantine_row(self.name, "labels", "box_not_numeric",
                                                         f"{path.name}:{lineno}: {[row[c] for c in BOX_COLS]}",
                                                         image_id, path.name))
                        tainted.add(image_id)
                        continue
                    boxes[image_id].append(SourceTarget(
                        label=mapping.canonical, source_label=label, kind="abnormality",
                        geometry={"type": "box_xyxy", "coords": coords, "space": None},
                        source_geometry="xyxy@native", reader=rad,
                    ))
            rows_read += self._bad_rows(path, bad, quarantine, tainted)
        for path, split in global_files:
            files.append(str(path.relative_to(root)))
            bad = []
            for lineno, row in read_rows(path, ("image_id", "rad_id"), bad_rows=bad):
                rows_read += 1
                image_id, rad = row["image_id"], row["rad_id"]
                split_of.setdefault(image_id, split)
                readers[image_id].add(rad)
                for col, value in row.items():
                    if col in ("image_id", "rad_id") or value not in {"1", "1.0"}:
                        continue
                    try:
                        mapping = self.map_label(col)
                    except UnknownLabelError as e:
                        quarantine.append(self.unknown_label_row(e, image_id, f"{path.name}:{lineno}"))
                        tainted.add(image_id)
                        continue
                    if mapping.kind == "normal":
                        no_finding[image_id].add(rad)
                    else:
                        marked[image_id][col].add(rad)
            rows_read += self._bad_rows(path, bad, quarantine, tainted)
        items = []
        for image_id in sorted(readers):
            if image_id in tainted:
                # A reader's mark could not be read: the image's findings would claim "absent" (or
                # miss a box) where the reader said otherwise, so the image is withheld, not guessed.
                continue
            labels_marked = marked.get(image_id, {})
            abnormal = bool(labels_marked)
            all_normal = not abnormal and no_finding.get(image_id) == readers[image_id]
            findings = []
            for label in annotated:
                mapping = self.map_label(label)
                rads = sorted(labels_marked.get(label, ()))
                findings.append(Finding(mapping.canonical, label, "present" if rads else "absent", rads))
            items.append(LabelledItem(
                native_id=image_id,
                image_relpath=f"{split_of[image_id]}/{image_id}.dicom",
                split=split_of[image_id],
                modality="DX",
                body_part="chest",
                abnormal=True if abnormal else (False if all_normal else None),
                complete=all_normal,
                findings=findings,
                targets=boxes.get(image_id, []),
                extra={"readers": sorted(readers[image_id])},
            ))
        return LabelResult(items=items, quarantine=quarantine, label_files=files, rows_read=rows_read,
                           withheld=tainted)

    def _bad_rows(self, path: Path, bad: list[BadRow], quarantine: list[dict], tainted: set[str]) -> int:
        """Quarantine rows that do not fit the header; their image is withheld like any unreadable mark."""
        for b in bad:
            quarantine.append(bad_row_quarantine(self.name, path, b, "image_id"))
            if b.row.get("image_id"):
                tainted.add(b.row["image_id"])
        return len(bad)

    def find_images(self, root: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for split in ("train", "test"):
            d = root / split
            if d.is_dir():
                for p in sorted(d.iterdir()):
                    if p.suffix.lower() in (".dicom", ".dcm") and not p.name.startswith("."):
                        out[p.stem] = p
        return out
