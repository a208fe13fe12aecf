"""The view tables' suites and integrity checks pass on built views and catch broken rows."""

from __future__ import annotations

import copy

import pytest

from shardsmith.views import build_views
from shardsmith.views.validation import view_frames, view_integrity, view_suites


@pytest.fixture(scope="module")
def built(demo_records):
    return build_views(demo_records)


def test_built_views_pass_every_check(demo_records, built) -> None:
    frames = view_frames(demo_records, built.grounding, built.consensus, built.dialogues)
    outcomes = view_integrity(frames)
    assert outcomes and all(o.passed for o in outcomes), [o for o in outcomes if not o.passed]
    for name, expectations in view_suites().items():  # no expectation is skipped for a missing column
        for _, kwargs in expectations:
            cols = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
            assert set(cols + list(kwargs.get("column_list", ()))) <= set(frames[name].columns)


def test_broken_rows_fail_by_name(demo_records, built) -> None:
    grounding = copy.deepcopy(built.grounding)
    dialogues = copy.deepcopy(built.dialogues)
    grounding[0]["size_bin"] = "large" if grounding[0]["size_bin"] != "large" else "small"
    grounding[1]["target_ids"] = ["not-a-target"]
    grounding[2]["area_px"] += 1
    seg = next(t for t in dialogues if t["turn"] == "segment")
    seg["answer_target_ids"] = seg["answer_target_ids"] + ["invented"]
    listing = next(t for t in dialogues if t["turn"] == "findings")
    listing["answer_labels"] = listing["answer_labels"] + ["tuberculosis"]
    failed = {o.name: o.examples for o in view_integrity(view_frames(demo_records, grounding, [], dialogues))
              if not o.passed}
    assert failed == {
        "grounding.size_bin_matches": [grounding[0]["grounding_id"]],
        "grounding.targets_exist": [grounding[1]["grounding_id"]],
        "grounding.area_matches": [grounding[2]["grounding_id"]],
        "dialogues.targets_exist": [seg["turn_id"]],
        "dialogues.labels_present": [listing["turn_id"]],
    }


def test_suites_run_in_great_expectations(demo_records, built) -> None:
    from shardsmith.validation.gx_runner import run_tables

    frames = view_frames(demo_records, built.grounding, built.consensus, built.dialogues)
    report = run_tables({"views": (frames, view_suites())})["views"]
    assert report.success, report
    evaluated = {s.suite.split(".")[-1]: s.evaluated for s in report.suites}
    # every declared expectation ran, plus the runner's own declared-columns (and row-count) checks
    assert set(evaluated) == set(view_suites())
    assert all(evaluated[name] >= len(exps) + 1 for name, exps in view_suites().items())


def test_the_record_index_of_arrow_records_is_the_row_by_row_one(demo_records) -> None:
    """View validation indexes Arrow records with Arrow kernels; the index is the one the rules in
    ``views._common`` give row by row (present labels; abnormality regions drawn by a reader)."""
    import pyarrow as pa

    from shardsmith.schemas.records import RECORDS_SCHEMA
    from shardsmith.views.validation import _record_index

    records = copy.deepcopy(demo_records)
    with_targets = [r for r in records if r.get("targets")]
    target = with_targets[0]["targets"][0]
    assert target["kind"] == "abnormality" and (target.get("mask_rle") or target.get("box_xyxy"))
    with_targets[0]["targets"].append(dict(target, target_id="by-consensus", reader="consensus"))
    with_targets[0]["targets"].append(dict(target, target_id="no-region", box_xyxy=[], mask_rle=None))
    with_targets[0]["targets"].append(dict(target, target_id="anatomy", kind="anatomy"))
    with_targets[0]["targets"].append(dict(target, target_id="", label="unnamed"))
    with_targets[0]["findings"].append({"label": "", "source_label": "x", "status": "present", "readers": []})
    expected = _record_index(records)
    table = pa.Table.from_pylist(records, schema=RECORDS_SCHEMA)
    assert _record_index(table) == expected
    assert _record_index(table.to_batches(max_chunksize=5)) == expected
    assert any(e["regions"] for e in expected.values()) and any(e["present"] for e in expected.values())
    assert "by-consensus" not in expected[with_targets[0]["record_id"]]["regions"]
