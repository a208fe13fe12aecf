"""What every medical source adapter provides, and the machinery they share.

An adapter splits its work in two so that label statistics never need pixels:

* ``read_labels(root)`` parses only the label files into :class:`LabelledItem` objects
  (findings and targets still in the source's own geometry) plus quarantine rows for label rows
  that cannot be used;
* ``find_images(root)`` maps native ids to image files on disk.

The catalog joins the two (a labelled item without an image is quarantined, never published);
``build_records`` then decodes pixels and turns each item into one or more record rows of
``schemas.records.RECORDS_SCHEMA`` (one for a 2D image, one per slice for volumes).
"""

from __future__ import annotations

import errno
import gc
import heapq
import json
import logging
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from shardsmith.config import Settings
from shardsmith.errors import RecordError
from shardsmith.hashing import sha256_file
from shardsmith.pseudonym import pseudonymise, seeded_split, stable_id
from shardsmith.schemas.demographics import age_band
from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError, Vocabulary, load_vocabulary
from shardsmith.sources.base import Source
from shardsmith.sources.medical.patient_splits import PatientSplits

__all__ = ["Catalog", "CatalogEntry", "CatalogStream", "Finding", "LabelResult", "LabelledItem", "MedicalSource", "RecordError",
           "SourceTarget", "age_band", "sha256_file"]

log = logging.getLogger(__name__)


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

    def to_json(self) -> str:
        """The same text as ``json.dumps(asdict(self), sort_keys=True)``, without asdict's deep copy
        (it was the largest per-row cost of writing a catalog)."""
        d = _fields_of(self)
        d["findings"] = [_fields_of(f) for f in self.findings]
        d["targets"] = [_fields_of(t) for t in self.targets]
        return json.dumps(d, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LabelledItem:
        d = json.loads(text)
        d["findings"] = [Finding(**f) for f in d.get("findings", [])]
        d["targets"] = [SourceTarget(**t) for t in d.get("targets", [])]
        return cls(**d)


def _fields_of(obj: Any) -> dict[str, Any]:
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


class SpilledItem:
    """A labelled item read back from a spilled run: its id, image path and JSON text, which is all
    the catalog writes (``to_json`` returns the text as written). Any other field decodes the item
    from the text on access, so code that reads the fields still sees a ``LabelledItem``'s values."""

    __slots__ = ("native_id", "image_relpath", "_json")

    def __init__(self, native_id: str, image_relpath: str | None, text: str) -> None:
        self.native_id, self.image_relpath, self._json = native_id, image_relpath, text

    def to_json(self) -> str:
        return self._json

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(LabelledItem.from_json(self._json), name)


class SortedItems:
    """Labelled items in native-id order (stable: equal ids keep their arrival order), holding at
    most ``run_items`` of them: a full run is sorted and written, as (id, JSON text) pairs, to a
    temporary file, and :meth:`merged` merges the runs lazily into :class:`SpilledItem` s. A source
    smaller than one run never touches the disk and yields its own items. ``ids`` collects every
    native id seen (the catalog needs them to find unlabelled images)."""

    PICKLE_BATCH = 256  # rows per pickle: one call per row would cost more than the sort

    def __init__(self, run_items: int = 16_384) -> None:
        self.run_items = run_items
        self.buffer: list[tuple[str, int, LabelledItem]] = []
        self.runs: list[IO[bytes]] = []
        self.ids: set[str] = set()
        self.count = 0

    def add(self, item: LabelledItem) -> None:
        self.buffer.append((item.native_id, self.count, item))
        self.ids.add(item.native_id)
        self.count += 1
        if len(self.buffer) >= self.run_items:
            self._spill()

    def _spill(self) -> None:
        self.buffer.sort(key=_run_key)
        rows = [(nid, seq, it.image_relpath, it.to_json()) for nid, seq, it in self.buffer]
        self.buffer = []
        fh = tempfile.TemporaryFile(prefix="shardsmith-labels-")  # noqa: SIM115  # closed by merged()
        for i in range(0, len(rows), self.PICKLE_BATCH):
            pickle.dump(rows[i:i + self.PICKLE_BATCH], fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.seek(0)
        self.runs.append(fh)

    @staticmethod
    def _read(fh: IO[bytes]) -> Iterator[tuple[str, int, str | None, str]]:
        try:
            while True:
                try:
                    batch = pickle.load(fh)
                except EOFError:
                    return
                yield from batch
        finally:
            fh.close()

    def merged(self) -> Iterator[LabelledItem | SpilledItem]:
        """Every item once, in order; each is released as it is yielded."""
        if not self.runs:
            buffer, self.buffer = self.buffer, []
            buffer.sort(key=_run_key)
            buffer.reverse()
            while buffer:
                yield buffer.pop()[2]
            return
        if self.buffer:
            self._spill()
        runs, self.runs = self.runs, []
        for nid, _seq, relpath, text in heapq.merge(*(self._read(fh) for fh in runs), key=_run_key):
            yield SpilledItem(nid, relpath, text)


def _run_key(entry: tuple) -> tuple[str, int]:
    return entry[0], entry[1]


class MedicalSource(Source):
    """Base class for one public dataset. Subclasses set the class attributes and override hooks."""

    collection: ClassVar[str] = "medical"
    # When the dataset's own image id is a patient identifier (RSNA's patientId), native ids and
    # paths are pseudonymised before they reach a record.
    native_id_identifies_patient: ClassVar[bool] = False
    # Images on disk without any label row: "quarantine" (default) or "unlabelled" (published
    # with abnormal=None and no findings, e.g. SIIM images without a CSV row).
    unlabelled_images: ClassVar[str] = "quarantine"

    def __init__(self, vocabulary: Vocabulary | None = None, settings: Settings | None = None):
        self.vocab = vocabulary or load_vocabulary(tuple(self.vocabulary_files))

    # -- hooks ---------------------------------------------------------------------------------
    def read_labels(self, root: Path) -> LabelResult:
        raise NotImplementedError

    def iter_labels(self, root: Path) -> LabelResult:
        """``read_labels`` for the catalog: ``items`` may be a one-shot iterator in any order, and
        ``quarantine``, ``rows_read`` and ``withheld`` are complete once it is exhausted. Sources of
        10^5 rows override it to stream their label files; the default reads them at once."""
        return self.read_labels(root)

    def find_images(self, root: Path) -> dict[str, Path]:
        raise NotImplementedError

    def build_records(self, entry: CatalogEntry, root: Path, settings: Settings) -> Iterator[dict]:
        """Decode one catalog entry into record rows. Raise RecordError for a quarantine."""
        raise NotImplementedError

    def extra_tables(self) -> dict[str, Any]:
        """Further tables this source writes beside ``records`` (name -> Arrow schema), e.g.
        ``{"volumes": VOLUMES_SCHEMA}`` for 3D sources. Rows come from ``build_extra``."""
        return {}

    def build_extra(self, table: str, entry: CatalogEntry, root: Path, settings: Settings) -> Iterator[dict]:
        """Rows of an extra table for one entry; raising RecordError quarantines the whole entry."""
        raise NotImplementedError(f"{self.name} declares table {table!r} but does not build it")

    # -- shared machinery ----------------------------------------------------------------------
    def map_label(self, source_label: str):
        """Vocabulary lookup for this source; raises UnknownLabelError naming the label."""
        return self.vocab.lookup(self.name, source_label)

    def unknown_label_row(self, err: UnknownLabelError, native_id: str | None, label_file: str) -> dict:
        return quarantine_row(self.name, "labels", "unknown_label", str(err), native_id, label_file)

    def catalog(self, root: Path, checksum: bool = True, known_sha256: dict[str, str] | None = None) -> Catalog:
        """Join labels with images on disk; checksum the images (no pixel decoding).

        ``known_sha256`` (relative path -> digest) lets a caller that has just fingerprinted the
        raw tree pass its digests in, so no file is hashed twice. This holds every entry in memory;
        staging uses :meth:`catalog_stream`, which yields them one at a time.
        """
        stream = self.catalog_stream(root, checksum, known_sha256)
        entries = list(stream.entries)
        return Catalog(entries, stream.quarantine, stream.label_files, stream.images_on_disk)

    def catalog_quarantine_extra(self, root: Path) -> list[dict]:
        """Quarantine rows a source finds while cataloguing besides the label/image join (e.g.
        unsafe archive members); appended after the join's own rows."""
        return []

    def catalog_stream(self, root: Path, checksum: bool = True,
                       known_sha256: dict[str, str] | None = None) -> CatalogStream:
        """The catalog as a one-pass stream in native-id order (the same entries and quarantine rows,
        in the same order, as :meth:`catalog`).

        Each labelled item is released once its entry has been yielded, so a consumer that writes
        entries out as they come (``staging.runner.write_catalog``) holds one batch, not the source.
        ``quarantine`` is complete once ``entries`` is exhausted.
        """
        # Millions of small label objects stay alive while the labels are read: with the cyclic GC on,
        # each full collection walks all of them again (NIH's 112,120 rows took 85 s instead of ~8 s).
        # They hold no reference cycles, so reference counting frees them; the GC is paused here only.
        paused = gc.isenabled()
        gc.disable()
        runs = SortedItems()
        patients = PatientSplits()
        try:
            labels = self.iter_labels(root)
            for item in labels.items:  # spilled to disk in sorted runs: memory stays flat in rows
                patients.add(item.patient_raw, item.split)
                runs.add(item)
            labels.items = []
            images = self.find_images(root)
        finally:
            if paused:
                gc.enable()
        seen = runs.ids
        seen.update(labels.withheld)
        unlabelled = [(nid, p) for nid, p in sorted(images.items()) if nid not in seen]
        runs.ids = set()
        del seen
        stream = CatalogStream(iter(()), list(labels.quarantine), labels.label_files, len(images))
        stream.entries = self._join(root, runs.merged(), images, unlabelled, stream.quarantine, checksum,
                                    known_sha256 or {}, patients.overrides())
        return stream

    def unlabelled_item(self, native_id: str, path: Path, root: Path) -> LabelledItem:
        """The item of an image published without labels (``unlabelled_images = "unlabelled"``);
        a source whose unlabelled images are an official test set says so here."""
        return LabelledItem(native_id=native_id)

    def _join(self, root: Path, items: Iterator[LabelledItem], images: dict[str, Path],
              unlabelled: list[tuple[str, Path]], quarantine: list[dict], checksum: bool,
              known: dict[str, str], patient_split: dict[str, str]) -> Iterator[CatalogEntry]:
        """``patient_split``: raw patient id -> its strictest official split, for the patients whose
        official splits disagree (``patient_splits.PatientSplits``; usually none, and then no item
        is decoded for the lookup)."""
        publish_unlabelled = self.unlabelled_images == "unlabelled"
        extra = iter(unlabelled if publish_unlabelled else ())
        pending_extra = next(extra, None)
        for item in items:
            while pending_extra is not None and pending_extra[0] < item.native_id:
                yield from self._entries_for(self.unlabelled_item(*pending_extra, root), pending_extra[1], root,
                                             quarantine, checksum, known)
                pending_extra = next(extra, None)
            wanted = patient_split.get(item.patient_raw) if patient_split else None
            if wanted is not None and item.split != wanted:
                item = LabelledItem.from_json(item.to_json())
                item.split, item.split_pool = wanted, None
            path = images.pop(item.native_id, None)
            if path is None and item.image_relpath:
                candidate = root / item.image_relpath
                path = candidate if candidate.is_file() else None
            if path is None:
                quarantine.append(
                    quarantine_row(
                        self.name, "catalog", "image_missing",
                        f"label rows name {item.native_id!r} but no image file is on disk",
                        self._public_id(item.native_id), item.image_relpath,
                    )
                )
                continue
            yield from self._entries_for(item, path, root, quarantine, checksum, known)
        while pending_extra is not None:
            yield from self._entries_for(self.unlabelled_item(*pending_extra, root), pending_extra[1], root,
                                         quarantine, checksum, known)
            pending_extra = next(extra, None)
        if not publish_unlabelled:
            for native_id, path in unlabelled:
                quarantine.append(
                    quarantine_row(
                        self.name, "catalog", "unlabelled_image", "image on disk has no row in any label file",
                        self._public_id(native_id), str(path.relative_to(root)),
                    )
                )
        quarantine.extend(self.catalog_quarantine_extra(root))

    def _entries_for(self, item: LabelledItem, path: Path, root: Path, quarantine: list[dict], checksum: bool,
                     known: dict[str, str]) -> Iterator[CatalogEntry]:
        out: list[CatalogEntry] = []
        self._add_entry(out, quarantine, item, path, root, checksum, known)
        yield from out

    def _add_entry(self, entries: list[CatalogEntry], quarantine: list[dict], item: LabelledItem, path: Path,
                   root: Path, checksum: bool, known: dict[str, str]) -> None:
        """Checksum one file into the catalog; a file that cannot be read (a symlink loop, a dangling
        link, no permission) is quarantined here instead of stopping the whole scan."""
        try:
            digest = known.get(path.relative_to(root).as_posix()) if checksum else None
            entry = self._entry(item, path, root, checksum and digest is None)
            if digest is not None:
                entry.raw_sha256 = digest
            entries.append(entry)
        except OSError as e:
            reason = {errno.ELOOP: "symlink_loop", errno.ENOENT: "dangling_link"}.get(e.errno, "unreadable")
            try:
                rel = str(path.relative_to(root))
            except ValueError:
                rel = str(path)
            quarantine.append(quarantine_row(
                self.name, "catalog", reason, f"{rel}: cannot read ({e.strerror or e})",
                self._public_id(item.native_id), rel,
            ))

    def _entry(self, item: LabelledItem, path: Path, root: Path, checksum: bool) -> CatalogEntry:
        return CatalogEntry(
            item=item,
            raw_path=str(path.relative_to(root)),
            raw_sha256=sha256_file(path) if checksum else "",
            size=path.stat().st_size,
        )

    def _public_id(self, native_id: str) -> str:
        if self.native_id_identifies_patient:
            return pseudonymise(native_id, self.name + ":native") or native_id
        return native_id

    def split_of(self, item: LabelledItem | SpilledItem, split_seed: str) -> tuple[str, str]:
        """(split, split_source): the dataset's official split, else a seeded draw from the public
        ``split_seed``, the source and the NATIVE patient id (the native image id without one), never
        the keyed pseudonym, so the split does not change with the key. The native id is hashed
        here and never written out."""
        if item.split:
            return item.split, "official"
        return seeded_split(split_seed, self.name, item.patient_raw or item.native_id, item.split_pool or "all"), "seeded"

    def record_base(self, entry: CatalogEntry, slice_index: int | None = None, *, split_seed: str) -> dict:
        """Fields every record of this entry shares: ids, pseudonyms, split, provenance."""
        item = entry.item
        native_id = self._public_id(item.native_id)
        patient = pseudonymise(item.patient_raw, self.name) if item.patient_raw else None
        study = pseudonymise(item.study_raw, self.name) if item.study_raw else None
        split, split_source = self.split_of(item, split_seed)
        raw_path = entry.raw_path
        if self.native_id_identifies_patient:
            raw_path = raw_path.replace(item.native_id, native_id)
        return {
            # keyed pseudonym, not the raw id, when the native id identifies a patient (RSNA)
            "record_id": stable_id(self.name, native_id if self.native_id_identifies_patient else item.native_id,
                                   "" if slice_index is None else slice_index),
            "source": self.name,
            "native_id": native_id,
            "patient_id": patient,
            "study_id": study,
            "split": split,
            "split_source": split_source,  # canonical; split_official is derived from it
            "split_official": split_source == "official",
            "modality": item.modality,
            "body_part": item.body_part,
            "view": item.view,
            "sequence": None,
            "channel_names": None,
            "sex": item.sex,
            "age_band": item.age_band,
            "slice_index": slice_index,
            "num_slices": None,
            "abnormal": item.abnormal,
            "complete": item.complete,
            "findings": [{**_fields_of(f), "readers": list(f.readers)} for f in item.findings],  # asdict, cheaper
            "text": item.text,
            "raw_path": raw_path,
            "raw_sha256": entry.raw_sha256,
            "adapter_version": f"{self.name}/{self.adapter_version}",
        }
