"""LIDC's 50% consensus has one definition (``lidc_idri.nodule_consensus``, per 3D nodule): the
adapter's consensus targets, its volume label map and the ``consensus`` view's mask all come from it.

The case that told the two old definitions apart: nodule A, marked by two of three readers, beside
nodule B, marked by the third reader only, on the same slices. A per-slice pixel vote and a per-nodule
vote over the nodule's own readers disagree there; the one definition keeps A and leaves B out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import volumes_demo as demo
from shardsmith.media import masks as M
from shardsmith.sources.medical.lidc_idri import LidcIdri, nodule_consensus
from shardsmith.sources.medical.volumetric import VolumeOptions
from shardsmith.views.consensus import consensus_rows, votes_from_records

ROWS_A, COLS_A = (10, 16), (18, 24)  # nodule A: readers 1 and 2 (reader 2 one row taller)
ROWS_B, COLS_B = (10, 16), (4, 10)  # nodule B: reader 3 only, same slices, no shared voxel with A
SLICES = (4, 7)


def _roi(z: float, sop: str, rows: tuple[int, int], cols: tuple[int, int]) -> str:
    pts = [(cols[0], rows[0]), (cols[1] - 1, rows[0]), (cols[1] - 1, rows[1] - 1), (cols[0], rows[1] - 1)]
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in pts)
    return (f"<roi><imageZposition>{z:.3f}</imageZposition><imageSOP_UID>{sop}</imageSOP_UID>"
            f"<inclusion>TRUE</inclusion>{edges}</roi>")


def _session(nid: str, rois: str) -> str:
    chars = "<characteristics><subtlety>4</subtlety><malignancy>3</malignancy></characteristics>"
    return f"<readingSession><unblindedReadNodule><noduleID>{nid}</noduleID>{chars}{rois}" \
           f"</unblindedReadNodule></readingSession>"


def write_a_beside_b(root: Path) -> None:
    """The demo CT series with its XML replaced: A by readers 1 and 2, B by reader 3."""
    info = demo.write_lidc(root)
    xml = next(root.rglob("*.xml"))
    by_z = {}
    for f in xml.parent.glob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_z[round(float(ds.ImagePositionPatient[2]), 3)] = str(ds.SOPInstanceUID)
    zs = [info["z0"] + info["thickness"] * k for k in range(*SLICES)]

    def rois(rows: tuple[int, int], cols: tuple[int, int]) -> str:
        return "".join(_roi(z, by_z[round(z, 3)], rows, cols) for z in zs)

    xml.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<LidcReadMessage xmlns="{demo.LIDC_NS}">'
        f"<ResponseHeader><SeriesInstanceUid>{info['series_uid']}</SeriesInstanceUid></ResponseHeader>"
        + _session("A1", rois(ROWS_A, COLS_A))
        + _session("A2", rois((ROWS_A[0], ROWS_A[1] + 1), COLS_A))
        + _session("B3", rois(ROWS_B, COLS_B))
        + "</LidcReadMessage>\n", encoding="utf-8")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lidc-a-beside-b") / "lidc_idri"
    write_a_beside_b(root)
    src = LidcIdri(options=VolumeOptions(slices="labelled", volume_spacing_mm=None))
    (entry,) = src.catalog(root).entries
    settings = Settings(home=root.parent, image=ImageOptions(max_side=0))  # stored grid = native grid
    return {"records": list(src.build_records(entry, root, settings)), "loaded": src.load_case(entry, root)}


def _region(shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    out[rows[0]:rows[1], cols[0]:cols[1]] = True
    return out


def test_adapter_and_view_share_one_consensus_a_in_b_out(case: dict[str, Any]) -> None:
    records = case["records"]
    assert sorted(r["slice_index"] for r in records) == list(range(*SLICES))  # B's slices are A's slices
    rows = {r["record_id"]: r for r in consensus_rows(votes_from_records(records))}
    for rec in records:
        shape = (rec["height"], rec["width"])
        a, b = _region(shape, ROWS_A, COLS_A), _region(shape, ROWS_B, COLS_B)
        assert {t["reader"] for t in rec["targets"]} == {"reader1", "reader2", "reader3", "consensus"}
        adapter = [M.coco_rle_decode(t["mask_rle"]) for t in rec["targets"] if t["reader"] == "consensus"]
        adapter_mask = np.logical_or.reduce(adapter)
        assert (adapter_mask & a).sum() == a.sum() and not (adapter_mask & b).any(), rec["slice_index"]
        (row,) = [r for r in rows.values() if r["record_id"] == rec["record_id"]]
        assert row["method"] == "mask_vote" and row["readers_present"] == 3
        view_mask = M.coco_rle_decode(row["mask_rle"])
        assert (view_mask & a).sum() == a.sum() and not (view_mask & b).any(), rec["slice_index"]
        np.testing.assert_array_equal(view_mask, adapter_mask)  # pixel for pixel


def test_volume_label_map_and_notes_follow_the_same_definition(case: dict[str, Any]) -> None:
    import SimpleITK as sitk

    loaded = case["loaded"]
    label = sitk.GetArrayFromImage(loaded.label).astype(bool)
    for k in range(*SLICES):
        a, b = _region(label[k].shape, ROWS_A, COLS_A), _region(label[k].shape, ROWS_B, COLS_B)
        assert label[k][a].all() and not label[k][b].any()
    nodules = {tuple(n["readers"]): n["in_consensus"] for n in loaded.annotations["nodules"]}
    assert nodules == {("reader1", "reader2"): True, ("reader3",): False}
    text = next(r["text"] for r in case["records"])
    assert text.startswith("lung nodule 1: marked by 2 of 3 readers") and "nodule 2" not in text


def _ann(reader: str, mask: np.ndarray) -> dict[str, Any]:
    return {"reader": reader, "mask": mask}


def test_nodule_consensus_counts_the_scans_readers_then_the_nodules() -> None:
    grid = (1, 8, 8)
    a1, a2, b = (np.zeros(grid, dtype=bool) for _ in range(3))
    a1[0, 0:4, 0:4] = True
    a2[0, 2:6, 0:4] = True  # overlaps a1: the same nodule
    b[0, 6:8, 6:8] = True
    anns = [_ann("reader1", a1), _ann("reader2", a2), _ann("reader3", b)]

    four = nodule_consensus(anns, readers_total=4)  # a fourth reader marked nothing: still a reader
    assert [n.readers for n in four] == [("reader1", "reader2"), ("reader3",)]
    assert four[1].mask is None  # 1 of 4 readers
    np.testing.assert_array_equal(four[0].mask, a1 | a2)  # 2 of 4: kept; a voxel needs 1 of its 2 readers
    assert four[0].voxel_need == 1

    alone = nodule_consensus([_ann("reader3", b)], readers_total=1)  # the only reader of the scan
    np.testing.assert_array_equal(alone[0].mask, b)

    a3 = np.zeros(grid, dtype=bool)
    a3[0, 3:5, 0:4] = True
    three = nodule_consensus([_ann("reader1", a1), _ann("reader2", a2), _ann("reader3", a3)], readers_total=4)
    assert len(three) == 1 and three[0].voxel_need == 2  # 3 readers: a voxel needs 2
    np.testing.assert_array_equal(three[0].mask, (a1.astype(int) + a2 + a3) >= 2)
    assert nodule_consensus([], readers_total=3) == []
