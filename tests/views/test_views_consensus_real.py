"""Reader consensus on the real VinDr-CXR Kaggle label file (15,000 images, 3 readers each).

The view reads the file through the VinDr adapter (``LabelledItem`` in source geometry); every
expectation here is computed again straight from the CSV with pandas, without the adapter.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shardsmith.schemas.vocabulary import load_vocabulary
from shardsmith.sources.medical.vindr_cxr import VinDrCxr
from shardsmith.views.consensus import AgreementStats, consensus_rows, votes_from_items, votes_from_marks

KAPPA_LABELS = ("Cardiomegaly", "Nodule/Mass")  # a well agreed label and a poorly agreed one


@pytest.fixture(scope="module")
def csv_rows(real_samples: Path) -> pd.DataFrame:
    return pd.read_csv(real_samples / "cxr-labels" / "vinbigdata-train.csv.gz")


@pytest.fixture(scope="module")
def built(real_vindr_root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    result = VinDrCxr().read_labels(real_vindr_root)
    assert len(result.items) == 15_000 and not result.quarantine
    stats = AgreementStats()
    rows = list(consensus_rows(votes_from_items(result.items, "vindr_cxr"), stats=stats))
    return rows, stats.results()


def _canonical(class_name: str) -> str:
    return load_vocabulary().lookup("vindr_cxr", class_name).canonical


def test_every_image_has_three_readers(csv_rows: pd.DataFrame, built) -> None:
    rows, _ = built
    per_image = csv_rows.groupby("image_id")["rad_id"].nunique()
    assert len(per_image) == 15_000 and set(per_image) == {3}
    assert {r["readers_total"] for r in rows} == {3}


def test_two_reader_counts_and_consensus_boxes_match_the_csv(csv_rows: pd.DataFrame, built) -> None:
    rows, stats = built
    marks = csv_rows[csv_rows["class_name"] != "No finding"]
    readers = marks.groupby(["image_id", "class_name"])["rad_id"].nunique()
    expected_pairs = {(img, _canonical(name)) for (img, name), n in readers.items() if n >= 2}
    expected_counts: dict[str, int] = {}
    for _, label in expected_pairs:
        expected_counts[label] = expected_counts.get(label, 0) + 1

    counts = {a["label"]: a["images_at_least_2"] for a in stats}
    assert {k: v for k, v in counts.items() if v} == expected_counts
    at_least_2 = {(r["record_id"], r["label"]) for r in rows if r["readers_present"] >= 2}
    assert at_least_2 == expected_pairs
    with_boxes = {(r["record_id"], r["label"]) for r in rows if r["boxes"]}
    assert with_boxes == expected_pairs  # consensus boxes exist exactly where >= 2 readers marked it
    assert all(r["method"] == "wbf" and len(r["boxes"]) == len(r["box_scores"]) == len(r["box_support"])
               for r in rows if r["boxes"])
    # readers' own rows: any image x label with one reader has agreement but no consensus target
    singles = [r for r in rows if r["readers_present"] == 1]
    assert singles and all(r["boxes"] is None and r["agreement"] == pytest.approx(1 / 3) for r in singles)


def test_fused_box_of_two_matching_readers_is_their_mean(csv_rows: pd.DataFrame, built) -> None:
    rows, _ = built
    by_id = {r["consensus_id"]: r for r in rows}
    marks = csv_rows[csv_rows["class_name"] == "Cardiomegaly"]
    checked = 0
    for image_id, grp in marks.groupby("image_id"):
        if len(grp) != 2 or grp["rad_id"].nunique() != 2:
            continue
        a, b = grp[["x_min", "y_min", "x_max", "y_max"]].to_numpy(dtype=float)
        inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        if inter / union < 0.7:
            continue
        row = by_id[f"{image_id}:cardiomegaly"]
        assert len(row["boxes"]) == 1 and row["box_support"] == [2]
        np.testing.assert_allclose(row["boxes"][0], (a + b) / 2, rtol=1e-6, atol=1e-3)
        checked += 1
        if checked == 25:
            break
    assert checked == 25


def _kappa_from_reader_pairs(csv_rows: pd.DataFrame, class_name: str) -> tuple[float, float]:
    """Fleiss' kappa by enumerating every pair of readers of every image (not the count formula)."""
    readers = csv_rows.groupby("image_id")["rad_id"].apply(lambda s: sorted(set(s)))
    marked = set(map(tuple, csv_rows.loc[csv_rows["class_name"] == class_name, ["image_id", "rad_id"]].to_numpy()))
    agree = pairs = yes = votes = 0
    for image_id, rads in readers.items():
        said = [(image_id, r) in marked for r in rads]
        yes += sum(said)
        votes += len(said)
        for x, y in itertools.combinations(said, 2):
            agree += x == y
            pairs += 1
    observed = agree / pairs
    p = yes / votes
    chance = p * p + (1 - p) * (1 - p)
    return observed, (observed - chance) / (1 - chance)


@pytest.mark.parametrize("class_name", KAPPA_LABELS)
def test_fleiss_kappa_matches_an_independent_computation(csv_rows: pd.DataFrame, built, class_name: str) -> None:
    _, stats = built
    got = next(a for a in stats if a["label"] == _canonical(class_name))
    observed, kappa = _kappa_from_reader_pairs(csv_rows, class_name)
    assert got["raters"] == 3 and got["images"] == 15_000
    assert got["percent_agreement"] == pytest.approx(100 * observed, abs=1e-9)
    assert got["fleiss_kappa"] == pytest.approx(kappa, abs=1e-9)
    assert -1.0 <= kappa <= 1.0


def test_plain_mark_tuples_give_the_same_rows_as_the_adapter(csv_rows: pd.DataFrame, built) -> None:
    """The consensus needs no adapter: (image, label, reader, box) tuples straight from the CSV agree."""
    rows, _ = built
    sample = sorted(csv_rows["image_id"].unique())[:400]
    part = csv_rows[csv_rows["image_id"].isin(sample)]
    readers = part.groupby("image_id")["rad_id"].apply(set).to_dict()
    marks = [(r.image_id, _canonical(r.class_name), r.rad_id, (r.x_min, r.y_min, r.x_max, r.y_max))
             for r in part.itertuples() if r.class_name != "No finding"]
    votes = votes_from_marks(marks, "vindr_cxr", readers=readers, split="train")
    mine = list(consensus_rows(votes))
    wanted = [r for r in rows if r["record_id"] in set(sample)]
    assert mine and sorted(mine, key=lambda r: r["consensus_id"]) == sorted(wanted, key=lambda r: r["consensus_id"])
