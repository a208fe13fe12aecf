"""CheXpert (Stanford): ``CheXpert-v1.0[-small]/{train,valid}.csv`` + JPEGs, labels only.

One CSV row per image. Each observation column keeps the labeler's four states apart:
``1.0`` present, ``0.0`` absent, ``-1.0`` uncertain, blank = not mentioned (no Finding entry: the
label stays unknown). ``No Finding`` = 1 makes the study normal (abnormal False, complete True);
otherwise abnormal is True when a pathology (anything but ``Support Devices``, which CheXpert
itself does not count as a finding) is present, and unknown when none is. A row with
``No Finding`` = 1 and a present pathology contradicts itself and is quarantined.

``view``: frontal rows take ``AP/PA`` (AP, PA; the file also has a few frontal LL/RL rows, kept
as given); lateral rows take LL/RL when given, else ``LAT``. ``Path`` is
``CheXpert-v1.0-small/train/patientNNNNN/studyN/viewN_frontal.jpg``; the dataset-folder prefix is
stripped and the rest resolved beside the CSV. The raw tree may be the dataset folder itself or
hold it. Official split: train.csv -> train, valid.csv -> val.
"""

from __future__ import annotations

import gc
import re
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
from shardsmith.sources.medical.base import Finding, LabelledItem, LabelResult, age_band
from shardsmith.sources.medical.cxr import CxrSource

DATASET_DIRS = ("", "CheXpert-v1.0-small", "CheXpert-v1.0")
CSV_SPLITS = (("train.csv", "train"), ("valid.csv", "val"))
PREFIX = re.compile(r"^(?:\./)?CheXpert-v1\.0(?:-small)?/")
PATH_IDS = re.compile(r"(?:^|/)(patient\d+)/(study\d+)/")
NO_FINDING = "No Finding"
NOT_A_PATHOLOGY = {"Support Devices"}
STATUS = {"1": "present", "1.0": "present", "0": "absent", "0.0": "absent", "-1": "uncertain", "-1.0": "uncertain"}
SEX = {"Male": "M", "Female": "F"}
FIXED_COLS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
VIEWS = {"AP", "PA", "LL", "RL"}


def view_of(frontal_lateral: str, ap_pa: str) -> str | None:
    """Frontal AP/PA -> AP/PA; lateral -> LL/RL as given, else LAT; the CSV's own code wins."""
    code = ap_pa.strip().upper()
    if code in VIEWS:
        return code
    if frontal_lateral.strip().lower() == "lateral":
        return "LAT"
    return None


class CheXpert(CxrSource):
    name = "chexpert"
    partitioned = True
    gated = True
    licence = "Stanford University School of Medicine CheXpert Dataset Research Use Agreement"
    citation = ('Irvin et al., CheXpert: A Large Chest Radiograph Dataset with Uncertainty Labels and Exper'
                't Comparison, AAAI 2019')
    homepage = 'https://stanfordmlgroup.github.io/competitions/chexpert/'
    layouts = (
        'CheXpert-v1.0[-small]/{train,valid}.csv (1 / 0 / -1 / blank) + {train,valid}/patientNNNNN/studyN/viewN_<frontal|lateral>.jpg',
    )
    adapter_version = "1"
    default_modality = "DX"

    def _csvs(self, root: Path) -> list[tuple[Path, str]]:
        for d in DATASET_DIRS:
            found = [(p, split) for name, split in CSV_SPLITS if (p := find_label_file(root / d, name))]
            if found:
                return found
        return []

    def detect(self, root: Path) -> bool:
        return bool(self._csvs(root))

    def read_labels(self, root: Path) -> LabelResult:
        # 223k rows make ~3M small objects; the cyclic GC would rescan them all repeatedly
        # (halves the parse time). Nothing here creates reference cycles.
        enabled = gc.isenabled()
        gc.disable()
        try:
            result = self.iter_labels(root)
            result.items = list(result.items)
            return result
        finally:
            if enabled:
                gc.enable()

    def iter_labels(self, root: Path) -> LabelResult:
        """The CSVs streamed row by row: ``items`` is a one-shot iterator, and ``quarantine`` and
        ``rows_read`` are complete once it is exhausted (the catalog spills items as they come)."""
        result = LabelResult(items=[])
        result.items = self._items(root, result)
        return result

    def _items(self, root: Path, result: LabelResult) -> Iterator[LabelledItem]:
        quarantine = result.quarantine
        for path, split in self._csvs(root):
            result.label_files.append(str(path.relative_to(root)))
            base = path.parent.relative_to(root).as_posix()
            prefix = "" if base == "." else base + "/"
            # read_cells with column indices, not tables.read_rows: a dict per row doubles the cost
            # of the 223k-row file; header handling (stripping, unnamed columns, errors) is the same.
            bad: list[BadRow] = []
            header, reader = read_cells(path, FIXED_COLS + (NO_FINDING,), bad_rows=bad)
            fixed = tuple(header.index(c) for c in FIXED_COLS)
            columns: list[tuple[int, str, str | None]] = []  # (index, column, canonical; None = No Finding)
            for i, col in enumerate(header):
                if col in FIXED_COLS or not col or col.startswith("Unnamed"):
                    continue
                try:  # a column the vocabulary lacks fails the whole file, by name
                    mapping = self.map_label(col)
                except UnknownLabelError as e:
                    raise LabelFileError(f"{path}: line 1: column {col!r}: {e}") from e
                columns.append((i, col, None if mapping.kind == "normal" else mapping.canonical))
            width = len(header)
            for lineno, cells in reader:
                if len(cells) < width:
                    cells += [""] * (width - len(cells))
                result.rows_read += 1
                item, problem = self._item(cells, fixed, split, prefix, columns)
                if problem:
                    quarantine.append(quarantine_row(self.name, "labels", problem[0],
                                                     f"{path.name}:{lineno}: {problem[1]}",
                                                     cells[fixed[0]].strip(), path.name))
                    continue
                yield item  # type: ignore[misc]
            result.rows_read += len(bad)
            quarantine += [bad_row_quarantine(self.name, path, b, "Path") for b in bad]

    def _item(
        self, cells: list[str], fixed: tuple[int, ...], split: str, prefix: str,
        columns: list[tuple[int, str, str | None]],
    ) -> tuple[LabelledItem | None, tuple[str, str] | None]:
        """One CSV row -> item (string ops only: this runs 223k times on the real train.csv)."""
        raw_path, sex, age, frontal_lateral, ap_pa = (cells[i].strip() for i in fixed)
        rel = PREFIX.sub("", raw_path)
        ids = PATH_IDS.search(rel)
        if ids is None or "/../" in f"/{rel}/" or rel.startswith("/"):
            return None, ("bad_path", f"Path {raw_path!r} is not <split>/patientN/studyN/<view>.jpg")
        findings: list[Finding] = []
        normal = None
        for i, col, canonical in columns:
            value = cells[i].strip()
            if value in ("", "nan", "NaN"):
                continue  # not mentioned: unknown, no entry
            status = STATUS.get(value)
            if status is None:
                return None, ("bad_value", f"column {col!r} has {value!r}; expected 1.0, 0.0, -1.0 or blank")
            if canonical is None:
                normal = status
                continue
            findings.append(Finding(canonical, col, status))
        pathology = any(f.status == "present" and f.source_label not in NOT_A_PATHOLOGY for f in findings)
        if normal == "present" and pathology:
            return None, ("contradictory_labels", "No Finding = 1 with a present pathology")
        if normal == "present":
            abnormal, complete = False, True
        else:
            abnormal, complete = (True if pathology else None), False
        patient, study = ids.group(1), ids.group(2)
        stem, dot, suffix = rel.rpartition(".")
        return LabelledItem(
            native_id=stem if dot and "/" not in suffix else rel,
            image_relpath=prefix + rel,
            patient_raw=patient,
            study_raw=f"{patient}/{study}",
            study_order=int(study[5:]),  # studyN: the patient's N-th study, in time order; no days
            split=split,
            view=view_of(frontal_lateral, ap_pa),
            modality="DX",
            body_part="chest",
            sex=SEX.get(sex),
            age_band=age_band(age),
            abnormal=abnormal,
            complete=complete,
            findings=findings,
        ), None

    def find_images(self, root: Path) -> dict[str, Path]:
        """``<split dir>/patientN/studyN/*.jpg`` beside each CSV, keyed like native ids."""
        out: dict[str, Path] = {}
        for base in sorted({path.parent for path, _ in self._csvs(root)}):
            for split_dir in ("train", "valid"):
                for p in sorted((base / split_dir).glob("patient*/study*/*.jpg")):
                    if not p.name.startswith("."):
                        out.setdefault(str(p.relative_to(base).with_suffix("")), p)
        return out
