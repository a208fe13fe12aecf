"""Medical Segmentation Decathlon: ``TaskXX_Name/{dataset.json, imagesTr/, labelsTr/, imagesTs/}``.

``dataset.json`` is the index: string-keyed ``labels`` and ``modality``, ``training`` pairs and
``test`` as plain path strings (dicts tolerated), paths relative to the task folder. The
``relase`` typo and every other metadata key are ignored. macOS ``._*`` AppleDouble files are
never listed by the index and never read. Labels are task-specific, so vocabulary keys are
``Task03_Liver/cancer``; Task01_BrainTumour's edema / non-enhancing / enhancing (not BraTS's
numbers) also get the BraTS regions TC and WT. Multi-channel (4D) images keep the
``modality`` names as channel names, in key order.

Splits: ``imagesTs`` cases are the official test set (no labels: unlabelled records);
training cases get a seeded train/val split by case (public split seed, ``pseudonym.SPLIT_POOLS``
"trainval"), never test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from shardsmith.schemas.vocabulary import UnknownLabelError
from shardsmith.sources.labelfiles import LabelFileError, read_json
from shardsmith.sources.medical.base import CatalogEntry, LabelledItem
from shardsmith.sources.medical.volumetric import LoadedCase, VolumeSource, quarantine_case, visible

TASK_RE = re.compile(r"^Task\d{2,3}_\w+$")
BODY_PART = {
    "braintumour": "brain", "heart": "chest", "liver": "abdomen", "hippocampus": "brain",
    "prostate": "pelvis", "lung": "chest", "pancreas": "abdomen", "hepaticvessel": "abdomen",
    "spleen": "abdomen", "colon": "abdomen",
}
CT_WINDOW = {"lung": "lung"}  # every other CT task is abdominal


def _task_kind(task: str) -> str:
    return task.split("_", 1)[1].lower() if "_" in task else task.lower()


def _rel(task_dir: Path, root: Path, path: str) -> Path:
    """Resolve an index path lexically (symlinked files stay inside), refusing ``..`` escapes."""
    p = Path(os.path.normpath(task_dir.absolute() / path))
    if not p.is_relative_to(root.absolute()):
        raise ValueError(f"path {path!r} leaves the dataset root")
    return p


def _index(meta: Any) -> tuple[list[str], dict[int, str], list[tuple[str, str | None, str]]]:
    """Modalities, label map and (image, label, kind) cases of a dataset.json; raises on a wrong shape."""
    # modality, labels and training are required: a misspelt key would silently drop every case
    modalities = [str(v) for _, v in sorted(meta["modality"].items(), key=lambda kv: int(kv[0]))]
    labels = {int(k): str(v) for k, v in meta["labels"].items()}
    cases: list[tuple[str, str | None, str]] = []
    for pair in meta["training"]:
        label = pair.get("label")
        if not isinstance(pair["image"], str) or not isinstance(label, str | None):
            raise TypeError(f"training entry {pair!r} does not name image and label paths")
        cases.append((pair["image"], label, "train"))
    for t in meta["test"]:
        image = t if isinstance(t, str) else t["image"]
        if not isinstance(image, str):
            raise TypeError(f"test entry {t!r} does not name an image path")
        cases.append((image, None, "test"))
    return modalities, labels, cases


class Msd(VolumeSource):
    name = "msd"
    partitioned = False
    licence = "CC BY-SA 4.0 (Medical Segmentation Decathlon)"
    citation = ('Antonelli et al., The Medical Segmentation Decathlon, Nature Communications 13, 4128 (2022'
                ')')
    homepage = 'http://medicaldecathlon.com/'
    layouts = (
        'TaskXX_Name/{dataset.json, imagesTr/, labelsTr/, imagesTs/}',
    )
    adapter_version = "1"
    default_modality = "CT"

    def _tasks(self, root: Path) -> list[Path]:
        if (root / "dataset.json").is_file():
            return [root]
        return sorted(p for p in root.iterdir() if p.is_dir() and visible(p.name) and TASK_RE.match(p.name)
                      and (p / "dataset.json").is_file()) if root.is_dir() else []

    def scan(self, root: Path) -> tuple[list[LabelledItem], list[dict], list[str]]:
        items: list[LabelledItem] = []
        quarantine: list[dict] = []
        files: list[str] = []
        for task_dir in self._tasks(root):
            task = task_dir.name
            index = task_dir / "dataset.json"
            files.append(str(index.relative_to(root)))
            meta = read_json(index)
            try:
                modalities, labels, cases = _index(meta)
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                raise LabelFileError(f"{index}: line 1: not an MSD dataset.json ({e.__class__.__name__}: {e})") from e
            is_ct = [m.upper() for m in modalities] == ["CT"]
            unknown = [lab for v, lab in labels.items() if v != 0 and not self.vocab.has(self.name, f"{task}/{lab}")]
            common: dict[str, Any] = {
                "task": task, "labels": {str(k): v for k, v in sorted(labels.items())},
                "channels": modalities if len(modalities) > 1 else None,
                "ct_window": CT_WINDOW.get(_task_kind(task), "abdomen") if is_ct else None,
            }
            for image_path, label_path, kind in cases:
                try:
                    image = _rel(task_dir, root, image_path)
                    label = _rel(task_dir, root, label_path) if label_path else None
                except ValueError as e:
                    quarantine.append(quarantine_case(self.name, "unsafe_path", str(e), task, str(index)))
                    continue
                stem = image.name.removesuffix(".gz").removesuffix(".nii")
                native_id = f"{task}/{stem}"
                if not visible(image.name):
                    continue
                if not image.is_file():
                    quarantine.append(quarantine_case(self.name, "image_missing",
                                                      f"dataset.json lists {image_path} but it is not on disk",
                                                      native_id, str(image.relative_to(root.absolute()))))
                    continue
                if label is not None and not label.is_file():
                    quarantine.append(quarantine_case(self.name, "label_missing",
                                                      f"dataset.json lists {label_path} but it is not on disk",
                                                      native_id, str(label.relative_to(root.absolute()))))
                    continue
                if unknown and label is not None:
                    err = UnknownLabelError(f"labels {unknown} of {task} are not in the vocabulary "
                                            f"(add msd,{task}/<label> to source_labels*.csv)")
                    quarantine.append(self.quarantine_unknown(err, native_id, str(index.relative_to(root))))
                    continue
                rroot = root.absolute()
                rel_files = [str(image.relative_to(rroot))] + ([str(label.relative_to(rroot))] if label else [])
                items.append(LabelledItem(
                    native_id=native_id, patient_raw=native_id,
                    # imagesTs is the official (unlabelled) test set; imagesTr gets a seeded train/val
                    # draw at record time (never test)
                    split="test" if kind == "test" else None, split_pool=None if kind == "test" else "trainval",
                    modality="CT" if is_ct else "MR", body_part=BODY_PART.get(_task_kind(task)),
                    extra=dict(common, main=rel_files[0], files=rel_files,
                               label=rel_files[1] if label else None),
                ))
        return items, quarantine, files

    def load_case(self, entry: CatalogEntry, root: Path) -> LoadedCase:
        from shardsmith.media import volume as V

        extra = entry.item.extra
        task = extra["task"]
        # CT is streamed into scratch files (never whole in memory, issue 24); MR is read whole, since
        # its intensity window is a percentile of the whole volume.
        if (entry.item.modality or self.default_modality) == "CT":
            channels = V.read_nifti_slabs(root / extra["main"], self.scratch_dir)
        else:
            channels = V.read_nifti(root / extra["main"], canonical=True)[0]
        names = extra.get("channels")
        if names and len(names) != len(channels):
            raise V.VolumeError("channel_count_mismatch",
                                f"dataset.json names {len(names)} channels, the image has {len(channels)}")
        label = None
        defs = []
        if extra.get("label"):
            label = V.read_nifti_labels_slabs(root / extra["label"], self.scratch_dir)
            pairs = [(int(v), f"{task}/{name}") for v, name in extra["labels"].items() if int(v) != 0]
            defs = self.label_defs(pairs)
            by_canon = {d.label: d.values[0] for d in defs}
            core = tuple(by_canon[c] for c in ("necrotic_tumor_core", "enhancing_tumor") if c in by_canon)
            if len(core) == 2 and "peritumoral_edema" in by_canon:
                defs.append(self.region_def(f"{task}/TC", tuple(sorted(core)), "abnormality"))
                whole = tuple(sorted((*core, by_canon["peritumoral_edema"])))
                defs.append(self.region_def(f"{task}/WT", whole, "abnormality"))
        return LoadedCase(channels=channels, channel_names=names, label=label, defs=defs)
