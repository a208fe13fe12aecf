"""Issue 23: the pretrain, pairs and knowledge views of a release built from MIMIC-CXR-JPG (its real
layout, with its traps) beside the NIH, CheXpert and MS-CXR demo data, read back through the
loaders and ``datasets.load_dataset``; and each promise's check seen to refuse broken rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from shardsmith.config import ImageOptions, Settings
from shardsmith.demo.cxr_more import MS_CXR_IMAGES
from shardsmith.loaders import open_release
from shardsmith.publish import build
from shardsmith.views.pairs import MAX_PAIRS_PER_PATIENT, patient_pairs
from shardsmith.views.pretrain import pretrain_table

SOURCES = ("mimic_cxr", "ms_cxr", "chexpert", "nih_cxr14")


@pytest.fixture(scope="module")
def rel(tmp_path_factory):
    from shardsmith.demo import cxr_core, cxr_more, mimic_demo
    from shardsmith.pipeline.releases import build_release
    from shardsmith.sources.registry import get_source
    from shardsmith.staging.runner import run_source

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-i23")
        settings = Settings(home=tmp_path_factory.mktemp("home"), image=ImageOptions(max_side=64), workers=1)
        mimic_demo.write_mimic(settings.raw_dir("mimic_cxr"))
        cxr_more.write_ms_cxr(settings.raw_dir("ms_cxr"))
        cxr_more.write_chexpert(settings.raw_dir("chexpert"))
        cxr_core.write_nih(settings.raw_dir("nih_cxr14"))
        for name in SOURCES:
            run_source(settings, get_source(name))
        build_release(settings, "medical", list(SOURCES))
    return open_release(settings.releases, "medical")


def _table(rel, name: str, columns: list[str] | None = None) -> pa.Table:
    return pa.concat_tables(pq.read_table(p, columns=columns)
                            for p in sorted((rel.path / "data" / name).rglob("*.parquet")))


def test_the_three_tables_are_published_validated_and_in_the_card(rel) -> None:
    assert {"pretrain", "pairs", "knowledge"} <= set(rel.tables)
    for name in ("pretrain", "pairs", "knowledge"):
        summary = json.loads((rel.path / "validation" / f"{name}.json").read_text())
        assert summary["success"] and summary["integrity"], name
    names = {c["name"] for c in json.loads((rel.path / "validation" / "pretrain.json").read_text())["integrity"]}
    assert {"pretrain_covers_every_image_group", "pretrain.is_representative"} <= names
    card = (rel.path / "README.md").read_text()
    assert card.count("## Pretraining views") == 1
    records = _table(rel, "records", ["record_id"]).num_rows
    pretrain = _table(rel, "pretrain").num_rows
    assert f"{records} radiograph records -> {pretrain} distinct radiographs ({records - pretrain} rows removed" in card
    assert "config_name: pairs" in card and "config_name: knowledge" in card


def test_ms_cxr_and_mimic_records_of_one_dicom_are_one_image_group_in_one_split(rel) -> None:
    """Found by pixels (MS-CXR's JPEG is MIMIC-CXR-JPG's), not by the shared dicom_id."""
    recs = _table(rel, "records", ["record_id", "source", "native_id", "split", "image_group", "duplicate_group"])
    rows = recs.to_pylist()
    pretrain = {r["image_group"]: r for r in _table(rel, "pretrain").to_pylist()}
    for dicom_id, *_ in MS_CXR_IMAGES:
        both = [r for r in rows if r["native_id"] == dicom_id]
        assert sorted(r["source"] for r in both) == ["mimic_cxr", "ms_cxr"]
        assert len({r["image_group"] for r in both}) == 1 and len({r["split"] for r in both}) == 1
        row = pretrain[both[0]["image_group"]]
        assert (row["copies"], row["copy_sources"], row["has_boxes"], row["has_text"]) == (
            2, ["mimic_cxr", "ms_cxr"], True, True)
    # a patient's two films share a duplicate group (patient link) but not an image group
    mimic = [r for r in rows if r["source"] == "mimic_cxr"]
    assert len({r["duplicate_group"] for r in mimic}) < len({r["image_group"] for r in mimic}) == len(mimic)
    assert _table(rel, "pretrain").num_rows == len(rows) - len(MS_CXR_IMAGES)


def _narrow(rows: list[dict]) -> pa.Table:
    base = {"source": "s", "patient_id": "p", "study_id": None, "view": None, "split": "train", "has_labels": False,
            "has_boxes": False, "has_text": False}
    full = []
    for r in rows:
        lossy = r["path"].endswith(".jpg")
        full.append({**base, "record_id": r["id"], "image_group": r["group"], "height": r["h"], "width": r["w"],
                     "lossless": not lossy, "lossy": lossy, "area": r["h"] * r["w"], "seeded": not r["official"]})
    return pa.Table.from_pylist(full)


def test_the_representative_rule_lossless_then_larger_then_official_then_smallest_id() -> None:
    rows = [
        {"id": "a1", "group": "g1", "path": "x.jpg", "h": 512, "w": 512, "official": True},
        {"id": "a2", "group": "g1", "path": "x.png", "h": 256, "w": 256, "official": False},  # lossless wins
        {"id": "b1", "group": "g2", "path": "x.png", "h": 256, "w": 256, "official": True},
        {"id": "b2", "group": "g2", "path": "x.dcm", "h": 512, "w": 512, "official": False},  # larger wins
        {"id": "c1", "group": "g3", "path": "x.jpg", "h": 64, "w": 64, "official": False},
        {"id": "c2", "group": "g3", "path": "x.jpg", "h": 64, "w": 64, "official": True},  # official wins
        {"id": "d2", "group": "g4", "path": "x.jpg", "h": 64, "w": 64, "official": True},
        {"id": "d1", "group": "g4", "path": "x.jpg", "h": 64, "w": 64, "official": True},  # smallest id wins
        {"id": "e1", "group": "g5", "path": "x.jpg", "h": 64, "w": 64, "official": True},  # alone
    ]
    expected = {"g1": "a2", "g2": "b2", "g3": "c2", "g4": "d1", "g5": "e1"}
    for seed in range(5):  # whatever order the records are read in
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        got = pretrain_table(_narrow(shuffled)).to_pylist()
        assert {r["image_group"]: r["record_id"] for r in got} == expected
        assert {r["image_group"]: r["copies"] for r in got} == {"g1": 2, "g2": 2, "g3": 2, "g4": 2, "g5": 1}


def _image(rid: str, study: str | None, order: int | None, view: str, day: int | None = None,
           group: str | None = None) -> dict:
    return {"record_id": rid, "image_group": group or "i" + rid, "source": "s", "patient_id": "p", "study_id": study,
            "view": view, "split": "train", "study_day": day, "study_order": order}


def test_pairs_other_view_and_follow_up_with_days_in_time_order() -> None:
    images = [_image("r3", "s2", 2, "AP", 30), _image("r1", "s1", 1, "PA", 0), _image("r2", "s1", 1, "LAT", 0),
              _image("r4", "s1", 1, "PA", 0),  # a second PA of study 1: a repeat, not another view
              _image("r5", "s2", 2, "AP", 30, group="ir3")]  # a copy of r3: never paired with it
    got = {(p["record_id_a"], p["record_id_b"]): p for p in patient_pairs(images, cap=100)}
    assert got[("r1", "r2")]["relation"] == "same_study_other_view" and got[("r1", "r2")]["days_between"] is None
    assert (got[("r1", "r3")]["relation"], got[("r1", "r3")]["days_between"]) == ("follow_up", 30)
    assert ("r1", "r4") not in got and ("r3", "r5") not in got and not any("r5" in k for k in got)
    assert {k for k, p in got.items() if p["relation"] == "follow_up"} == {("r1", "r3"), ("r2", "r3"), ("r4", "r3")}


def test_pairs_are_capped_per_patient_deterministically_other_views_first() -> None:
    images = [_image(f"r{s:03d}{v}", f"s{s}", s, v, s * 7) for s in range(40) for v in ("PA", "LAT")]
    pairs = patient_pairs(images)
    assert len(pairs) == MAX_PAIRS_PER_PATIENT
    assert all(p["relation"] == "same_study_other_view" for p in pairs)  # 40 of them rank first
    assert patient_pairs(list(reversed(images))) == pairs  # the choice does not depend on order
    follow_ups = patient_pairs([i for i in images if i["view"] == "PA"])
    assert len(follow_ups) == MAX_PAIRS_PER_PATIENT and all(p["relation"] == "follow_up" for p in follow_ups)


def test_published_pairs_stay_within_patient_and_split_and_load_as_two_images(rel) -> None:
    recs = {r["record_id"]: r for r in _table(rel, "records", ["record_id", "source", "patient_id", "split"])
            .to_pylist()}
    pairs = _table(rel, "pairs").to_pylist()
    for p in pairs:
        a, b = recs[p["record_id_a"]], recs[p["record_id_b"]]
        assert a["patient_id"] == b["patient_id"] == p["patient_id"] and a["split"] == b["split"] == p["split"]
    by = {(p["source"], p["relation"], p["days_between"]) for p in pairs}
    assert ("mimic_cxr", "follow_up", 30) in by and ("mimic_cxr", "same_study_other_view", None) in by
    assert ("nih_cxr14", "follow_up", None) in by  # Follow-up # orders visits without days
    ds = rel.torch("pairs", "train")
    item = ds[0]
    assert item["image_a"].ndim == 3 and item["image_b"].ndim == 3 and item["relation"] in (
        "same_study_other_view", "follow_up")
    import datasets

    loaded = datasets.load_dataset(str(rel.path), "pairs", split="train")
    assert len(loaded) == len(ds)


def test_records_carry_the_report_to_torch_and_knowledge_is_verbatim(rel) -> None:
    ds = rel.torch("records", "train")
    metas = [ds[i]["meta"] for i in range(len(ds))]
    with_report = [m for m in metas if m["source"] == "mimic_cxr" and m.get("report_sections")]
    assert with_report and all(m["text"].startswith("FINAL REPORT") for m in with_report)
    knowledge = _table(rel, "knowledge").to_pylist()
    sentences = {(k["label"], k["text"]): k for k in knowledge if k["kind"] == "report_sentence"}
    assert sentences[("pneumothorax", "No pneumothorax is seen.")]["negated"] is True
    assert sentences[("edema", "Mild pulmonary vascular congestion without frank edema.")]["negated"] is True
    assert sentences[("pleural_effusion", "There is a small left pleural effusion.")]["negated"] is False
    test_row = sentences[("pneumonia", "Bilateral patchy opacities concerning for pneumonia.")]
    assert test_row["split"] == "test"  # a test report stays in test
    phrases = {(k["label"], k["text"]) for k in knowledge if k["kind"] == "grounded_phrase"}
    assert ("pleural_effusion", "small left pleural effusion") in phrases
    assert {k["kind"] for k in knowledge} == {"display_name", "synonym", "grounded_phrase", "report_sentence"}
    import datasets

    shared = datasets.load_dataset(str(rel.path), "knowledge", split="shared")  # the vocabulary's rows
    assert set(shared["kind"]) == {"display_name", "synonym"} and set(shared["source"]) == {"vocabulary"}
    assert len(datasets.load_dataset(str(rel.path), "pretrain", split="train")) == _table(rel, "pretrain").filter(
        pc.equal(_table(rel, "pretrain")["split"], "train")).num_rows


def _revalidate(rel, tmp_path: Path, table: str, change) -> dict:
    """Validate the release's records with one view table changed by ``change`` (a pa.Table -> pa.Table)."""
    files = {"records": sorted((rel.path / "data" / "records").rglob("*.parquet"))}
    changed = tmp_path / f"{table}.parquet"
    pq.write_table(change(_table(rel, table)), changed)
    files[table] = [changed]
    return build.validate_tables(files, tmp_path / "out")[table]


def _failed(summary: dict) -> set[str]:
    return {c["name"] for c in summary["integrity"] if not c["passed"]}


def test_a_pair_across_patients_is_refused(rel, tmp_path: Path) -> None:
    recs = _table(rel, "records", ["record_id", "patient_id", "split"]).to_pylist()

    def cross(t: pa.Table) -> pa.Table:
        first = t.slice(0, 1).to_pylist()[0]
        other = next(r for r in recs if r["patient_id"] != first["patient_id"] and r["split"] == first["split"])
        col = t.schema.get_field_index("record_id_b")
        return t.set_column(col, "record_id_b", pc.if_else(pc.equal(t["pair_id"], first["pair_id"]),
                                                            other["record_id"], t["record_id_b"]))
    summary = _revalidate(rel, tmp_path, "pairs", cross)
    assert not summary["success"] and "pairs.same_patient" in _failed(summary)


def test_a_pretrain_row_that_is_not_its_groups_representative_is_refused(rel, tmp_path: Path) -> None:
    recs = _table(rel, "records", ["record_id", "image_group", "source"]).to_pylist()
    pretrain = _table(rel, "pretrain").to_pylist()
    group = next(r for r in pretrain if r["copies"] == 2)
    other = next(r["record_id"] for r in recs if r["image_group"] == group["image_group"]
                 and r["record_id"] != group["record_id"])

    def swap(t: pa.Table) -> pa.Table:
        return t.set_column(0, "record_id", pc.if_else(pc.equal(t["record_id"], group["record_id"]), other,
                                                       t["record_id"]))
    summary = _revalidate(rel, tmp_path, "pretrain", swap)
    assert "pretrain.is_representative" in _failed(summary)
    dropped = _revalidate(rel, tmp_path, "pretrain", lambda t: t.slice(1))
    assert "pretrain_covers_every_image_group" in _failed(dropped)


def test_knowledge_text_that_no_record_holds_is_refused(rel, tmp_path: Path) -> None:
    def invent(t: pa.Table) -> pa.Table:
        text = pc.if_else(pc.equal(t["kind"], "report_sentence"), pc.binary_join_element_wise(t["text"], " (sic)", ""),
                          t["text"])
        return t.set_column(t.schema.get_field_index("text"), "text", text)
    summary = _revalidate(rel, tmp_path, "knowledge", invent)
    assert "knowledge.text_in_records" in _failed(summary)


def test_a_view_of_exactly_whole_chunks_passes(rel, tmp_path: Path, monkeypatch) -> None:
    """A pretraining table of k * VIEW_CHUNK_ROWS rows ends on a full chunk; no empty chunk follows
    it (one with no columns fails every expectation: 40,000 NIH records were refused so)."""
    files = {"records": sorted((rel.path / "data" / "records").rglob("*.parquet")),
             "pretrain": sorted((rel.path / "data" / "pretrain").rglob("*.parquet"))}
    rows = sum(pq.read_metadata(f).num_rows for f in files["pretrain"])
    size = next(d for d in range(2, rows) if rows % d == 0)  # the demo release has 15 rows: 5 chunks of 3
    monkeypatch.setattr(build, "VIEW_CHUNK_ROWS", size)
    summary = build.validate_tables(files, tmp_path / "out")["pretrain"]
    assert summary["success"] and summary["chunks"] == rows // size


def _index_by_the_rule(rows: list[dict]) -> dict[str, dict]:
    """The representative rule row by row in plain Python (lossless, larger, official, smallest id)."""
    from shardsmith.views.pretrain import LOSSY_SUFFIXES, RADIOGRAPH_MODALITIES

    rows = [r for r in rows if r.get("modality") in RADIOGRAPH_MODALITIES and r.get("slice_index") is None]
    best: dict[str, tuple] = {}
    for r in rows:
        group = r.get("image_group") or "r" + r["record_id"]
        key = ((r.get("raw_path") or "").lower().endswith(LOSSY_SUFFIXES),
               -((r.get("height") or 0) * (r.get("width") or 0)), not r.get("split_official"), r["record_id"])
        best[group] = min(best.get(group, key), key)
    return {r["record_id"]: {"record_id": r["record_id"], "source": r["source"], "patient_id": r["patient_id"],
                             "split": r["split"], "image_group": r.get("image_group") or "r" + r["record_id"],
                             "representative": best[r.get("image_group") or "r" + r["record_id"]][-1] == r["record_id"]}
            for r in rows}


def test_the_record_index_is_the_representative_rule_row_by_row(rel, tmp_path: Path) -> None:
    from shardsmith.schemas.records import RECORDS_SCHEMA
    from shardsmith.views.pretraining_checks import record_index

    def rec(rid, group, path, h, w, official, modality="DX", slice_index=None):
        return {"record_id": rid, "source": "s", "native_id": rid, "patient_id": "p" + rid[:1], "split": "train",
                "split_official": official, "modality": modality, "slice_index": slice_index, "height": h,
                "width": w, "raw_path": path, "image_group": group, "complete": True}
    made = [rec("a1", "g1", "x/a.JPG", 10, 10, True), rec("a2", "g1", "x/a.png", 5, 5, False),  # lossless wins
            rec("b1", "g2", "b.png", 8, 8, False), rec("b2", "g2", "b.dcm", 9, 9, None),  # larger wins
            rec("c2", "g3", "c.png", 4, 4, True), rec("c1", "g3", "c.png", 4, 4, False),  # official wins
            rec("d2", "g4", None, None, 3, True), rec("d1", "g4", None, None, 3, True),  # smallest id
            rec("e1", None, "e.png", 2, 2, True), rec("e2", "", "e.png", 2, 2, True),  # own group each
            rec("f1", "g5", "f.png", 2, 2, True, modality="CT"), rec("f2", "g5", "f.png", 2, 2, True, slice_index=3)]
    path = tmp_path / "made.parquet"
    pq.write_table(pa.Table.from_pylist(made, schema=RECORDS_SCHEMA), path, row_group_size=5)
    for files in ([path], sorted((rel.path / "data" / "records").rglob("*.parquet"))):
        rows = [r for f in files for r in pq.read_table(f).to_pylist()]
        got = {r["record_id"]: r for r in record_index(files).to_pylist()}
        assert got == _index_by_the_rule(rows) and got
    reps = {r["record_id"] for r in record_index([path]).to_pylist() if r["representative"]}
    assert reps == {"a2", "b2", "c2", "d1", "e1", "e2"}
