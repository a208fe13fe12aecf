"""MS-CXR (Microsoft, PhysioNet): phrase grounding boxes on MIMIC-CXR-JPG images.

``MS_CXR_Local_Alignment_v1.1.0.csv`` (v1.0.0 has no ``split`` column), one row per box:
``dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split``. ``label_text``
is the radiologist's phrase that the box grounds; every target carries its own phrase
(``SourceTarget.text``) and the record ``text`` joins an image's distinct phrases with newlines.
Boxes are x, y, w, h in the original image pixels (``image_width`` x ``image_height``) and are
scaled to the stored image.

What the labels assert: each grounded category is present, so the image is abnormal. MS-CXR
grounds selected phrases only, so other findings stay unknown and complete is False. Images are
JPEGs at ``path`` (``files/p1x/p1xxxxxxx/sNNNNNNNN/<dicom_id>.jpg``) relative to the raw root.
Split: the file's ``split`` column (v1.1.0); v1.0.0 falls back to the deterministic patient split.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError
from shardsmith.sources.labelfiles import BadRow, bad_row_quarantine, find_label_file, read_rows
from shardsmith.sources.medical.base import Finding, LabelledItem, LabelResult, SourceTarget
from shardsmith.sources.medical.cxr import CxrSource

LABEL_FILES = ("MS_CXR_Local_Alignment_v1.1.0.csv", "MS_CXR_Local_Alignment_v1.0.0.csv")
REQUIRED = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")
PATH_IDS = re.compile(r"^files/p\d{2}/(p\d+)/(s\d+)/([^/]+)\.jpg$")
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


class MsCxr(CxrSource):
    name = "ms_cxr"
    partitioned = True
    gated = True
    path_names_patient = True  # MIMIC-CXR-JPG paths name the subject and study
    licence = "PhysioNet Credentialed Health Data License 1.5.0 (MS-CXR over MIMIC-CXR-JPG)"
    citation = ('Boecking et al., Making the Most of Text Semantics to Improve Biomedical Vision-Language P'
                'rocessing, ECCV 2022')
    homepage = 'https://physionet.org/content/ms-cxr/'
    layouts = (
        'MS_CXR_Local_Alignment_v1.*.csv (+ .json) + MIMIC-CXR-JPG files/pNN/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg',
    )
    adapter_version = "2"  # 2: raw_path in pseudonyms (it named the MIMIC subject and study)
    default_modality = "DX"

    def detect(self, root: Path) -> bool:
        return find_label_file(root, *LABEL_FILES) is not None

    def read_labels(self, root: Path) -> LabelResult:
        path = find_label_file(root, *LABEL_FILES)
        if path is None:
            return LabelResult(items=[])
        rows: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
        rows_read = 0
        bad: list[BadRow] = []
        for lineno, row in read_rows(path, REQUIRED, bad_rows=bad):
            rows_read += 1
            rows[row["dicom_id"]].append((lineno, row))
        items: list[LabelledItem] = []
        quarantine: list[dict] = []
        cut: set[str] = set()
        for b in bad:  # a cut row takes its image with it: an image's boxes belong together
            rows_read += 1
            quarantine.append(bad_row_quarantine(self.name, path, b, "dicom_id"))
            cut.add(b.row.get("dicom_id", ""))
        for dicom_id in sorted(rows):
            if dicom_id in cut:
                continue
            item, problem = self._item(dicom_id, rows[dicom_id], path.name)
            if problem:
                quarantine.append(quarantine_row(self.name, "labels", problem[0], problem[1], dicom_id, path.name))
                continue
            items.append(item)
        return LabelResult(items=items, quarantine=quarantine, label_files=[str(path.relative_to(root))],
                           rows_read=rows_read)

    def _item(
        self, dicom_id: str, rows: list[tuple[int, dict[str, str]]], fname: str
    ) -> tuple[LabelledItem | None, tuple[str, str] | None]:
        """All rows of one image -> one item; any bad row rejects the image (its boxes belong together)."""
        shared = {(r["path"], r["image_width"], r["image_height"], r.get("split", "")) for _, r in rows}
        if len(shared) > 1:
            return None, ("contradictory_labels", f"{fname}: rows of {dicom_id} disagree on path/size/split")
        relpath, width, height, split_raw = next(iter(shared))
        ids = PATH_IDS.match(relpath)
        if ids is None or ids.group(3) != dicom_id:
            return None, ("bad_path", f"{fname}: path {relpath!r} is not files/pNN/pN/sN/{dicom_id}.jpg")
        split = None
        if split_raw:
            split = SPLITS.get(split_raw.lower())
            if split is None:
                return None, ("bad_split", f"{fname}: split {split_raw!r} is not train/val/test")
        try:
            space = [float(width), float(height)]
        except ValueError:
            return None, ("bad_size", f"{fname}: image size {width!r} x {height!r} is not numeric")
        targets: list[SourceTarget] = []
        present: dict[str, str] = {}  # canonical -> first source label
        phrases: list[str] = []
        for lineno, r in rows:
            where = f"{fname}:{lineno}"
            try:
                mapping = self.map_label(r["category_name"])
            except UnknownLabelError as e:
                return None, ("unknown_label", f"{where}: {e}")
            try:
                coords = [float(r[c]) for c in ("x", "y", "w", "h")]
            except ValueError:
                return None, ("box_not_numeric", f"{where}: {[r[c] for c in ('x', 'y', 'w', 'h')]}")
            phrase = r["label_text"] or None
            if phrase and phrase not in phrases:
                phrases.append(phrase)
            present.setdefault(mapping.canonical, r["category_name"])
            targets.append(SourceTarget(
                label=mapping.canonical, source_label=r["category_name"], kind="abnormality",
                geometry={"type": "box_xywh", "coords": coords, "space": space},
                source_geometry="xywh@native", text=phrase,
            ))
        return LabelledItem(
            native_id=dicom_id,
            image_relpath=relpath,
            patient_raw=ids.group(1),
            study_raw=ids.group(2),
            split=split,
            modality="DX",
            body_part="chest",
            abnormal=True,
            complete=False,
            findings=[Finding(canonical, label, "present") for canonical, label in sorted(present.items())],
            targets=targets,
            text="\n".join(phrases) or None,
        ), None

    def find_images(self, root: Path) -> dict[str, Path]:
        """The CSV names each image's path; MIMIC-CXR-JPG holds far more images than MS-CXR uses,
        so unreferenced JPEGs under ``files/`` are not this source's inputs and are not walked."""
        return {}
