"""Many records with the same fingerprint (a dataset's blank frames, one film re-encoded many times)
are linked to one representative in linear time, not compared pairwise."""

import numpy as np
import pyarrow as pa

from shardsmith.identity.fingerprint import fingerprint_pixels
from shardsmith.identity.groups import find_groups


def test_identical_fingerprints_are_linked_without_a_quadratic_search():
    n = 20_000
    base = (np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8)
    fps = []
    for i in range(n):  # the index written into the first row: exact keys differ, the hash does not
        img = base.copy()
        img[0, :8] = np.frombuffer(i.to_bytes(8, "big"), dtype=np.uint8)
        fps.append(fingerprint_pixels(img).to_bytes())
    table = pa.table({
        "record_id": [f"{i:024d}" for i in range(n)], "source": ["s"] * n, "native_id": [str(i) for i in range(n)],
        "patient_id": pa.array([None] * n, pa.string()), "split": ["train"] * n,
        "fingerprint": pa.array(fps, pa.binary()),
    })
    res = find_groups(table.to_batches(max_chunksize=4096))
    assert res.stats["identical_fingerprint_pairs"] == n - 1
    assert res.stats["candidate_pairs"] == 0  # nothing left for the pairwise search
    assert len(set(res.groups.column("duplicate_group").to_pylist())) == 1
    assert res.duplicates.num_rows == n
