"""Grounding, dialogues, consensus and fairness over records: the demo sources and hand-made edge cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from shardsmith.media import masks as M
from shardsmith.schemas.views import CONSENSUS_SCHEMA, DIALOGUES_SCHEMA, GROUNDING_SCHEMA
from shardsmith.schemas.vocabulary import load_vocabulary
from shardsmith.views import VIEW_COLUMNS, build_views, dialogue_rows, grounding_rows
from shardsmith.views._common import in_sentence, size_bin
from shardsmith.views.card import fairness_section
from shardsmith.views.consensus import consensus_methods, consensus_rows, fleiss_kappa, votes_from_records
from shardsmith.views.fairness import prevalence_by_slice


def _issue_bin(fraction: float) -> str:
    """The issue's bins, written here independently of size_bins.csv."""
    return "small" if fraction < 0.01 else ("medium" if fraction <= 0.10 else "large")


def _direct_regions(rec: dict[str, Any]) -> set[str]:
    present = {f["label"] for f in rec["findings"] if f["status"] == "present"}
    drawn = {t["label"] for t in rec["targets"] if t["kind"] == "abnormality" and t["reader"] != "consensus"
             and (t["box_xyxy"] or t["mask_rle"])}
    return present & drawn


def _check_grounding(records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    vocab = load_vocabulary()
    by_record: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_record.setdefault(r["record_id"], []).append(r)
    assert len({r["grounding_id"] for r in rows}) == len(rows)
    for rec in records:
        mine = by_record.get(rec["record_id"], [])
        direct = _direct_regions(rec)
        assert {r["label"] for r in mine if not r["derived"]} == direct
        stated = {f["label"]: f["status"] for f in rec["findings"]}
        for r in (r for r in mine if r["derived"]):
            assert stated.get(r["label"]) is None  # a roll-up never overrides what the source stated
            assert any(r["label"] in vocab.ancestors(d) for d in direct)
        targets = {t["target_id"]: t for t in rec["targets"]}
        for r in mine:
            union = M.coco_rle_decode(r["mask_rle"])
            assert union.shape == (rec["height"], rec["width"])
            assert union.sum() == r["area_px"]
            assert r["area_fraction"] == pytest.approx(r["area_px"] / (rec["height"] * rec["width"]))
            assert r["size_bin"] == _issue_bin(r["area_fraction"])
            assert r["target_ids"] and all(targets[t]["label"] in direct for t in r["target_ids"])
            for tid in r["target_ids"]:  # every target's own region lies inside the union
                t = targets[tid]
                own = M.coco_rle_decode(t["mask_rle"]) if t["mask_rle"] else M.box_to_mask(
                    t["box_xyxy"], rec["height"], rec["width"])
                assert own.any() and not (own & ~union).any()
            assert r["sex"] == rec["sex"] and r["age_band"] == rec["age_band"]
            assert r["phrase"] and r["phrase_source"] in ("source", "vocabulary")


def _check_dialogues(records: list[dict[str, Any]], turns: list[dict[str, Any]]) -> None:
    by_record = {rec["record_id"]: rec for rec in records}
    assert len({t["turn_id"] for t in turns}) == len(turns)
    seen: dict[str, list[dict[str, Any]]] = {}
    for t in turns:
        seen.setdefault(t["record_id"], []).append(t)
        rec = by_record[t["record_id"]]
        present = {f["label"] for f in rec["findings"] if f["status"] == "present"}
        if t["turn"] == "abnormality":
            assert rec["abnormal"] is not None and t["answer"] == ("yes" if rec["abnormal"] else "no")
        elif t["turn"] == "findings":
            assert set(t["answer_labels"]) == present  # exactly the asserted ones, none invented
            assert t["exhaustive"] == rec["complete"]
            assert present or (rec["complete"] and t["answer"] == "none")
        else:
            assert t["turn"] == "segment" and len(t["answer_labels"]) == 1
            label = t["answer_labels"][0]
            assert label in present
            targets = {x["target_id"]: x for x in rec["targets"]}
            assert t["answer_target_ids"] and all(targets[i]["label"] == label for i in t["answer_target_ids"])
            assert all(targets[i]["box_xyxy"] or targets[i]["mask_rle"] for i in t["answer_target_ids"])
    for rid, mine in seen.items():
        assert [t["turn_index"] for t in mine] == list(range(len(mine)))
        assert [t["level"] for t in mine] == sorted(t["level"] for t in mine)
        segments = {t["answer_labels"][0] for t in mine if t["turn"] == "segment"}
        assert segments == _direct_regions(by_record[rid])  # one segment turn per finding with regions


# --------------------------------------------------------------------------- demo sources


def test_demo_grounding_rows_are_present_findings_with_regions(demo_records) -> None:
    rows = list(grounding_rows(demo_records))
    _check_grounding(demo_records, rows)
    assert {r["source"] for r in rows} >= {"vindr_cxr", "chestx_det", "ms_cxr", "siim_acr", "lidc_idri"}
    assert any(r["derived"] for r in rows) and any(r["phrase_source"] == "source" for r in rows)
    pa.Table.from_pylist(rows, schema=GROUNDING_SCHEMA)  # rows fit the published schema


def test_demo_dialogue_turns_refer_to_real_findings_and_targets(demo_records) -> None:
    turns = list(dialogue_rows(demo_records))
    _check_dialogues(demo_records, turns)
    assert {t["turn"] for t in turns} == {"abnormality", "findings", "segment"}
    pa.Table.from_pylist(turns, schema=DIALOGUES_SCHEMA)
    assert turns == list(dialogue_rows(demo_records))  # deterministic


def test_build_views_in_one_pass_matches_the_separate_builders(demo_records) -> None:
    table = pa.Table.from_pylist(demo_records).select(VIEW_COLUMNS)  # Arrow input, no pixels
    views = build_views(table.to_batches(max_chunksize=5))
    assert views.grounding == list(grounding_rows(demo_records))
    assert views.dialogues == list(dialogue_rows(demo_records))
    assert views.consensus == list(consensus_rows(votes_from_records(demo_records)))
    pa.Table.from_pylist(views.consensus, schema=CONSENSUS_SCHEMA)
    card = views.card_markdown()
    for heading in ("## Grounding", "## Reader agreement", "## Dialogues", "## Prevalence by sex and age band"):
        assert heading in card


def test_lidc_view_mask_is_the_adapters_consensus_on_every_slice(demo_records) -> None:
    lidc = [r for r in demo_records if r["source"] == "lidc_idri"]
    rows = {r["record_id"]: r for r in consensus_rows(votes_from_records(lidc))}
    checked = 0
    for rec in lidc:
        adapter = [M.coco_rle_decode(t["mask_rle"]) for t in rec["targets"] if t["reader"] == "consensus"]
        if not adapter:
            assert rows.get(rec["record_id"], {}).get("mask_rle") is None
            continue
        row = rows[rec["record_id"]]
        assert row["method"] == "mask_vote"
        np.testing.assert_array_equal(M.coco_rle_decode(row["mask_rle"]), np.logical_or.reduce(adapter))
        checked += 1
    assert checked >= 1


# --------------------------------------------------------------------------- hand-made edge cases


def test_hand_records_grounding(hand_records) -> None:
    rows = {r["grounding_id"]: r for r in grounding_rows(hand_records)}
    _check_grounding(hand_records, list(rows.values()))
    two = rows["two-readers:nodule_or_mass"]
    assert two["area_px"] == 100 + 100 - 81 and two["size_bin"] == "medium" and two["readers"] == ["R1", "R2"]
    assert rows["two-readers:pleural_effusion"]["size_bin"] == "large"
    assert rows["child-and-parent:nodule"]["size_bin"] == "small"
    parent = rows["child-and-parent:nodule_or_mass"]
    assert parent["derived"] and parent["area_px"] == 25 + 200 and parent["phrase"] == "Nodule/Mass"
    assert "focal lesion" in parent["synonyms"] and "nodule/mass" not in parent["synonyms"]  # display name is no synonym
    assert "parent-absent:lung_opacity" not in rows and "parent-absent:consolidation" in rows
    assert rows["phrase:consolidation"]["phrase"] == "left lower lobe consolidation"
    assert rows["phrase:lung_opacity"]["derived"] and rows["phrase:lung_opacity"]["phrase_source"] == "vocabulary"
    assert not any(k.startswith(("unstated-region", "normal", "uncertain")) for k in rows)
    both = rows["parent-and-child-phrases:lung_opacity"]  # stated itself, covers its child's region too
    assert not both["derived"] and both["phrase"] == "right basal opacity" and both["target_ids"] == ["o0", "e0"]
    assert rows["parent-and-child-phrases:edema"]["phrase"] == "mild pulmonary edema"
    lidc = rows["three-readers:lung_nodule"]
    assert lidc["readers"] == ["reader1", "reader2", "reader3"] and "k" not in lidc["target_ids"]
    assert "effusion" in rows["two-readers:pleural_effusion"]["synonyms"]


def test_hand_records_dialogues(hand_records) -> None:
    turns = list(dialogue_rows(hand_records))
    _check_dialogues(hand_records, turns)
    by = {}
    for t in turns:
        by.setdefault(t["record_id"], []).append((t["turn"], t["question"], t["answer"]))
    assert by["normal"] == [("abnormality", "Is there an abnormality?", "no"),
                            ("findings", "Which findings are present?", "none")]
    assert by["uncertain"] == [("findings", "Which findings are present?", "Cardiomegaly")]  # edema not asserted
    assert by["unstated-region"] == [("abnormality", "Is there an abnormality?", "yes")]
    assert ("segment", "Segment the nodule/mass.", "t0 t1") in by["two-readers"]
    assert ("segment", "Segment the pleural effusion.", "t2") in by["two-readers"]


def test_finding_names_inside_sentences_keep_acronyms() -> None:
    assert [in_sentence(n) for n in ("Nodule/Mass", "ILD", "Enlarged PA", "Lung nodule (CT)")] == [
        "nodule/mass", "ILD", "enlarged PA", "lung nodule (CT)"]


def test_size_bins_at_the_thresholds() -> None:
    for fraction in (0.0, 0.0099, 0.01, 0.05, 0.1, 0.1000001, 0.5, 1.0):
        assert size_bin(fraction) == _issue_bin(fraction)


def test_wbf_and_mask_vote_on_hand_records(hand_records) -> None:
    rows = {r["consensus_id"]: r for r in consensus_rows(votes_from_records(hand_records))}
    nm = rows["two-readers:nodule_or_mass"]
    assert nm["readers_present"] == 2 and nm["readers_total"] == 3  # the third reader is VinDr's known count
    assert nm["box_support"] == [2] and np.allclose(nm["boxes"][0], [10.5, 10.5, 20.5, 20.5])
    assert rows["two-readers:pleural_effusion"]["boxes"] is None  # one reader: agreement only
    vote = rows["three-readers:lung_nodule"]
    assert vote["method"] == "mask_vote" and vote["readers_present"] == 3
    expected = np.zeros((50, 50), dtype=bool)
    expected[0:10, 0:10] = True  # the record's own consensus target "k"; a vote over the slice gives 5:15
    np.testing.assert_array_equal(M.coco_rle_decode(vote["mask_rle"]), expected)
    assert set(consensus_methods()) == {("vindr_cxr", "train"), ("lidc_idri", "*")}
    test_split = [dict(r, split="test", record_id=r["record_id"] + "-t") for r in hand_records]
    assert {r["source"] for r in consensus_rows(votes_from_records(test_split))} == {"lidc_idri"}
    assert not any(r["source"] not in ("vindr_cxr", "lidc_idri") for r in rows.values())


def test_fleiss_kappa_textbook_values() -> None:
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0], [0, 3]])) == pytest.approx(1.0)
    # Fleiss (1971)-style check by hand: 2 subjects, 3 raters, counts (2,1) and (1,2): P-bar = 1/3, Pe = 1/2
    assert fleiss_kappa(np.array([[2, 1], [1, 2]])) == pytest.approx((1 / 3 - 0.5) / 0.5)
    with pytest.raises(ValueError):
        fleiss_kappa(np.array([[2, 1], [1, 1]]))


def test_fairness_prevalence_by_sex_and_age(hand_records) -> None:
    prev = prevalence_by_slice(hand_records)
    table = prev.table()
    cell = table["vindr_cxr"]["sex"]["nodule_or_mass"]["F"]
    assert cell == {"present": 1, "records": 2, "prevalence": 0.5}  # "two-readers" and "normal" are F
    assert table["vindr_cxr"]["age_band"]["pleural_effusion"]["40-49"]["prevalence"] == 0.5
    assert table["chestx_det"]["age_band"]["consolidation"]["unknown"]["prevalence"] == 1.0
    assert table["chestx_det"]["age_band"]["consolidation"]["60-69"]["prevalence"] == 0.0
    md = fairness_section(prev)
    assert "### vindr_cxr: by sex" in md and "F (n=2)" in md and "| nodule_or_mass | 50.0 |" in md
