"""ChestX-Det (Deepwise): ``ChestX_Det_{train,test}.json`` + images from ``{train,test}_data.zip``.

Each JSON item has ``syms`` (labels), ``boxes`` (xyxy ints in the 1024x1024 grid) and
``polygons`` (lists of [x, y] points), aligned by index. Every instance becomes one target with
polygon geometry (its mask); the annotated box is kept beside the polygon in the geometry
(``box``, ``xyxy@1024``) and is used alone when an instance has no usable polygon.

What the labels assert: the radiologists annotated 13 categories on every image, so each of
the 13 is present (it has an instance) or absent. Empty lists mean "none of the 13", which is
not a normal study (other abnormalities were out of scope): abnormal is None there, True when
anything was annotated, and complete is always False.

Images are read from extracted ``train_data/`` / ``test_data/`` folders or straight from the
zips (no extraction: members are read into memory). A member whose name climbs out of the
archive (``../``, absolute, drive letter) is quarantined and never read. A zip member's raw path
is ``<zip name>/<member name>``. Official split: train JSON -> train, test JSON -> test.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from shardsmith.config import Settings
from shardsmith.schemas.quarantine import quarantine_row
from shardsmith.schemas.vocabulary import UnknownLabelError
from shardsmith.sources.labelfiles import LabelFileError, read_json
from shardsmith.sources.medical.base import (
    CatalogEntry,
    Finding,
    LabelledItem,
    LabelResult,
    RecordError,
    SourceTarget,
)
from shardsmith.sources.medical.cxr import CxrSource

SPLITS = (("train", "train"), ("test", "test"))  # (file infix, record split)
SPACE = [1024, 1024]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def unsafe_member(name: str) -> str | None:
    """Why an archive member name is unsafe to use, else None (zip-slip and friends)."""
    if "\x00" in name:
        return "NUL byte in name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(norm).parts:
        return "parent directory ('..') in path"
    return None


def zip_members(zip_path: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(image basename -> member name, [(unsafe member, why)]) for one archive."""
    good: dict[str, str] = {}
    unsafe: list[tuple[str, str]] = []
    with zipfile.ZipFile(zip_path) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            why = unsafe_member(info.filename)
            if why:
                unsafe.append((info.filename, why))
                continue
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            if base.startswith((".", "_")) or "__MACOSX" in info.filename:
                continue
            if base.lower().endswith(IMAGE_SUFFIXES):
                good.setdefault(base, info.filename)
    return good, unsafe


class ChestXDet(CxrSource):
    name = "chestx_det"
    partitioned = True
    licence = "CC BY-NC-SA 4.0 (ChestX-Det annotations; images from NIH ChestX-ray14)"
    citation = ('Lian et al., A Structure-Aware Relation Network for Thoracic Diseases Detection and Segmen'
                'tation, IEEE TMI 40(8) (2021)')
    homepage = 'https://github.com/Deepwise-AILab/ChestX-Det-Dataset'
    layouts = (
        'ChestX_Det_{train,test}.json + {train,test}/<file_name>.png or {train,test}_data.zip',
    )
    adapter_version = "1"
    default_modality = "DX"

    def detect(self, root: Path) -> bool:
        return any((root / f"ChestX_Det_{s}.json").is_file() for s, _ in SPLITS)

    def _annotated(self) -> list[str]:
        return sorted(m.source_label for m in self.vocab.source_rows(self.name) if m.kind == "finding")

    def read_labels(self, root: Path) -> LabelResult:
        items: list[LabelledItem] = []
        quarantine: list[dict] = []
        files: list[str] = []
        rows_read = 0
        annotated = self._annotated()
        seen: set[str] = set()
        for infix, split in SPLITS:
            path = root / f"ChestX_Det_{infix}.json"
            if not path.is_file():
                continue
            files.append(path.name)
            data = read_json(path)
            if not isinstance(data, list):
                raise LabelFileError(f"{path}: line 1: expected a JSON list of items, got {type(data).__name__}")
            for index, entry in enumerate(data):
                rows_read += 1
                where = f"{path.name}[{index}]"
                item, problem = self._item(entry, split, where, annotated)
                if problem:
                    name = entry.get("file_name") if isinstance(entry, dict) else None
                    quarantine.append(quarantine_row(self.name, "labels", problem[0], f"{where}: {problem[1]}",
                                                     name, path.name))
                    continue
                if item.native_id in seen:
                    quarantine.append(quarantine_row(self.name, "labels", "duplicate_item",
                                                     f"{where}: {item.native_id} listed twice", item.native_id,
                                                     path.name))
                    continue
                seen.add(item.native_id)
                items.append(item)
        items.sort(key=lambda i: i.native_id)
        return LabelResult(items=items, quarantine=quarantine, label_files=files, rows_read=rows_read)

    def _item(
        self, entry: object, split: str, where: str, annotated: list[str]
    ) -> tuple[LabelledItem | None, tuple[str, str] | None]:
        """One JSON item -> LabelledItem, or (reason, detail) when it cannot be used."""
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            return None, ("malformed_item", "item is not an object with a file_name")
        syms, boxes, polys = entry.get("syms"), entry.get("boxes"), entry.get("polygons")
        if not all(isinstance(v, list) for v in (syms, boxes, polys)):
            return None, ("malformed_item", "syms, boxes and polygons must be lists")
        if not (len(syms) == len(boxes) == len(polys)):
            return None, ("misaligned_lists", f"{len(syms)} syms, {len(boxes)} boxes, {len(polys)} polygons")
        targets: list[SourceTarget] = []
        present: set[str] = set()
        for sym, box, poly in zip(syms, boxes, polys, strict=True):
            try:
                mapping = self.map_label(sym)
            except UnknownLabelError as e:
                return None, ("unknown_label", str(e))
            if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
                return None, ("malformed_box", f"box {box!r} of {sym!r} is not [x1, y1, x2, y2]")
            points = poly if isinstance(poly, list) else []
            usable = len(points) >= 3 and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(v, int | float) for v in p) for p in points
            )
            present.add(sym)
            if usable:
                geometry = {"type": "polygon", "points": points, "space": SPACE, "box": [float(v) for v in box]}
                source_geometry = "polygon@1024"
            else:
                geometry = {"type": "box_xyxy", "coords": [float(v) for v in box], "space": SPACE}
                source_geometry = "xyxy@1024"
            targets.append(SourceTarget(label=mapping.canonical, source_label=sym, kind="abnormality",
                                        geometry=geometry, source_geometry=source_geometry))
        findings = [
            Finding(self.map_label(lab).canonical, lab, "present" if lab in present else "absent")
            for lab in annotated
        ]
        name = entry["file_name"]
        return LabelledItem(
            native_id=name, split=split, modality="DX", body_part="chest",
            abnormal=True if targets else None, complete=False, findings=findings, targets=targets,
        ), None

    # -- images: folders or zips ----------------------------------------------------------------
    def _zips(self, root: Path) -> list[Path]:
        return [root / f"{infix}_data.zip" for infix, _ in SPLITS if (root / f"{infix}_data.zip").is_file()]

    def find_images(self, root: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for infix, _ in SPLITS:
            d = root / f"{infix}_data"
            if d.is_dir():
                for p in sorted(d.rglob("*")):
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith((".", "_")):
                        out.setdefault(p.name, p)
        for zp in self._zips(root):
            members, _ = zip_members(zp)
            for base, member in members.items():
                out.setdefault(base, zp / member)  # virtual path: <zip>/<member>
        return out

    def catalog_quarantine_extra(self, root: Path) -> list[dict]:
        return [quarantine_row(self.name, "catalog", "unsafe_archive_member",
                               f"{zp.name}: member {member!r}: {why}; not read", None, zp.name)
                for zp in self._zips(root) for member, why in zip_members(zp)[1]]

    def _entry(self, item: LabelledItem, path: Path, root: Path, checksum: bool) -> CatalogEntry:
        located = _split_zip_path(path, root)
        if located is None:
            return super()._entry(item, path, root, checksum)
        zp, member = located
        with zipfile.ZipFile(zp) as zf:
            size = zf.getinfo(member).file_size
            digest = hashlib.sha256(zf.read(member)).hexdigest() if checksum else ""
        return CatalogEntry(item=item, raw_path=str(path.relative_to(root)), raw_sha256=digest, size=size)

    def build_records(self, entry: CatalogEntry, root: Path, settings: Settings) -> Iterator[dict]:
        located = _split_zip_path(root / entry.raw_path, root)
        if located is None:
            yield from super().build_records(entry, root, settings)
            return
        zp, member = located
        try:
            with zipfile.ZipFile(zp) as zf:
                data = zf.read(member)
        except (KeyError, OSError, zipfile.BadZipFile) as e:
            raise RecordError("unreadable", f"{zp.name}: cannot read member {member!r} ({e})") from e
        # The decoder reads files: hand it a private temp copy of the member, never the raw tree.
        with tempfile.TemporaryDirectory(prefix="shardsmith-chestx-det-") as tmp:
            copy = Path(tmp) / entry.raw_path  # member names were sanitised in zip_members
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(data)
            yield from list(super().build_records(entry, Path(tmp), settings))


def _split_zip_path(path: Path, root: Path) -> tuple[Path, str] | None:
    """(zip file, member) when ``path`` points inside one of the source's zips, else None."""
    rel = path.relative_to(root).parts
    if len(rel) >= 2 and rel[0].lower().endswith(".zip") and (root / rel[0]).is_file():
        return root / rel[0], "/".join(rel[1:])
    return None
