"""The GX suites of every table catch real defects, and the multi-row integrity checks too.

One GX context validates a clean and a broken copy of each table (GX costs seconds to start); the
broken copy must fail exactly the expectations aimed at its defects.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shardsmith.media.masks import coco_rle_encode
from shardsmith.pseudonym import pseudonymise
from shardsmith.schemas.volumes import VOLUMES_SCHEMA
from shardsmith.schemas.werewolf import (
    DECISIONS_SCHEMA,
    GAMES_SCHEMA,
    ROLE_INFERENCE_SCHEMA,
    UTTERANCES_SCHEMA,
    VOTES_SCHEMA,
)
from shardsmith.validation import integrity as I
from shardsmith.validation.frames import record_frames, volume_frame_row, werewolf_frames
from shardsmith.validation.suites import suites_for
from shardsmith.werewolf.decisions import build_decisions
from shardsmith.werewolf.role_inference import build_role_inference

SHA = "a" * 64


def _records(bad: bool) -> pa.Table:
    mask = np.zeros((40, 50), bool)
    mask[5:10, 5:10] = True
    rle = coco_rle_encode(mask)
    rows = []
    for i in range(3):
        rows.append({
            "record_id": f"{i:024x}", "source": "vindr_cxr", "native_id": f"n{i}", "patient_id": f"p{i}",
            "split": "train", "split_source": "seeded", "split_official": False, "modality": "DX", "body_part": "chest", "view": "PA", "media_type": "image/png", "height": 40, "width": 50,
            "slice_index": None, "num_slices": None, "abnormal": True, "complete": False, "raw_sha256": SHA,
            "findings": [{"label": "cardiomegaly", "source_label": "Cardiomegaly", "status": "present",
                          "readers": []}],
            "targets": [{"target_id": f"t{i}", "label": "cardiomegaly", "kind": "abnormality",
                         "box_xyxy": [1.0, 2.0, 30.0, 20.0], "mask_rle": rle if i == 0 else None,
                         "area_px": 25.0 if i == 0 else 522.0, "reader": None, "source_geometry": "x"}],
        })
    if bad:
        rows[1]["record_id"] = rows[0]["record_id"]  # duplicate id
        rows[1]["split"] = "validation"  # not an allowed split
        rows[2]["media_type"] = "image/gif"  # a stored image is PNG or JPEG (schemas.records.MEDIA_TYPES)
        rows[2]["findings"][0]["label"] = "dragon_scales"  # closed vocabulary
        rows[2]["targets"][0]["box_xyxy"] = [10.0, 10.0, 60.0, 20.0]  # past the 50-px width
        rows[1]["targets"][0]["area_px"] = 0.0  # areas positive
        rows[0]["targets"][0]["mask_rle"] = {"size": [40, 50], "counts": rle["counts"][:-3]}  # cut RLE
    return pa.Table.from_pylist(rows)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _volumes(bad: bool) -> dict[str, pd.DataFrame]:
    img = np.zeros((1, 4, 6, 8), np.int16)
    lab = np.zeros((4, 6, 8), np.uint8)
    row = {
        "record_id": "f" * 24, "source": "msd", "native_id": "Task06_Lung/lung_001", "patient_id": "p",
        "split": "train", "split_source": "official", "split_official": True, "modality": "CT", "body_part": "chest", "channel_names": ["CT"], "shape": [1, 4, 6, 8],
        "spacing_mm": [2.5, 0.9, 1.2], "orientation": "LPS", "affine_lps": [float(v) for v in np.eye(4).ravel()],
        "image_npy": _npy(img), "label_npy": _npy(lab),
        "label_names": [{"value": 1, "label": "liver_tumor", "source_label": "cancer", "kind": "abnormality"}],
        "raw_sha256": SHA,
    }
    pa.Table.from_pylist([row], schema=VOLUMES_SCHEMA)  # the fixture itself follows the contract
    if bad:
        row["label_npy"] = _npy(np.zeros((4, 6, 9), np.uint8))  # label grid differs from the image
        row["spacing_mm"] = [2.5, 0.0, 1.2]
        row["label_names"] = [{"value": 0, "label": "liver_tumor", "source_label": "c", "kind": "tumour"}]
    r, names = volume_frame_row(row)
    return {"volumes": pd.DataFrame([r]), "label_names": pd.DataFrame(names)}


def _werewolf(bad: bool) -> dict[str, pd.DataFrame]:
    seats = [{"seat": s, "player": pseudonymise(f"player{s}", "werebench", b"k"), "role": role,
              "role_source": role, "faction": fac, "final_role": None}
             for s, role, fac in ((1, "seer", "village"), (2, "werewolf", "werewolf"), (3, "villager", "village"))]
    game = {"game_id": "g1", "source": "werebench", "native_id": "Season_1/01", "split": "train", "language": "zh",
            "rule_variant": "seer+villager+werewolf", "rule_variant_text": "x", "seats": seats, "has_host": True,
            "winner": "village", "phases": [{"name": "day_1", "name_source": "day 1", "start_s": 0.0, "end_s": 50.0}],
            "media_sha256": SHA, "media_duration_s": 60.0, "raw_sha256": SHA, "extra": "{}"}
    utts = [{"utterance_id": f"u{i}", "game_id": "g1", "source": "werebench", "split": "train", "order": i,
             "start_s": 10.0 * i,
             "end_s": 10.0 * i + 8, "speaker_seat": i + 1, "is_host": False, "speaker_role": "seer",
             "speaker_faction": "village", "phase": "day_1", "text": "hello", "speaker_source": "annotation",
             "verified": True, "speaker_confidence": 1.0, "extra": "{}",
             "words": [{"word": "hello", "start_s": 10.0 * i, "end_s": 10.0 * i + 1, "confidence": 0.9}]}
            for i in range(3)]
    votes = [{"game_id": "g1", "split": "train", "day": 1, "voter_seat": 1, "target_seat": 2, "source": "mvp_record"}]
    decisions = build_decisions(game, utts, votes)
    items = build_role_inference(game, utts)
    if bad:
        utts[2]["split"] = "test"  # not its game's split
        decisions[0]["target_seat"] = 9  # nobody sits there
        decisions[0]["split"] = None
        decisions[0]["context_rule"] = "hindsight"
        items[0]["role"] = "werewolf"  # seat 1 is the seer
        items[1]["role_set"] = ["seer"]  # a board without its own role
        game["seats"] = seats + [dict(seats[0])]  # seat 1 twice
        game["winner"] = "villagers"  # not a faction
        game["phases"][0]["end_s"] = -5.0  # ends before it starts
        utts[1]["speaker_seat"] = 9  # not in the roster
        utts[2]["start_s"], utts[2]["end_s"] = 58.0, 75.0  # past the 60 s media
        utts[0]["speaker_source"] = "guess"
        utts[0]["order"] = 1  # two utterances with order 1
        votes.append({"game_id": "g1", "day": 1, "voter_seat": 3, "target_seat": 7, "source": "rumour"})
    return werewolf_frames(pa.Table.from_pylist([game], schema=GAMES_SCHEMA),
                           pa.Table.from_pylist(utts, schema=UTTERANCES_SCHEMA),
                           pa.Table.from_pylist(votes, schema=VOTES_SCHEMA),
                           decisions=pa.Table.from_pylist(decisions, schema=DECISIONS_SCHEMA),
                           role_inference=pa.Table.from_pylist(items, schema=ROLE_INFERENCE_SCHEMA))


TABLE_FRAMES = {
    "records": lambda bad: record_frames(_records(bad)),
    "volumes": _volumes,
    "games": lambda bad: {k: v for k, v in _werewolf(bad).items() if k in ("games", "seats", "phases")},
    "utterances": lambda bad: {k: v for k, v in _werewolf(bad).items() if k in ("utterances", "words")},
    "votes": lambda bad: {"votes": _werewolf(bad)["votes"]},
    "decisions": lambda bad: {k: v for k, v in _werewolf(bad).items() if k in ("decisions", "decision_context")},
    "role_inference": lambda bad: {k: v for k, v in _werewolf(bad).items()
                                   if k in ("role_inference", "role_utterances")},
}
# (frame, expectation type, column) that each broken table must fail
EXPECTED_FAILURES = {
    "records": {("records", "expect_column_values_to_be_unique", "record_id"),
                ("records", "expect_column_values_to_be_in_set", "split"),
                ("records", "expect_column_values_to_be_in_set", "media_type"),
                ("findings", "expect_column_values_to_be_in_set", "label"),
                ("targets", "expect_column_values_to_be_in_set", "box_inside_image"),
                ("targets", "expect_column_values_to_be_between", "area_px"),
                ("targets", "expect_column_values_to_be_in_set", "mask_decodes")},
    "volumes": {("volumes", "expect_column_values_to_be_in_set", "label_shape_matches"),
                ("volumes", "expect_column_values_to_be_in_set", "spacing_positive"),
                ("label_names", "expect_column_values_to_be_between", "value"),
                ("label_names", "expect_column_values_to_be_in_set", "kind")},
    "games": {("games", "expect_column_values_to_be_in_set", "seats_unique"),
              ("games", "expect_column_values_to_be_in_set", "winner"),
              ("seats", "expect_compound_columns_to_be_unique", ("game_id", "seat")),
              ("phases", "expect_column_pair_values_a_to_be_greater_than_b", ("end_s", "start_s"))},
    "utterances": {("utterances", "expect_column_values_to_be_in_set", "speaker_in_roster"),
                   ("utterances", "expect_column_values_to_be_in_set", "within_media"),
                   ("utterances", "expect_column_values_to_be_in_set", "speaker_source"),
                   ("utterances", "expect_compound_columns_to_be_unique", ("game_id", "order")),
                   ("utterances", "expect_column_values_to_be_in_set", "split_matches_game")},
    "votes": {("votes", "expect_column_values_to_be_in_set", "target_in_roster"),
              ("votes", "expect_column_values_to_be_in_set", "source")},
    "decisions": {("decisions", "expect_column_values_to_be_in_set", "target_is_candidate"),
                  ("decisions", "expect_column_values_to_not_be_null", "split"),
                  ("decisions", "expect_column_values_to_be_in_set", "context_rule")},
    "role_inference": {("role_inference", "expect_column_values_to_be_in_set", "role_matches_roster"),
                       ("role_inference", "expect_column_values_to_be_in_set", "role_in_role_set"),
                       ("role_inference", "expect_column_values_to_be_in_set", "role_set_matches_roster")},
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    from shardsmith.validation.gx_runner import run_tables

    inputs = {}
    for table, make in TABLE_FRAMES.items():
        for bad in (False, True):
            inputs[f"{'bad' if bad else 'good'}_{table}"] = (make(bad), suites_for(table))
    docs = tmp_path_factory.mktemp("docs")
    return run_tables(inputs, docs), docs


def _key(suite: str, failed: dict) -> tuple:
    col = failed["column"]
    return (suite.split(".", 1)[1], failed["expectation"], tuple(col) if isinstance(col, list) else col)


@pytest.mark.parametrize("table", list(TABLE_FRAMES))
def test_suite_passes_clean_data_and_names_each_defect(table, reports):
    results, docs = reports
    good = results[f"good_{table}"]
    assert good.success, json.dumps(good.to_json(), default=str)[:2000]
    assert all(s.evaluated > 0 for s in good.suites)
    bad = results[f"bad_{table}"]
    assert not bad.success
    failed = {_key(s.suite, f) for s in bad.suites for f in s.failed}
    missing = EXPECTED_FAILURES[table] - failed
    assert not missing, f"defects not caught: {missing}; failed: {failed}"
    assert (docs / "index.html").is_file()


def test_integrity_checks_catch_cross_row_defects():
    good = _werewolf(False)
    assert all(c.passed for c in I.werewolf_integrity(good)), I.werewolf_integrity(good)
    bad = _werewolf(True)
    outcome = {c.name: c for c in I.werewolf_integrity(bad)}
    assert not outcome["utterance_times_inside_media"].passed
    assert not outcome["votes_reference_roster"].passed and "target seat 7" in outcome["votes_reference_roster"].examples[0]
    # overlap: the second utterance starts 5 s before the first one ends
    utt = good["utterances"].copy()
    utt.loc[1, "start_s"] = 3.0
    assert not I.utterances_do_not_overlap(utt).passed
    utt.loc[1, "start_s"] = 7.5  # within the 1 s tolerance of the first one's end at 8 s
    assert I.utterances_do_not_overlap(utt).passed

    assert I.masks_decode_to_image_size(_records(False)).passed
    broken = I.masks_decode_to_image_size(_records(True))
    assert not broken.passed and "t0" in broken.examples[0]

    recs = pd.DataFrame({"record_id": ["a", "b"], "source": ["s", "s"], "patient_id": ["p", "p"],
                         "split": ["train", "test"], "abnormal": [False, True]})
    assert not I.patients_in_one_split(recs).passed
    vols = pd.DataFrame({"source": ["s"], "patient_id": ["q"], "split": ["test"]})
    mixed = pd.DataFrame({"source": ["s"], "patient_id": ["q"], "split": ["train"]})
    assert not I.patients_in_one_split_across([mixed, vols]).passed
    targets = pd.DataFrame({"record_id": ["a"], "kind": ["abnormality"], "label": ["nodule"]})
    findings = pd.DataFrame({"record_id": ["a"], "label": ["support_devices"], "status": ["present"]})
    assert not I.normal_has_no_abnormality(recs, targets, findings).passed
    assert I.normal_has_no_abnormality(recs, targets.iloc[0:0], findings).passed  # devices are not disease
    assert I.reconcile(10, 7, 3).passed and not I.reconcile(10, 7, 2).passed
