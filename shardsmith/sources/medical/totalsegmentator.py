"""TotalSegmentator CT: ``[Totalsegmentator_dataset/]sNNNN/{ct.nii.gz, segmentations/<structure>.nii.gz}``
plus a ``;``-separated ``meta.csv`` (``image_id``, ``split`` train/val/test, age, gender …).

Every structure file is a binary mask; its file stem is the source label (v1 and v2 names are
in the vocabulary; an unknown structure quarantines the case rather than being dropped). All
structures are anatomy targets except ``kidney_cyst_*`` (findings). For the stored label map
the masks are combined with one fixed value per structure for the whole source (vocabulary
order), painting anatomy first and findings last, so a cyst inside a kidney mask stays visible;
the volume's ``label_names`` lists the values.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from shardsmith.sources.labelfiles import read_rows
from shardsmith.sources.medical.base import CatalogEntry, LabelledItem, age_band
from shardsmith.sources.medical.volumetric import (
    LoadedCase,
    TargetDef,
    VolumeSource,
    quarantine_case,
    visible,
)

CASE_RE = re.compile(r"^s\d{4}$")
SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


class TotalSegmentator(VolumeSource):
    name = "totalsegmentator"
    partitioned = False
    licence = "CC BY 4.0 (TotalSegmentator)"
    citation = ('Wasserthal et al., TotalSegmentator: Robust Segmentation of 104 Anatomic Structures in CT '
                'Images, Radiology: Artificial Intelligence 5(5) (2023)')
    homepage = 'https://zenodo.org/records/10047292'
    layouts = (
        "[Totalsegmentator_dataset/]sNNNN/{ct.nii.gz, segmentations/<structure>.nii.gz} + meta.csv (';'-separated)",
    )
    adapter_version = "1"
    default_modality = "CT"
    default_body_part = None
    default_ct_window = "soft_tissue"

    def _base(self, root: Path) -> Path:
        nested = root / "Totalsegmentator_dataset"
        return nested if nested.is_dir() else root

    def _values(self) -> dict[str, int]:
        """One label value per structure for the whole source, fixed by vocabulary order."""
        rows = self.vocab.source_rows(self.name)
        return {m.source_label: i for i, m in enumerate(rows, start=1)}

    def _meta(self, base: Path, root: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
        for candidate in (base / "meta.csv", root / "meta.csv"):
            if candidate.is_file():
                # a cut row raises (LabelFileError naming the line): its case would lose its split
                out = {row["image_id"]: row for _, row in read_rows(candidate, ("image_id",), delimiter=";")
                       if row["image_id"]}
                return out, [str(candidate.relative_to(root))]
        return {}, []

    def scan(self, root: Path) -> tuple[list[LabelledItem], list[dict], list[str]]:
        if not root.is_dir():
            return [], [], []
        base = self._base(root)
        meta, files = self._meta(base, root)
        items, quarantine = [], []
        for case in sorted(p for p in base.iterdir() if p.is_dir() and CASE_RE.match(p.name)):
            rel = str(case.relative_to(root))
            ct = case / "ct.nii.gz"
            if not ct.is_file():
                quarantine.append(quarantine_case(self.name, "image_missing", "case has no ct.nii.gz", case.name, rel))
                continue
            seg_dir = case / "segmentations"
            masks = sorted(p for p in seg_dir.glob("*.nii*") if visible(p.name)) if seg_dir.is_dir() else []
            structures = {p.name.split(".nii")[0]: p for p in masks}
            unknown = sorted(s for s in structures if not self.vocab.has(self.name, s))
            if unknown:
                quarantine.append(quarantine_case(
                    self.name, "unknown_label",
                    f"structures {unknown} are not in the vocabulary (add totalsegmentator rows)", case.name, rel))
                continue
            row = meta.get(case.name, {})
            sex = {"m": "M", "f": "F", "male": "M", "female": "F"}.get(row.get("gender", "").lower())
            split = SPLITS.get(row.get("split", "").lower())
            rel_masks = {s: str(p.relative_to(root)) for s, p in structures.items()}
            items.append(LabelledItem(
                native_id=case.name, patient_raw=case.name, split=split, modality="CT",
                sex=sex, age_band=age_band(row.get("age") or None),
                extra={"main": str(ct.relative_to(root)), "masks": rel_masks,
                       "files": [str(ct.relative_to(root)), *rel_masks.values()]},
            ))
        return items, quarantine, files

    def load_case(self, entry: CatalogEntry, root: Path) -> LoadedCase:
        import SimpleITK as sitk

        from shardsmith.media import volume as V

        extra = entry.item.extra
        channels, _ = V.read_nifti(root / extra["main"], canonical=True)
        ref = channels[0]
        values = self._values()
        label_arr = np.zeros(sitk.GetArrayViewFromImage(ref).shape, dtype=np.uint8 if len(values) < 256 else np.uint16)
        defs: list[TargetDef] = []
        loaded = []
        for structure, rel in sorted(extra["masks"].items()):
            mask, _ = V.read_nifti_labels(root / rel, canonical=True)
            V.check_same_grid(ref, mask, "label")
            arr = sitk.GetArrayViewFromImage(mask)
            if arr.max(initial=0) > 1:
                raise V.VolumeError("label_not_binary", f"{Path(rel).name}: structure mask is not binary")
            m = self.map_label(structure)
            loaded.append((m.kind == "finding", structure, arr > 0))
            defs.extend(self.label_defs([(values[structure], structure)], geometry="binary mask file; label-map"))
        for _, structure, arr in sorted(loaded, key=lambda t: t[0]):  # anatomy first, findings on top
            label_arr[arr] = values[structure]
        label = sitk.GetImageFromArray(label_arr)
        label.CopyInformation(ref)
        return LoadedCase(channels=channels, channel_names=None, label=label, defs=defs)
