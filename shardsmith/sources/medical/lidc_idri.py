"""LIDC-IDRI lung CT: DICOM series plus the XML reads of up to four radiologists.

Layout: ``LIDC-IDRI-dddd/<study>/<series>/*.dcm`` with the reading XML (``LidcReadMessage``,
default ``xmlns``) anywhere under the root; an XML is joined to its series by the
``SeriesInstanceUid`` in its ``ResponseHeader``. The series is listed by SimpleITK/GDCM
(``GetGDCMSeriesFileNames``, sorted by position); duplicate positions keep the lower
``InstanceNumber`` (as pylidc does).

Each ``readingSession`` is one reader (``reader1`` … in file order). Each
``unblindedReadNodule`` with a real contour (>= 3 mm nodules; single-point ROIs of small
nodules are skipped, as pylidc does) becomes a per-reader mask: every ``roi`` is filled on the
slice named by ``imageSOP_UID`` (``imageZposition`` as fallback), ``inclusion=FALSE`` ROIs are
cut out. Contour points are (x = column, y = row) of the native DICOM grid.

Consensus (:func:`nodule_consensus`, the project's ONE definition of LIDC's 50% consensus; the
``consensus`` view reuses its targets instead of voting again): annotations of different readers
whose 3D masks share at least one voxel belong to the same nodule (connected components of the
overlap graph, as pylidc's ``cluster_annotations``); a nodule is in the consensus when at least
half of the scan's readers marked it, and within it a voxel when at least half of the nodule's
readers include it (pylidc's ``consensus(clevel=0.5)``). Slice targets: one per reader nodule
(``reader`` = readerN) plus one consensus target per nodule in the consensus
(``reader`` = consensus); the volumes table stores the consensus as label value 1.
Characteristics (malignancy 1-5 …) go to the volume's ``annotations_json`` and a slice's
``text``. ``nonNodule`` marks are not targets.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shardsmith.sources.medical.base import CatalogEntry, LabelledItem
from shardsmith.sources.medical.volumetric import (
    LoadedCase,
    PreparedCase,
    TargetDef,
    VolumeSource,
    quarantine_case,
    visible,
)

# pylidc's 50% level: the share of the scan's readers a nodule needs, and of the nodule's readers a voxel needs.
CONSENSUS_LEVEL = 0.5

CHARACTERISTICS = ("subtlety", "internalStructure", "calcification", "sphericity", "margin",
                   "lobulation", "spiculation", "texture", "malignancy")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: ET.Element | None, name: str) -> str | None:
    c = _child(el, name) if el is not None else None
    return c.text.strip() if c is not None and c.text else None


def parse_lidc_xml(path: Path) -> dict[str, Any] | None:
    """The reads in one LIDC XML as plain data; None if it is not a CT ``LidcReadMessage``."""
    root = ET.parse(path).getroot()  # noqa: S314 - stdlib parser, no entity expansion of external DTDs
    if _local(root.tag) != "LidcReadMessage":
        return None
    header = _child(root, "ResponseHeader")
    series = _text(header, "SeriesInstanceUid") or _text(header, "SeriesInstanceUID")
    readers = []
    for i, session in enumerate(_children(root, "readingSession"), start=1):
        nodules = []
        for nod in _children(session, "unblindedReadNodule"):
            chars_el = _child(nod, "characteristics")
            chars = {}
            for name in CHARACTERISTICS:
                v = _text(chars_el, name)
                if v is not None and v.lstrip("-").isdigit():
                    chars[name] = int(v)
            rois = []
            for roi in _children(nod, "roi"):
                pts = [(float(_text(e, "xCoord") or "nan"), float(_text(e, "yCoord") or "nan"))
                       for e in _children(roi, "edgeMap")]
                rois.append({
                    "z": float(_text(roi, "imageZposition") or "nan"),
                    "sop": _text(roi, "imageSOP_UID"),
                    "inclusion": (_text(roi, "inclusion") or "TRUE").upper() == "TRUE",
                    "points": pts,
                })
            nodules.append({"id": _text(nod, "noduleID") or str(len(nodules) + 1),
                            "characteristics": chars, "rois": rois})
        readers.append({"reader": f"reader{i}", "nodules": nodules})
    return {"series_uid": series, "readers": readers}


def _check_spacing(zs: list[float]) -> None:
    """Slices must be evenly spaced: a gap (a missing file) would silently stretch the volume."""
    from shardsmith.media.volume import VolumeError

    steps = np.diff(zs)
    if len(steps) < 2:
        return
    step = float(np.median(steps))
    gaps = [(zs[i], zs[i + 1]) for i, d in enumerate(steps) if d > 1.5 * step]
    if gaps:
        raise VolumeError("slice_missing", f"slices are {step:g} mm apart but jump {gaps[0][0]:g} -> "
                                           f"{gaps[0][1]:g} mm: {len(gaps)} gap(s), a slice file is missing")


def _contoured(nodule: dict[str, Any]) -> bool:
    """>= 3 mm nodules have real contours; small ones are a single point per slice."""
    return any(len(r["points"]) >= 3 for r in nodule["rois"])


class LidcIdri(VolumeSource):
    name = "lidc_idri"
    partitioned = False
    licence = "CC BY 3.0 (LIDC-IDRI, TCIA)"
    citation = ('Armato et al., The Lung Image Database Consortium (LIDC) and Image Database Resource Initi'
                'ative (IDRI), Medical Physics 38(2) (2011)')
    homepage = 'https://www.cancerimagingarchive.net/collection/lidc-idri/'
    layouts = (
        'LIDC-IDRI-dddd/<study>/<series>/*.dcm + LidcReadMessage XML (joined by SeriesInstanceUid)',
    )
    adapter_version = "2"  # 2: a nodule needs half of the scan's readers
    default_modality = "CT"
    default_body_part = "chest"
    default_ct_window = "lung"

    def scan(self, root: Path) -> tuple[list[LabelledItem], list[dict], list[str]]:
        import pydicom

        if not root.is_dir():
            return [], [], []
        series_dirs: dict[str, Path] = {}
        for d in sorted({p.parent for p in root.rglob("*.dcm") if visible(p.name)}):
            first = sorted(p for p in d.glob("*.dcm") if visible(p.name))[0]
            try:
                uid = str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)
            except Exception:  # unreadable header: the series is reported below as unlabelled
                uid = f"unreadable:{d.relative_to(root)}"
            series_dirs.setdefault(uid, d)
        xmls: dict[str, Path] = {}
        quarantine: list[dict] = []
        for x in sorted(root.rglob("*.xml")):
            if not visible(x.name):
                continue
            try:
                parsed = parse_lidc_xml(x)
            except ET.ParseError as e:
                quarantine.append(quarantine_case(self.name, "bad_label_file",
                                                  f"{x.name}: line {e.position[0]}: XML does not parse: {e}",
                                                  None, str(x.relative_to(root))))
                continue
            except (ValueError, LookupError) as e:  # a value that is not a number; an unknown encoding
                quarantine.append(quarantine_case(self.name, "bad_label_file",
                                                  f"{x.name}: {e.__class__.__name__}: {e}",
                                                  None, str(x.relative_to(root))))
                continue
            if parsed and parsed["series_uid"]:
                xmls.setdefault(parsed["series_uid"], x)
        items = []
        for uid, d in sorted(series_dirs.items(), key=lambda kv: str(kv[1])):
            rel = str(d.relative_to(root))
            patient = d.relative_to(root).parts[0]
            native_id = f"{patient}/{uid}"
            xml = xmls.get(uid)
            if xml is None:
                quarantine.append(quarantine_case(self.name, "label_file_missing",
                                                  "no LIDC XML names this series", native_id, rel))
                continue
            dcms = sorted(str(p.relative_to(root)) for p in d.glob("*.dcm") if visible(p.name))
            items.append(LabelledItem(
                native_id=native_id, patient_raw=patient, study_raw=d.parent.name, modality="CT",
                body_part="chest",
                extra={"main": rel, "series_uid": uid, "xml": str(xml.relative_to(root)),
                       "files": [*dcms, str(xml.relative_to(root))]},
            ))
        return items, quarantine, sorted(str(x.relative_to(root)) for x in xmls.values())

    def _series_files(self, series_dir: Path, uid: str) -> tuple[list[Path], list[str], list[float]]:
        """Files sorted by position (GDCM), duplicates dropped; with SOP UIDs and z positions."""
        import pydicom
        import SimpleITK as sitk

        from shardsmith.media.volume import VolumeError

        names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series_dir), uid)
        kept: dict[float, tuple[int, Path, str]] = {}
        order: list[float] = []
        orientations: set[tuple[float, ...]] = set()
        for name in names:
            ds = pydicom.dcmread(name, stop_before_pixels=True)
            orientations.add(tuple(round(float(v), 3) for v in ds.get("ImageOrientationPatient") or ()))
            z = round(float(ds.ImagePositionPatient[2]), 3)
            inst = int(getattr(ds, "InstanceNumber", 0) or 0)
            if z not in kept:
                order.append(z)
                kept[z] = (inst, Path(name), str(ds.SOPInstanceUID))
            elif inst < kept[z][0]:
                kept[z] = (inst, Path(name), str(ds.SOPInstanceUID))
        if len(orientations) > 1:  # one volume cannot hold slices of two orientations
            raise VolumeError("mixed_orientation", f"series has {len(orientations)} slice orientations: "
                                                   f"{sorted(orientations)}")
        _check_spacing(sorted(order))
        return [kept[z][1] for z in order], [kept[z][2] for z in order], order

    def load_case(self, entry: CatalogEntry, root: Path) -> LoadedCase:
        import SimpleITK as sitk

        from shardsmith.media import masks as M
        from shardsmith.media import volume as V

        extra = entry.item.extra
        files, sops, zs = self._series_files(root / extra["main"], extra["series_uid"])
        image = V.read_dicom_series(files)
        depth, rows, cols = sitk.GetArrayViewFromImage(image).shape
        sop_index = {s: k for k, s in enumerate(sops)}
        dz = abs(zs[1] - zs[0]) if len(zs) > 1 else 1.0
        reads = parse_lidc_xml(root / extra["xml"]) or {"readers": []}
        annotations: list[dict[str, Any]] = []  # reader, nodule id, characteristics, mask
        for r in reads["readers"]:
            for nod in r["nodules"]:
                if not _contoured(nod):
                    continue
                mask = np.zeros((depth, rows, cols), dtype=bool)
                for roi in sorted(nod["rois"], key=lambda x: not x["inclusion"]):
                    k = sop_index.get(roi["sop"])
                    if k is None and math.isfinite(roi["z"]):
                        near = int(np.argmin([abs(z - roi["z"]) for z in zs]))
                        k = near if abs(zs[near] - roi["z"]) <= dz / 2 else None
                    if k is None:
                        raise V.VolumeError("contour_slice_missing",
                                            f"{r['reader']} nodule {nod['id']}: ROI slice is not in the series")
                    if len(roi["points"]) < 3:
                        continue
                    poly = M.polygon_to_mask(roi["points"], rows, cols)
                    mask[k] = mask[k] | poly if roi["inclusion"] else mask[k] & ~poly
                if mask.any():
                    annotations.append({"reader": r["reader"], "nodule": nod["id"],
                                        "characteristics": nod["characteristics"], "mask": mask})
        readers = [r["reader"] for r in reads["readers"]]
        nodules = nodule_consensus(annotations, len(readers))
        layers: dict[str, np.ndarray] = {}
        nodule_def = self.map_label("nodule")
        consensus_def = self.map_label("nodule consensus")
        defs: list[TargetDef] = []
        consensus_all = np.zeros((depth, rows, cols), dtype=np.uint8)
        summary = []
        for ci, nod in enumerate(nodules, start=1):
            for a in nod.members:
                key = f"{a['reader']}:{a['nodule']}"
                layers[key] = a["mask"]
                defs.append(TargetDef(label=nodule_def.canonical, source_label="nodule", vocab_kind="finding",
                                      target_kind="abnormality", source_geometry="lidc-xml contour",
                                      layer=key, reader=a["reader"]))
            if nod.mask is not None:
                layers[f"consensus:{ci}"] = nod.mask
                consensus_all[nod.mask] = 1
                defs.append(TargetDef(label=consensus_def.canonical, source_label="nodule consensus",
                                      vocab_kind="derived", target_kind="abnormality",
                                      source_geometry=f"lidc-xml consensus >= {nod.voxel_need}/{len(nod.readers)} "
                                                      f"nodule readers ({len(nod.readers)}/{len(readers)} "
                                                      "scan readers marked it)",
                                      layer=f"consensus:{ci}", reader="consensus"))
            summary.append({"cluster": ci, "readers": list(nod.readers), "in_consensus": nod.mask is not None,
                            "ratings": {a["reader"]: a["characteristics"] for a in nod.members}})
        defs.append(TargetDef(label=consensus_def.canonical, source_label="nodule consensus", vocab_kind="derived",
                              target_kind="abnormality", source_geometry="lidc-xml consensus label map",
                              values=(1,), stored_value=True, slice_target=False))
        label = sitk.GetImageFromArray(consensus_all)
        label.CopyInformation(image)
        layer_imgs = {}
        for key, arr in layers.items():
            img = sitk.GetImageFromArray(arr.astype(np.uint8))
            img.CopyInformation(image)
            layer_imgs[key] = img
        return LoadedCase(channels=[image], channel_names=None, label=label, defs=defs, layers=layer_imgs,
                          annotations={"nodules": summary, "readers": readers}, readers=readers)

    def slice_text(self, prepared: PreparedCase, z: int, present: list[TargetDef]) -> str | None:
        notes = prepared.case.annotations or {}
        parts = []
        for d in present:
            if d.reader != "consensus" or not d.layer:
                continue
            ci = int(d.layer.split(":")[1])
            info = next(n for n in notes.get("nodules", []) if n["cluster"] == ci)
            mal = [str(r.get("malignancy")) for r in info["ratings"].values() if r.get("malignancy")]
            parts.append(f"lung nodule {ci}: marked by {len(info['readers'])} of {len(notes.get('readers', []))} "
                         f"readers" + (f", malignancy ratings {','.join(mal)} (1-5)" if mal else ""))
        return "; ".join(parts) or None


@dataclass(frozen=True)
class NoduleConsensus:
    """One physical nodule: the reader annotations clustered into it and its consensus mask (None
    when too few of the scan's readers marked it)."""

    members: list[dict[str, Any]]
    readers: tuple[str, ...]
    mask: np.ndarray | None
    voxel_need: int  # readers of this nodule a voxel needs


def _need(level: float, count: int) -> int:
    return max(1, math.ceil(level * count - 1e-9))


def nodule_consensus(annotations: list[dict[str, Any]], readers_total: int,
                     level: float = CONSENSUS_LEVEL) -> list[NoduleConsensus]:
    """LIDC's consensus, per nodule: the one definition both the adapter's targets and the view use.

    ``annotations`` are ``{"reader", "mask", ...}`` with 3D boolean masks on one grid;
    ``readers_total`` counts every reading session of the scan (a reader who marked nothing counts).
    A nodule marked by one reader of three beside one marked by two is thus left out, whatever
    slice it shares: the vote is over nodules, not over the pixels of a slice.
    """
    out = []
    for members in _cluster(annotations):
        per_reader: dict[str, np.ndarray] = {}
        for a in members:
            per_reader[a["reader"]] = per_reader.get(a["reader"], False) | a["mask"]
        need = _need(level, len(per_reader))
        mask = None
        if len(per_reader) >= _need(level, max(readers_total, len(per_reader))):
            mask = sum(m.astype(np.uint8) for m in per_reader.values()) >= need
        out.append(NoduleConsensus(members, tuple(sorted(per_reader)), mask, need))
    return out


def _cluster(annotations: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Connected components of "masks share a voxel" (union-find), in annotation order."""
    parent = list(range(len(annotations)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(annotations)):
        for j in range(i + 1, len(annotations)):
            if np.logical_and(annotations[i]["mask"], annotations[j]["mask"]).any():
                parent[find(j)] = find(i)
    groups: dict[int, list[dict[str, Any]]] = {}
    for i, a in enumerate(annotations):
        groups.setdefault(find(i), []).append(a)
    return list(groups.values())
