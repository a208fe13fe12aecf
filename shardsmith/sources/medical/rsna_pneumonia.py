"""RSNA Pneumonia Detection (Kaggle): ``stage_2_train_labels.csv`` + ``stage_2_detailed_class_info.csv``.

One label row per box (``Target`` 1, x/y/width/height in the 1024x1024 DICOM grid); a negative
patient has a single row with empty coordinates and ``Target`` 0. The optional class-info file
repeats the patient once per box and says what a negative means:

* ``Lung Opacity``: lung opacity present (boxes follow), abnormal; other findings unknown.
* ``Normal``: a normal study (abnormal False, complete True, lung opacity absent).
* ``No Lung Opacity / Not Normal``: abnormal without a named diagnosis; lung opacity absent.

Without the class-info file ``Target`` alone only says lung opacity present / absent; abnormal
is then True for positives and unknown (None) for negatives. A class that contradicts
``Target`` quarantines the patient.

``patientId`` names a patient (it equals the DICOM PatientID), so native ids and paths are
pseudonymised before they reach a record. There is no public official split for the training
images (stage-2 test labels were never released): the split is the deterministic patient split.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError
from shardsmith.sources.labelfiles import BadRow, bad_row_quarantine, find_label_file, is_blank, read_rows
from shardsmith.sources.medical.base import Finding, LabelledItem, LabelResult, SourceTarget
from shardsmith.sources.medical.cxr import CxrSource

LABELS_CSV = "stage_2_train_labels.csv"
CLASS_CSV = "stage_2_detailed_class_info.csv"
IMAGE_DIR = "stage_2_train_images"
BOX_COLS = ("x", "y", "width", "height")
BOX_SPACE = [1024, 1024]
OPACITY = "Lung Opacity"  # the finding that Target=1 and the class "Lung Opacity" both name


class RsnaPneumonia(CxrSource):
    name = "rsna_pneumonia"
    partitioned = True
    gated = True
    licence = "RSNA Pneumonia Detection Challenge terms (Kaggle)"
    citation = ('Shih et al., Augmenting the National Institutes of Health Chest Radiograph Dataset with Ex'
                'pert Annotations of Possible Pneumonia, Radiology: Artificial Intelligence 1(1) (2019)')
    homepage = 'https://www.kaggle.com/c/rsna-pneumonia-detection-challenge'
    layouts = (
        'stage_2_train_labels.csv (+ stage_2_detailed_class_info.csv) + stage_2_train_images/<patientId>.dcm',
    )
    adapter_version = "1"
    default_modality = "CR"
    native_id_identifies_patient = True

    def detect(self, root: Path) -> bool:
        return find_label_file(root, LABELS_CSV) is not None

    def _classes(self, root: Path, quarantine: list[dict], files: list[str]) -> tuple[dict[str, str], int]:
        """patientId -> class; the file repeats a patient per box, so conflicting repeats quarantine."""
        path = find_label_file(root, CLASS_CSV)
        if path is None:
            return {}, 0
        files.append(str(path.relative_to(root)))
        seen: dict[str, set[str]] = defaultdict(set)
        rows = 0
        bad: list[BadRow] = []
        for _, row in read_rows(path, ("patientId", "class"), bad_rows=bad):
            rows += 1
            seen[row["patientId"]].add(row["class"])
        classes: dict[str, str] = {}
        for b in bad:  # a cut class row: the patient's class is unknown, so the patient is unusable
            rows += 1
            quarantine.append(bad_row_quarantine(self.name, path, b, "patientId", self._public_id))
            if b.row.get("patientId"):
                classes[b.row["patientId"]] = ""
        for pid, values in seen.items():
            if classes.get(pid) == "":
                continue
            if len(values) > 1:
                quarantine.append(quarantine_row(
                    self.name, "labels", "contradictory_labels",
                    f"{path.name}: patient has several classes {sorted(values)}", self._public_id(pid), path.name,
                ))
                classes[pid] = ""  # marks the patient as unusable
            else:
                classes[pid] = next(iter(values))
        return classes, rows

    def read_labels(self, root: Path) -> LabelResult:
        path = find_label_file(root, LABELS_CSV)
        if path is None:
            return LabelResult(items=[])
        quarantine: list[dict] = []
        files = [str(path.relative_to(root))]
        rows_read = 0
        targets: dict[str, list[int]] = defaultdict(list)  # patient -> Target per row
        boxes: dict[str, list[SourceTarget]] = defaultdict(list)
        bad: set[str] = set()
        opacity = self.map_label(OPACITY)
        bad_rows: list[BadRow] = []
        for lineno, row in read_rows(path, ("patientId", "Target") + BOX_COLS, bad_rows=bad_rows):
            rows_read += 1
            pid, where = row["patientId"], f"{path.name}:{lineno}"
            if row["Target"] not in {"0", "1"}:
                quarantine.append(quarantine_row(self.name, "labels", "bad_target",
                                                 f"{where}: Target {row['Target']!r} is not 0 or 1",
                                                 self._public_id(pid), path.name))
                bad.add(pid)
                continue
            target = int(row["Target"])
            targets[pid].append(target)
            cells = [row[c] for c in BOX_COLS]
            if target == 0:
                if not all(is_blank(c) for c in cells):
                    quarantine.append(quarantine_row(self.name, "labels", "box_on_negative",
                                                     f"{where}: Target 0 with a box {cells}",
                                                     self._public_id(pid), path.name))
                    bad.add(pid)
                continue
            try:
                coords = [float(c) for c in cells]
            except ValueError:
                quarantine.append(quarantine_row(self.name, "labels", "box_not_numeric",
                                                 f"{where}: Target 1 needs a numeric box, got {cells}",
                                                 self._public_id(pid), path.name))
                bad.add(pid)
                continue
            boxes[pid].append(SourceTarget(
                label=opacity.canonical, source_label=OPACITY, kind="abnormality",
                geometry={"type": "box_xywh", "coords": coords, "space": BOX_SPACE},
                source_geometry="xywh@1024",
            ))
        for b in bad_rows:
            rows_read += 1
            quarantine.append(bad_row_quarantine(self.name, path, b, "patientId", self._public_id))
            if b.row.get("patientId"):
                bad.add(b.row["patientId"])
        classes, class_rows = self._classes(root, quarantine, files)
        rows_read += class_rows
        items: list[LabelledItem] = []
        for pid in sorted(targets):
            if pid in bad:
                continue
            values = set(targets[pid])
            if len(values) > 1:
                quarantine.append(quarantine_row(self.name, "labels", "contradictory_labels",
                                                 f"{path.name}: patient has rows with Target 0 and 1",
                                                 self._public_id(pid), path.name))
                continue
            positive = values == {1}
            item = LabelledItem(
                native_id=pid, image_relpath=f"{IMAGE_DIR}/{pid}.dcm", patient_raw=pid,
                modality="CR", body_part="chest", targets=boxes.get(pid, []),
            )
            status = "present" if positive else "absent"
            cls = classes.get(pid)
            if cls is None:  # no class-info row: Target is all we know
                item.abnormal = True if positive else None
                item.findings = [Finding(opacity.canonical, OPACITY, status)]
            elif cls == "":
                continue  # already quarantined as contradictory
            else:
                try:
                    mapping = self.map_label(cls)
                except UnknownLabelError as e:
                    quarantine.append(self.unknown_label_row(e, self._public_id(pid), CLASS_CSV))
                    continue
                if (mapping.kind == "finding") != positive:
                    quarantine.append(quarantine_row(
                        self.name, "labels", "contradictory_labels",
                        f"class {cls!r} disagrees with Target {int(positive)} in {path.name}",
                        self._public_id(pid), CLASS_CSV,
                    ))
                    continue
                item.abnormal = mapping.kind != "normal"
                item.complete = mapping.kind == "normal"
                item.findings = [Finding(opacity.canonical, OPACITY, status)]
                item.extra = {"class": cls}
            items.append(item)
        # class-info patients without any row in the labels file cannot be used
        for pid in sorted(set(classes) - set(targets)):
            quarantine.append(quarantine_row(self.name, "labels", "class_without_labels",
                                             f"{CLASS_CSV} names a patient that {path.name} lacks",
                                             self._public_id(pid), CLASS_CSV))
        # patients whose rows were rejected: their images are not reported again as unlabelled
        return LabelResult(items=items, quarantine=quarantine, label_files=files, rows_read=rows_read,
                           withheld=bad)

    def find_images(self, root: Path) -> dict[str, Path]:
        d = root / IMAGE_DIR
        if not d.is_dir():
            return {}
        return {p.stem: p for p in sorted(d.glob("*.dcm")) if not p.name.startswith(".")}
