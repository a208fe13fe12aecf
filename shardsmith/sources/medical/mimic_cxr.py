"""MIMIC-CXR-JPG 2.0.0 / 2.1.0 (PhysioNet, credentialed) with the MIMIC-CXR reports when present.

One image per row of ``mimic-cxr-2.0.0-metadata.csv.gz`` (``dicom_id, subject_id, study_id,
ViewPosition, Rows, Columns, StudyDate, StudyTime, ...``; 377,110 rows), at
``files/p<subject[:2]>/p<subject>/s<study>/<dicom_id>.jpg``.

Labels are study level (``mimic-cxr-2.0.0-chexpert.csv.gz`` and ``-negbio.csv.gz``, keyed by
``subject_id, study_id``, the CheXpert 14 with 1 / 0 / -1 / blank): every image of a study carries
its study's labels, with the CheXpert semantics of ``chexpert.py`` (-1 uncertain, blank unknown,
``No Finding`` = 1 normal and complete). The CheXpert labeller's file is the primary one; the
NegBio file fills the labels it leaves blank. Each finding names the labeller(s) that assert its
status (``readers``: ``chexpert``, ``negbio``). A study with images but no label row in either file
is published without findings (abnormal unknown); a study whose label row is unusable has its
images quarantined with the reason.

Reports (``mimic_reports.py``) are linked to every image of their study: ``text`` is the report,
``report_sections`` its sections; a study without a report is a record without text.

Dates: ``StudyDate`` is shifted per patient (consistent within a patient, meaningless across), so it
is never published: each image carries ``study_day``, days since the patient's first study, and
``study_order``, its study's 1-based rank in the patient's history (by date, time, study id).

Split: the official ``mimic-cxr-2.0.0-split.csv.gz`` (``validate`` -> ``val``); an image it does not
list gets the seeded patient split.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError
from shardsmith.sources.labelfiles import (
    BadRow,
    LabelFileError,
    bad_row_quarantine,
    find_label_file,
    read_cells,
)
from shardsmith.sources.medical.base import Finding, LabelledItem, LabelResult
from shardsmith.sources.medical.chexpert import NO_FINDING, NOT_A_PATHOLOGY, STATUS
from shardsmith.sources.medical.cxr import CxrSource
from shardsmith.sources.medical.mimic_reports import ReportStore, parse_sections

DATASET_DIRS = ("", "2.1.0", "2.0.0")
METADATA = "mimic-cxr-2.0.0-metadata.csv"
SPLIT_FILE = "mimic-cxr-2.0.0-split.csv"
LABELLERS = (("chexpert", "mimic-cxr-2.0.0-chexpert.csv"), ("negbio", "mimic-cxr-2.0.0-negbio.csv"))
METADATA_REQUIRED = ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime")
SPLITS = {"train": "train", "validate": "val", "test": "test"}
# ViewPosition as the metadata spells it -> the view code records use (CheXpert's for laterals).
VIEWS = {"PA": "PA", "AP": "AP", "LATERAL": "LAT", "LL": "LL", "RL": "RL", "AP AXIAL": "AP AXIAL",
         "PA LLD": "PA LLD", "AP LLD": "AP LLD", "AP RLD": "AP RLD", "PA RLD": "PA RLD", "LAO": "LAO",
         "RAO": "RAO", "LPO": "LPO", "XTABLE LATERAL": "LAT", "SWIMMERS": "SWIMMERS"}

StudyLabels = tuple[tuple[str, str, str], ...]  # (canonical or "" for No Finding, column, status)


def study_date(date: str, time: str) -> tuple[dt.date | None, float]:
    """(the shifted date, seconds into the day) of ``StudyDate`` ``21800506`` and ``StudyTime``
    ``213014.531``; a cell that does not parse is (None, 0.0)."""
    try:
        day = dt.datetime.strptime(date.strip(), "%Y%m%d").date()
    except ValueError:
        return None, 0.0
    digits = time.strip().split(".")[0].zfill(6)
    try:
        seconds = int(digits[:2]) * 3600 + int(digits[2:4]) * 60 + float(time.strip()[4:] or 0)
    except ValueError:
        seconds = 0.0
    return day, seconds


class MimicCxr(CxrSource):
    name = "mimic_cxr"
    partitioned = True
    gated = True
    path_names_patient = True  # files/pXX/p<subject>/s<study>/: published as pseudonyms
    licence = "PhysioNet Credentialed Health Data License 1.5.0"
    citation = ("Johnson et al., MIMIC-CXR-JPG, a large publicly available database of labeled chest "
                "radiographs, arXiv:1901.07042 (2019); Johnson et al., MIMIC-CXR, Scientific Data 6, 317 (2019)")
    homepage = "https://physionet.org/content/mimic-cxr-jpg/"
    layouts = (
        "mimic-cxr-2.0.0-{metadata,chexpert,negbio,split}.csv.gz + files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg"
        " (+ mimic-cxr-reports.zip or files/pXX/pNNNNNNNN/sNNNNNNNN.txt)",
    )
    adapter_version = "1"
    default_modality = "DX"

    def _base(self, root: Path) -> Path | None:
        for d in DATASET_DIRS:
            if find_label_file(root / d, METADATA) is not None:
                return root / d
        return None

    def detect(self, root: Path) -> bool:
        return self._base(root) is not None

    def read_labels(self, root: Path) -> LabelResult:
        result = self.iter_labels(root)
        result.items = sorted(result.items, key=lambda it: it.native_id)
        return result

    def iter_labels(self, root: Path) -> LabelResult:
        """Split and label files are read into compact per-study tables first (227,835 studies at
        most), then the metadata is streamed twice: once for each patient's study dates, once to
        yield one item per image."""
        base = self._base(root)
        if base is None:
            return LabelResult(items=[])
        meta = find_label_file(base, METADATA)
        assert meta is not None
        result = LabelResult(items=[], label_files=[str(meta.relative_to(root))])
        result.items = self._items(root, base, meta, result)
        return result

    # -- label tables -------------------------------------------------------------------------
    def _splits(self, root: Path, base: Path, result: LabelResult) -> dict[str, str]:
        path = find_label_file(base, SPLIT_FILE)
        if path is None:
            return {}
        result.label_files.append(str(path.relative_to(root)))
        bad: list[BadRow] = []
        header, rows = read_cells(path, ("dicom_id", "split"), bad_rows=bad)
        i_id, i_split = header.index("dicom_id"), header.index("split")
        out: dict[str, str] = {}
        for lineno, cells in rows:
            split = SPLITS.get(cells[i_split].strip().lower())
            if split is None:
                raise LabelFileError(f"{path}: line {lineno}: split {cells[i_split]!r} is not train/validate/test")
            out[sys.intern(cells[i_id].strip())] = split
        result.quarantine += [bad_row_quarantine(self.name, path, b, "dicom_id") for b in bad]
        return out

    def _labels(self, root: Path, base: Path, result: LabelResult,
                broken: dict[str, str]) -> list[tuple[str, dict[str, StudyLabels]]]:
        """Per labeller, study id -> its stated labels; a row that cannot be read marks its study in
        ``broken`` (study -> reason), and that study's images are quarantined."""
        tables = []
        patterns: dict[StudyLabels, StudyLabels] = {}
        for labeller, name in LABELLERS:
            path = find_label_file(base, name)
            if path is None:
                continue
            result.label_files.append(str(path.relative_to(root)))
            bad: list[BadRow] = []
            header, rows = read_cells(path, ("subject_id", "study_id", NO_FINDING), bad_rows=bad)
            i_study = header.index("study_id")
            columns: list[tuple[int, str, str]] = []
            for i, col in enumerate(header):
                if col in ("subject_id", "study_id") or not col or col.startswith("Unnamed"):
                    continue
                try:
                    mapping = self.map_label(col)
                except UnknownLabelError as e:
                    raise LabelFileError(f"{path}: line 1: column {col!r}: {e}") from e
                columns.append((i, col, "" if mapping.kind == "normal" else mapping.canonical))
            table: dict[str, StudyLabels] = {}
            for lineno, cells in rows:
                stated = []
                for i, col, canonical in columns:
                    value = cells[i].strip() if i < len(cells) else ""
                    if value in ("", "nan", "NaN"):
                        continue
                    status = STATUS.get(value)
                    if status is None:
                        broken.setdefault(cells[i_study].strip(), f"bad_value: {path.name}:{lineno}: column {col!r} "
                                                                   f"has {value!r}; expected 1.0, 0.0, -1.0 or blank")
                        break
                    stated.append((canonical, col, status))
                key = tuple(stated)  # studies share few label patterns: one tuple per pattern
                table[sys.intern(cells[i_study].strip())] = patterns.setdefault(key, key)
            for b in bad:
                study = b.row.get("study_id", "").strip()
                broken.setdefault(study, f"{b.reason}: {path.name}:{b.line}: {b.problem}")
            tables.append((labeller, table))
        return tables

    def _history(self, meta: Path) -> dict[str, tuple[int | None, int]]:
        """study id -> (days since the patient's first study, 1-based study order), from one pass
        over the metadata (dates never leave this function)."""
        header, rows = read_cells(meta, METADATA_REQUIRED)
        i_sub, i_study, i_date, i_time = (header.index(c) for c in ("subject_id", "study_id", "StudyDate",
                                                                    "StudyTime"))
        studies: dict[str, dict[str, tuple[dt.date | None, float]]] = {}
        for _, cells in rows:
            per = studies.setdefault(cells[i_sub].strip(), {})
            study = cells[i_study].strip()
            if study not in per:
                per[study] = study_date(cells[i_date], cells[i_time])
        out: dict[str, tuple[int | None, int]] = {}
        for per in studies.values():
            dated = [d for d, _ in per.values() if d is not None]
            first = min(dated) if dated else None
            ordered = sorted(per, key=lambda s: (per[s][0] or dt.date.max, per[s][1], s))
            for rank, study in enumerate(ordered, 1):
                day = per[study][0]
                out[sys.intern(study)] = ((day - first).days if day and first else None, rank)
        return out

    # -- items --------------------------------------------------------------------------------
    def _items(self, root: Path, base: Path, meta: Path, result: LabelResult) -> Iterator[LabelledItem]:
        prefix = "" if base == root else base.relative_to(root).as_posix() + "/"
        splits = self._splits(root, base, result)
        broken: dict[str, str] = {}
        labels = self._labels(root, base, result, broken)
        history = self._history(meta)
        reports = ReportStore(base)
        if reports.label_file:
            result.label_files.append(prefix + reports.label_file)
        bad: list[BadRow] = []
        header, rows = read_cells(meta, METADATA_REQUIRED, bad_rows=bad)
        idx = {c: header.index(c) for c in METADATA_REQUIRED}
        last_study, report = None, (None, None)
        try:
            for lineno, cells in rows:
                result.rows_read += 1
                dicom_id, subject, study = (cells[idx[c]].strip() for c in ("dicom_id", "subject_id", "study_id"))
                if not (subject.isdigit() and study.isdigit() and dicom_id):
                    result.quarantine.append(quarantine_row(
                        self.name, "labels", "bad_id", f"{meta.name}:{lineno}: subject {subject!r}, study {study!r}",
                        dicom_id or None, meta.name))
                    continue
                if study in broken:
                    reason, _, detail = broken[study].partition(": ")
                    result.quarantine.append(quarantine_row(self.name, "labels", reason, detail, dicom_id, meta.name))
                    continue
                if study != last_study:
                    text = reports.text(subject, study)
                    report, last_study = (text, parse_sections(text) if text else None), study
                item = self._item(dicom_id, subject, study, cells[idx["ViewPosition"]], labels, splits)
                if item is None:
                    result.quarantine.append(quarantine_row(
                        self.name, "labels", "contradictory_labels",
                        f"study s{study}: No Finding = 1 with a present pathology", dicom_id, meta.name))
                    continue
                item.image_relpath = f"{prefix}files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg"
                item.study_day, item.study_order = history.get(study, (None, None))
                item.text, item.report_sections = report
                yield item
        finally:
            reports.close()
        result.rows_read += len(bad)
        result.quarantine += [bad_row_quarantine(self.name, meta, b, "dicom_id") for b in bad]

    def _item(self, dicom_id: str, subject: str, study: str, view: str,
              labels: list[tuple[str, dict[str, StudyLabels]]], splits: dict[str, str]) -> LabelledItem | None:
        """One image with its study's labels; None when the labels contradict themselves."""
        status: dict[str, tuple[str, str, list[str]]] = {}  # canonical -> (column, status, labellers)
        for labeller, table in labels:
            for canonical, col, st in table.get(study, ()):
                if canonical not in status:
                    status[canonical] = (col, st, [labeller])
                elif status[canonical][1] == st:
                    status[canonical][2].append(labeller)
        normal = status.pop("", None)
        findings = [Finding(c, col, st, readers) for c, (col, st, readers) in sorted(status.items())]
        pathology = any(f.status == "present" and f.source_label not in NOT_A_PATHOLOGY for f in findings)
        if normal is not None and normal[1] == "present":
            if pathology:
                return None
            abnormal, complete = False, True
        else:
            abnormal, complete = (True if pathology else None), False
        code = view.strip().upper()
        return LabelledItem(
            native_id=dicom_id,
            patient_raw=f"p{subject}",
            study_raw=f"s{study}",
            split=splits.get(dicom_id),
            view=VIEWS.get(code, code or None),
            modality="DX",
            body_part="chest",
            abnormal=abnormal,
            complete=complete,
            findings=findings,
        )

    def find_images(self, root: Path) -> dict[str, Path]:
        """The metadata names every image's path; 377,110 JPEGs are not walked (an image the metadata
        names but the disk lacks is quarantined by the catalog join as ``image_missing``)."""
        return {}
