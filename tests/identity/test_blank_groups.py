"""Blank frames never join anything (issue 21, point 4, belt and braces): every constant image has the
same fingerprint, so two of them from different sources and patients used to become one
"radiograph", one split, and through their patients' edges pulled both patients' films together.
The records step now quarantines them; grouping must also ignore such a fingerprint should one
arrive from staging written before that rule."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shardsmith.identity.fingerprint import BLANK, fingerprint_pixels
from shardsmith.identity.groups import find_groups


@pytest.mark.parametrize(("shape", "dtype", "value"), [
    ((64, 64), np.uint8, 0), ((1024, 1024), np.uint8, 255), ((300, 517), np.uint16, 40000), ((7, 3), np.uint8, 9),
])
def test_every_constant_image_has_the_blank_fingerprint(shape, dtype, value):
    fp = fingerprint_pixels(np.full(shape, value, dtype))
    assert (fp.phash, fp.thumb) == (BLANK.phash, BLANK.thumb)


def test_a_radiograph_is_not_blank(make_radiograph):
    fps = [fingerprint_pixels(make_radiograph(seed)) for seed in range(20)]
    assert all(fp.thumb != BLANK.thumb for fp in fps)


def _table(rows: list[tuple[str, str, str, np.ndarray]]) -> pa.Table:
    """Records (record_id, source, patient_id, stored pixels) as grouping reads them from staging."""
    return pa.table({
        "record_id": [r[0] for r in rows], "source": [r[1] for r in rows], "native_id": [r[0] for r in rows],
        "patient_id": [r[2] for r in rows], "split": ["train", "train", "test", "test"][:len(rows)],
        "fingerprint": pa.array([fingerprint_pixels(r[3]).to_bytes() for r in rows], pa.binary()),
    })


def test_staged_blank_fingerprints_link_nothing(make_radiograph):
    table = _table([
        ("a-blank", "nih_cxr14", "patient-a", np.zeros((512, 512), np.uint8)),
        ("a-film", "nih_cxr14", "patient-a", make_radiograph(1)),
        ("b-blank", "vindr_cxr", "patient-b", np.full((300, 240), 1000, np.uint16)),
        ("b-film", "vindr_cxr", "patient-b", make_radiograph(2)),
    ])
    res = find_groups(table.to_batches())
    assert res.duplicates.num_rows == 0, res.duplicates.to_pylist()  # no image edge at all
    group = dict(zip(res.groups["record_id"].to_pylist(), res.groups["duplicate_group"].to_pylist(), strict=True))
    split = dict(zip(res.groups["record_id"].to_pylist(), res.groups["split"].to_pylist(), strict=True))
    assert group["a-blank"] == group["a-film"] and group["b-blank"] == group["b-film"]  # patients still hold
    assert group["a-film"] != group["b-film"], "two patients were joined through their blank frames"
    assert split["a-film"] != split["b-film"]  # each patient keeps a split of its own
    assert res.stats["blank_fingerprints"] == 2


def test_identical_blank_frames_are_not_exact_duplicates_either():
    same = np.zeros((128, 128), np.uint8)  # same size and value: the same exact key
    table = _table([("x", "nih_cxr14", "p1", same), ("y", "chestx_det", "p2", same.copy())])
    res = find_groups(table.to_batches())
    assert res.stats["exact_pairs"] == 0 and res.duplicates.num_rows == 0
    assert len(set(res.groups["duplicate_group"].to_pylist())) == 2
