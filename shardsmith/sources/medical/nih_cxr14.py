"""NIH ChestX-ray14: ``Data_Entry_2017[_v2020].csv``, ``BBox_List_2017.csv``, ``images_*/images/``.

Every image is labelled for the 14 NIH findings (NLP-mined from reports): a label in
``Finding Labels`` is present, the other 13 are absent; ``No Finding`` makes the image normal.
Boxes are x, y, w, h in the 1024x1024 release space and are scaled to the pixels on disk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError
from shardsmith.sources.labelfiles import BadRow, bad_row_quarantine, find_label_file, read_rows
from shardsmith.sources.medical.base import Finding, LabelledItem, LabelResult, SourceTarget, age_band
from shardsmith.sources.medical.cxr import CxrSource

NIH_LABELS = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)
NIH_BOX_SPACE = [1024, 1024]
# The BBox header is "Image Index,Finding Label,Bbox [x,y,w,h],,," (9 names for 6 values).
BBOX_FIELDS = ["Image Index", "Finding Label", "x", "y", "w", "h", "_1", "_2", "_3"]
ENTRY_REQUIRED = ("Image Index", "Finding Labels", "Patient ID", "View Position")
# The official lists, as LabelledItem split fields: test_list.txt is the official test split;
# train_val_list.txt only says "not test", so its images get a seeded train/val draw (no test).
# An image in neither list gets the seeded train/val/test split.
OFFICIAL_LISTS: dict[str, dict[str, str]] = {
    "train_val_list.txt": {"split_pool": "trainval"},
    "test_list.txt": {"split": "test"},
}


class NihCxr14(CxrSource):
    name = "nih_cxr14"
    partitioned = True
    licence = "NIH Clinical Center public release (no restrictions stated; cite Wang et al. 2017)"
    citation = ('Wang et al., ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on Weakly-Sup'
                'ervised Classification and Localization of Common Thorax Diseases, CVPR 2017')
    homepage = 'https://nihcc.app.box.com/v/ChestXray-NIHCC'
    layouts = (
        'Data_Entry_2017[_v2020].csv + BBox_List_2017.csv + images*/[images/]<Image Index>.png (+ train_val_list.txt / test_list.txt)',
    )
    adapter_version = "1"
    default_modality = "DX"

    def _entry_csv(self, root: Path) -> Path | None:
        return find_label_file(root, "Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")

    def detect(self, root: Path) -> bool:
        return self._entry_csv(root) is not None

    def _official_split(self, root: Path) -> dict[str, dict[str, str]]:
        """Image -> the LabelledItem split fields its official list gives (``OFFICIAL_LISTS``)."""
        split: dict[str, dict[str, str]] = {}
        for name, fields in OFFICIAL_LISTS.items():
            p = root / name
            if p.is_file():
                for line in p.read_text().split():
                    split[line.strip()] = fields
        return split

    def read_labels(self, root: Path) -> LabelResult:
        result = self.iter_labels(root)
        result.items = sorted(result.items, key=lambda it: it.native_id)
        return result

    def iter_labels(self, root: Path) -> LabelResult:
        """The entry file streamed row by row (112,120 rows); the box file (about 1,000 rows) is read
        first, so each image leaves with its boxes and nothing holds the source's items."""
        entry_csv = self._entry_csv(root)
        if entry_csv is None:
            return LabelResult(items=[])
        result = LabelResult(items=[], label_files=[str(entry_csv.relative_to(root))])
        box_csv = find_label_file(root, "BBox_List_2017.csv")
        boxes: list[tuple[str, str, SourceTarget | dict]] = []  # (image, where, target or quarantine row)
        box_bad: list[BadRow] = []
        if box_csv is not None:
            result.label_files.append(str(box_csv.relative_to(root)))
            for lineno, row in read_rows(box_csv, ("Image Index",), fieldnames=BBOX_FIELDS, skip_header=True,
                                         bad_rows=box_bad):
                image, label = row["Image Index"], row["Finding Label"]
                where = f"{box_csv.name}:{lineno}"
                try:
                    mapping = self.map_label(label)
                    coords = [float(row[c]) for c in ("x", "y", "w", "h")]
                except UnknownLabelError as e:
                    boxes.append((image, where, self.unknown_label_row(e, image, where)))
                    continue
                except ValueError:
                    boxes.append((image, where, quarantine_row(
                        self.name, "labels", "box_not_numeric", f"{where}: {[row[c] for c in 'xywh']}",
                        image, box_csv.name)))
                    continue
                boxes.append((image, where, SourceTarget(
                    label=mapping.canonical, source_label=label, kind="abnormality",
                    geometry={"type": "box_xywh", "coords": coords, "space": NIH_BOX_SPACE},
                    source_geometry="xywh@1024",
                )))
        targets: dict[str, list[SourceTarget]] = defaultdict(list)
        tainted: dict[str, str] = {}  # image -> where its first rejected box row is
        for image, where, got in boxes:
            if isinstance(got, SourceTarget):
                targets[image].append(got)
            else:
                tainted.setdefault(image, where)
        for b in box_bad:
            if b.row.get("Image Index"):
                tainted.setdefault(b.row["Image Index"], f"{box_csv.name}:{b.line}")  # type: ignore[union-attr]
        result.items = self._entries(root, entry_csv, box_csv, result, boxes, box_bad, targets, tainted)
        return result

    def _entries(self, root: Path, entry_csv: Path, box_csv: Path | None, result: LabelResult,
                 boxes: list, box_bad: list[BadRow], targets: dict[str, list[SourceTarget]],
                 tainted: dict[str, str]) -> Iterator[LabelledItem]:
        official = self._official_split(root)
        canonical = {lab: self.map_label(lab).canonical for lab in NIH_LABELS}
        quarantine = result.quarantine
        bad: list[BadRow] = []
        entered: set[str] = set()  # images with an accepted entry row
        for lineno, row in read_rows(entry_csv, ENTRY_REQUIRED, bad_rows=bad):
            result.rows_read += 1
            image = row["Image Index"]
            labels = [s.strip() for s in row["Finding Labels"].split("|") if s.strip()]
            try:
                mapped = {lab: self.map_label(lab) for lab in labels}
            except UnknownLabelError as e:
                quarantine.append(self.unknown_label_row(e, image, f"{entry_csv.name}:{lineno}"))
                continue
            normal = any(m.kind == "normal" for m in mapped.values())
            if normal and len(labels) > 1:
                quarantine.append(quarantine_row(self.name, "labels", "contradictory_labels",
                                                 f"{entry_csv.name}:{lineno}: {row['Finding Labels']!r}",
                                                 image, entry_csv.name))
                continue
            if image in entered:  # one image, two entry rows: which one is right is unknown
                quarantine.append(quarantine_row(self.name, "labels", "duplicate_entry_row",
                                                 f"{entry_csv.name}:{lineno}: {image!r} has an earlier row; "
                                                 "the first is kept", image, entry_csv.name))
                continue
            entered.add(image)
            if image in tainted:  # published later, with fewer boxes than the source draws: withheld
                continue
            patient = row["Patient ID"]
            follow_up = row.get("Follow-up #", "")
            yield LabelledItem(
                native_id=image,
                patient_raw=patient,
                study_raw=f"{patient}/{follow_up}" if follow_up else None,
                # Follow-up # orders a patient's visits (0 first) but gives no days between them
                study_order=int(follow_up) + 1 if follow_up.strip().isdigit() else None,
                **official.get(image, {}),
                view=row["View Position"] or None,
                modality="DX",
                body_part="chest",
                sex=row.get("Patient Gender") or None,
                age_band=age_band(row.get("Patient Age")),
                abnormal=not normal,
                complete=normal,
                findings=[Finding(canonical[lab], lab, "present" if lab in labels else "absent")
                          for lab in NIH_LABELS],
                targets=targets.get(image, []),
            )
        result.rows_read += len(bad)
        for b in bad:  # a cut entry row: its image is withheld (not reported again as unlabelled)
            quarantine.append(bad_row_quarantine(self.name, entry_csv, b, "Image Index"))
            if b.row.get("Image Index") and b.row["Image Index"] not in entered:
                result.withheld.add(b.row["Image Index"])
        if box_csv is None:
            return
        result.rows_read += len(boxes) + len(box_bad)
        for image, where, got in boxes:
            if image not in entered:
                quarantine.append(quarantine_row(self.name, "labels", "box_without_entry",
                                                 f"{where}: image not in {entry_csv.name}", image, box_csv.name))
            elif not isinstance(got, SourceTarget):
                quarantine.append(got)
        quarantine += [bad_row_quarantine(self.name, box_csv, b, "Image Index") for b in box_bad]
        # An image with a rejected box row would be published with fewer boxes than the source
        # draws: it is withheld, with its own row so that entry rows still reconcile.
        for image, where in sorted(tainted.items()):
            if image in entered:
                result.withheld.add(image)
                quarantine.append(quarantine_row(
                    self.name, "labels", "boxes_incomplete",
                    f"{entry_csv.name}: a box row of this image was rejected ({where}); not published "
                    "with fewer boxes", image, entry_csv.name))

    def find_images(self, root: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for pattern in ("images_*/images/*.png", "images/*.png", "images_*/*.png"):
            for p in sorted(root.glob(pattern)):
                if not p.name.startswith("."):
                    out.setdefault(p.name, p)
        return out
