"""BraTS glioma MRI, 2021 and 2023 (GLI) layouts, pinned by file naming.

* 2021: ``BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz``; labels 1 NCR/NET,
  2 edema, 4 enhancing tumour (exactly {0,1,2,4}: anything else quarantines the case).
* 2023: ``BraTS-GLI-XXXXX-YYY/BraTS-GLI-XXXXX-YYY-{t1n,t1c,t2w,t2f,seg}.nii.gz``; 4 -> 3
  (1 NCR, 2 SNFH/edema, 3 ET). ``XXXXX`` is the patient, ``YYY`` the time point.

Sequences become channels named T1, T1CE, T2, FLAIR (in that order) for both years.
Derived regions besides the raw labels: TC = NCR|ET and WT = NCR|ED|ET. The ET region equals
the raw enhancing-tumour label, so it is not repeated as a second target. Cases without a
``seg`` file (validation releases) become unlabelled records with split ``test``.
"""

from __future__ import annotations

import re
from pathlib import Path

from shardsmith.sources.medical.base import CatalogEntry, LabelledItem
from shardsmith.sources.medical.volumetric import LoadedCase, VolumeSource, quarantine_case, visible

SEQUENCES = ("T1", "T1CE", "T2", "FLAIR")
NAMING = {
    "2021": (re.compile(r"^(BraTS2021_\d+)_(t1|t1ce|t2|flair|seg)\.nii(?:\.gz)?$"),
             {"t1": "T1", "t1ce": "T1CE", "t2": "T2", "flair": "FLAIR"}),
    "2023": (re.compile(r"^(BraTS-[A-Z]+-\d+-\d+)-(t1n|t1c|t2w|t2f|seg)\.nii(?:\.gz)?$"),
             {"t1n": "T1", "t1c": "T1CE", "t2w": "T2", "t2f": "FLAIR"}),
}
LABELS = {"2021": ((1, "2021:1"), (2, "2021:2"), (4, "2021:4")),
          "2023": ((1, "2023:1"), (2, "2023:2"), (3, "2023:3"))}


class Brats(VolumeSource):
    name = "brats"
    partitioned = False
    gated = True
    licence = "BraTS challenge data terms (Synapse)"
    citation = ('Baid et al., The RSNA-ASNR-MICCAI BraTS 2021 Benchmark on Brain Tumor Segmentation and Rad'
                'iogenomic Classification, arXiv:2107.02314 (2021)')
    homepage = 'https://www.synapse.org/brats'
    layouts = (
        '2021: BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz',
        '2023 GLI: BraTS-GLI-XXXXX-YYY/BraTS-GLI-XXXXX-YYY-{t1n,t1c,t2w,t2f,seg}.nii.gz',
    )
    adapter_version = "1"
    default_modality = "MR"
    default_body_part = "brain"

    def scan(self, root: Path) -> tuple[list[LabelledItem], list[dict], list[str]]:
        cases: dict[tuple[str, str], dict[str, Path]] = {}
        if not root.is_dir():
            return [], [], []
        for path in sorted(root.rglob("*.nii*")):
            if not visible(path.name) or any(not visible(p) for p in path.relative_to(root).parts):
                continue
            for year, (pattern, _) in NAMING.items():
                m = pattern.match(path.name)
                if m:
                    cases.setdefault((year, m.group(1)), {})[m.group(2)] = path
                    break
        items, quarantine = [], []
        for (year, case_id), found in sorted(cases.items(), key=lambda kv: kv[0][1]):
            seq_map = NAMING[year][1]
            missing = [s for s in seq_map if s not in found]
            rel = str(next(iter(found.values())).parent.relative_to(root))
            if missing:
                quarantine.append(quarantine_case(self.name, "sequence_missing",
                                                  f"{case_id} lacks sequences {missing}", case_id, rel))
                continue
            ordered = sorted(seq_map, key=lambda s: SEQUENCES.index(seq_map[s]))
            images = [str(found[s].relative_to(root)) for s in ordered]
            seg = str(found["seg"].relative_to(root)) if "seg" in found else None
            patient = case_id.rsplit("-", 1)[0] if year == "2023" else case_id
            items.append(LabelledItem(
                native_id=case_id, patient_raw=patient, split=None if seg else "test",
                modality="MR", body_part="brain",
                extra={"main": images[0], "images": images, "label": seg, "year": year,
                       "files": images + ([seg] if seg else [])},
            ))
        return items, quarantine, []

    def load_case(self, entry: CatalogEntry, root: Path) -> LoadedCase:
        from shardsmith.media import volume as V

        extra = entry.item.extra
        channels = []
        for rel in extra["images"]:
            chans, _ = V.read_nifti(root / rel, canonical=True)
            if len(chans) != 1:
                raise V.VolumeError("bad_dimensions", f"{Path(rel).name}: expected one 3D sequence per file")
            channels.append(chans[0])
        label, defs = None, []
        if extra.get("label"):
            label, _ = V.read_nifti_labels(root / extra["label"], canonical=True)
            year = extra["year"]
            (ncr, _), (ed, _), (et, _) = LABELS[year]
            defs = self.label_defs(list(LABELS[year]))
            defs.append(self.region_def("TC", (ncr, et), "abnormality"))
            defs.append(self.region_def("WT", (ncr, ed, et), "abnormality"))
        return LoadedCase(channels=channels, channel_names=list(SEQUENCES), label=label, defs=defs)
