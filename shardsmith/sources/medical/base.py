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
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from shardsmith.config import Settings
from shardsmith.errors import RecordError
from shardsmith.hashing import sha256_file
from shardsmith.pseudonym import pseudonymise, seeded_split, stable_id
from shardsmith.schemas.demographics import age_band
from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError, Vocabulary, load_vocabulary
from shardsmith.sources.base import Source
from shardsmith.sources.medical.items import (  # the data model, re-exported for the adapters
    Catalog,
    CatalogEntry,
    CatalogStream,
    Finding,
    LabelledItem,
    LabelResult,
    SourceTarget,
    fields_of,
)
from shardsmith.sources.medical.patient_splits import PatientSplits
from shardsmith.sources.medical.sorted_items import SortedItems, SpilledItem

__all__ = ["Catalog", "CatalogEntry", "CatalogStream", "Finding", "LabelResult", "LabelledItem", "MedicalSource", "RecordError",
           "SortedItems", "SourceTarget", "SpilledItem", "age_band", "sha256_file"]

log = logging.getLogger(__name__)


class MedicalSource(Source):
    """Base class for one public dataset. Subclasses set the class attributes and override hooks."""

    collection: ClassVar[str] = "medical"
    # When the dataset's own image id is a patient identifier (RSNA's patientId), native ids and
    # paths are pseudonymised before they reach a record.
    native_id_identifies_patient: ClassVar[bool] = False
    # When the image's path names the raw patient and study (MIMIC-CXR-JPG's
    # files/pXX/p<subject>/s<study>/<file>, also under MS-CXR; the subject id is the key into the
    # credentialed MIMIC-IV records), the published raw_path is files/<patient>/<study>/<file> in
    # pseudonyms.
    path_names_patient: ClassVar[bool] = False
    # Images on disk without any label row: "quarantine" (default) or "unlabelled" (published
    # with abnormal=None and no findings, e.g. SIIM images without a CSV row).
    unlabelled_images: ClassVar[str] = "quarantine"
    # True when ``build_records`` hashes the raw file from the bytes it reads and fills
    # ``entry.raw_sha256`` when the catalog left it empty (else the worker hashes the file first).
    hashes_while_reading: ClassVar[bool] = False

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
        if self.path_names_patient:
            raw_path = "/".join(["files", *(p for p in (patient, study) if p), Path(raw_path).name])
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
            "findings": [{**fields_of(f), "readers": list(f.readers)} for f in item.findings],  # asdict, cheaper
            "text": item.text,
            "study_day": item.study_day,
            "study_order": item.study_order,
            "report_sections": item.report_sections,
            "raw_path": raw_path,
            "raw_sha256": entry.raw_sha256,
            "adapter_version": f"{self.name}/{self.adapter_version}",
        }
