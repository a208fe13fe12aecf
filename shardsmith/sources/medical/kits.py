"""KiTS19 and KiTS23 kidney tumour CT.

Layouts: KiTS19 ``data/case_XXXXX/{imaging,segmentation}.nii.gz`` + ``data/kits.json``;
KiTS23 ``dataset/case_XXXXX/{imaging,segmentation}.nii.gz`` (+ ``instances/``, unused) +
``dataset/kits23.json``. The arrays are slice-first ``(num_slices, H, W)`` with an
axis-permuted affine (``sform_code=2``); the shared volume code follows the affine, never
the array order. Labels: 1 kidney, 2 tumour, 3 cyst (KiTS23). Derived regions:
kidney_and_mass = 1|2(|3) and, for KiTS23, mass = 2|3 (for KiTS19 mass equals tumour and is
not repeated). Cases without a segmentation (the official test images) become unlabelled
records with split ``test``; labelled cases are split deterministically by case.
"""

from __future__ import annotations

import re
from pathlib import Path

from shardsmith.sources.labelfiles import LabelFileError, read_json
from shardsmith.sources.medical.base import CatalogEntry, LabelledItem, age_band
from shardsmith.sources.medical.volumetric import LoadedCase, VolumeSource, quarantine_case, visible

CASE_RE = re.compile(r"^case_\d{5}$")
LAYOUTS = (("data", "kits.json", "19"), ("dataset", "kits23.json", "23"))


class Kits(VolumeSource):
    name = "kits"
    partitioned = False
    licence = "CC BY-NC-SA 4.0 (KiTS19 / KiTS23)"
    citation = ('Heller et al., The state of the art in kidney and kidney tumor segmentation in contrast-en'
                'hanced CT imaging: Results of the KiTS19 challenge, Medical Image Analysis 67 (2021)')
    homepage = 'https://kits-challenge.org/'
    layouts = (
        'KiTS19: data/case_XXXXX/{imaging,segmentation}.nii.gz + data/kits.json',
        'KiTS23: dataset/case_XXXXX/{imaging,segmentation}.nii.gz + dataset/kits23.json',
    )
    adapter_version = "1"
    default_modality = "CT"
    default_body_part = "abdomen"
    default_ct_window = "abdomen"

    def _layout(self, root: Path) -> tuple[Path, Path | None, str] | None:
        for folder, meta, version in LAYOUTS:
            if (root / folder).is_dir():
                m = root / folder / meta
                return root / folder, (m if m.is_file() else None), version
        return None

    def scan(self, root: Path) -> tuple[list[LabelledItem], list[dict], list[str]]:
        layout = self._layout(root)
        if layout is None:
            return [], [], []
        data, meta_path, version = layout
        meta: dict[str, dict] = {}
        files: list[str] = []
        if meta_path is not None:
            files.append(str(meta_path.relative_to(root)))
            rows = read_json(meta_path)
            if not isinstance(rows, list):
                raise LabelFileError(f"{meta_path}: line 1: expected a JSON list of cases, got {type(rows).__name__}")
            for i, row in enumerate(rows):
                if not (isinstance(row, dict) and isinstance(row.get("case_id"), str) and row["case_id"]):
                    # a case whose metadata cannot be found would be published without sex/age, silently
                    raise LabelFileError(f"{meta_path}: line 1: entry {i} is not an object with a case_id")
                meta[row["case_id"]] = row
        items, quarantine = [], []
        for case in sorted(p for p in data.iterdir() if p.is_dir() and visible(p.name) and CASE_RE.match(p.name)):
            rel = str(case.relative_to(root))
            image, seg = case / "imaging.nii.gz", case / "segmentation.nii.gz"
            if not image.is_file():
                quarantine.append(quarantine_case(self.name, "image_missing", "case has no imaging.nii.gz",
                                                  case.name, rel))
                continue
            row = meta.get(case.name, {})
            sex = {"male": "M", "female": "F"}.get(str(row.get("gender", "")).lower())
            case_files = [str(image.relative_to(root))]
            if seg.is_file():
                case_files.append(str(seg.relative_to(root)))
            items.append(LabelledItem(
                native_id=case.name, patient_raw=case.name, split=None if seg.is_file() else "test",
                modality="CT", body_part="abdomen", sex=sex,
                age_band=age_band(row.get("age_at_nephrectomy")),
                extra={"main": str(image.relative_to(root)), "files": case_files, "version": version,
                       "label": str(seg.relative_to(root)) if seg.is_file() else None},
            ))
        return items, quarantine, files

    def load_case(self, entry: CatalogEntry, root: Path) -> LoadedCase:
        from shardsmith.media import volume as V

        extra = entry.item.extra
        # Streamed into scratch files, never whole in memory: a KiTS CT runs to 1,000 slices (issue 24).
        channels = V.read_nifti_slabs(root / extra["main"], self.scratch_dir)
        label = None
        defs = []
        if extra.get("label"):
            label = V.read_nifti_labels_slabs(root / extra["label"], self.scratch_dir)
            if extra.get("version") == "23":
                defs = self.label_defs([(1, "kidney"), (2, "tumor"), (3, "cyst")])
                defs.append(self.region_def("kidney_and_mass", (1, 2, 3), "anatomy"))
                defs.append(self.region_def("mass", (2, 3), "abnormality"))
            else:
                defs = self.label_defs([(1, "kidney"), (2, "tumor")])
                defs.append(self.region_def("kidney_and_mass", (1, 2), "anatomy"))
        return LoadedCase(channels=channels, channel_names=None, label=label, defs=defs)
