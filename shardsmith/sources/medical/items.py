"""The label side of a medical source as data: findings and targets in the source's own geometry,
one labelled item per image or volume, and the catalog that joins items with files on disk.
Plain dataclasses that serialise to JSON (the staged catalog stores them as text)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)  # a source holds hundreds of thousands: no per-object __dict__
class Finding:
    """Level 2: one canonical label with its status as the source states it."""

    label: str
    source_label: str
    status: str  # present | absent | uncertain
    readers: list[str] = field(default_factory=list)


@dataclass(slots=True)  # a source holds hundreds of thousands: no per-object __dict__
class SourceTarget:
    """Level 3 in the source's own geometry; rendered onto the stored image at record time.

    ``geometry`` is one of:
      {"type": "box_xyxy", "coords": [x0, y0, x1, y1], "space": [w, h] | None}
      {"type": "box_xywh", "coords": [x, y, w, h], "space": [w, h] | None}
      {"type": "siim_rle", "rle": "...", "size": [h, w] | None}
      {"type": "polygon", "points": [[x, y], ...], "space": [w, h] | None}
      {"type": "coco_rle", "rle": {"size": [h, w], "counts": "..."}}
      {"type": "mask_ref", ...}   (adapter-specific, handled by the adapter itself)
    ``space`` None means "native pixel grid of the image as decoded"; otherwise the coordinates
    are in that fixed space (NIH boxes are in 1024x1024 even when the PNG is smaller).
    """

    label: str
    source_label: str
    kind: str  # abnormality | anatomy
    geometry: dict[str, Any]
    source_geometry: str  # e.g. "xyxy@native", "xywh@1024", "siim-rle", "polygon@1024"
    reader: str | None = None
    text: str | None = None


@dataclass(slots=True)  # a source holds hundreds of thousands: no per-object __dict__
class LabelledItem:
    """Everything the label files say about one image (or volume), before any pixel is read."""

    native_id: str
    image_relpath: str | None = None  # relative to the source root, if the label file names it
    patient_raw: str | None = None  # raw ids: pseudonymised before they reach a record
    study_raw: str | None = None
    split: str | None = None  # the source's official split, if any
    # Without an official split: the SPLIT_POOLS row the seeded split draws from ("trainval" for an
    # official training set with no test/val cut of its own); None draws train/val/test.
    split_pool: str | None = None
    view: str | None = None
    modality: str | None = None
    body_part: str | None = None
    sex: str | None = None
    age_band: str | None = None
    abnormal: bool | None = None
    complete: bool = False
    findings: list[Finding] = field(default_factory=list)
    targets: list[SourceTarget] = field(default_factory=list)
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Where the study sits in the patient's history (pairs view): never a date, only the day offset
    # from the patient's first study in the source and the study's 1-based order.
    study_day: int | None = None
    study_order: int | None = None
    # A report split into its sections ([{"name": "FINDINGS", "text": ...}], in report order).
    report_sections: list[dict[str, str]] | None = None

    def to_json(self) -> str:
        """The same text as ``json.dumps(asdict(self), sort_keys=True)``, without asdict's deep copy
        (it was the largest per-row cost of writing a catalog)."""
        d = fields_of(self)
        d["findings"] = [fields_of(f) for f in self.findings]
        d["targets"] = [fields_of(t) for t in self.targets]
        return json.dumps(d, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LabelledItem:
        d = json.loads(text)
        d["findings"] = [Finding(**f) for f in d.get("findings", [])]
        d["targets"] = [SourceTarget(**t) for t in d.get("targets", [])]
        return cls(**d)


def fields_of(obj: Any) -> dict[str, Any]:
    """A slots dataclass's fields as a dict, without asdict's deep copy."""
    return {name: getattr(obj, name) for name in obj.__slots__}


@dataclass
class LabelResult:
    items: list[LabelledItem]
    quarantine: list[dict] = field(default_factory=list)
    label_files: list[str] = field(default_factory=list)
    rows_read: int = 0  # label-file rows consumed; reconciles with items + quarantine at row level
    # Native ids withheld because some of their label rows were quarantined: publishing them would
    # assert less (or other) than the source says. Their images are not reported again as unlabelled.
    withheld: set[str] = field(default_factory=set)


@dataclass
class CatalogEntry:
    item: LabelledItem
    raw_path: str  # relative to the source root
    raw_sha256: str
    size: int


@dataclass
class Catalog:
    entries: list[CatalogEntry]
    quarantine: list[dict]
    label_files: list[str]
    images_on_disk: int

    @property
    def inputs(self) -> int:
        return len(self.entries) + len(self.quarantine)


@dataclass
class CatalogStream:
    """A catalog read once, in order: ``entries`` is a one-shot iterator, and ``quarantine`` is
    complete only after it is exhausted (rows are added while joining)."""

    entries: Iterator[CatalogEntry]
    quarantine: list[dict]
    label_files: list[str]
    images_on_disk: int
