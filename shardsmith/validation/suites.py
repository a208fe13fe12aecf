"""Expectation suites per frame, as data: (expectation class name, kwargs).

Kept as plain tuples so the suites can be listed and reviewed without importing GX (slow).
"""

from __future__ import annotations

from shardsmith.schemas.records import FINDING_STATUSES, SPLITS, TARGET_KINDS
from shardsmith.schemas.vocabulary import load_vocabulary

MODALITIES = ["CR", "DX", "CT", "MR", "PT", "US", "OT"]


def record_suites() -> dict[str, list[tuple[str, dict]]]:
    labels = load_vocabulary().labels()
    return {
        "records": [
            ("ExpectColumnValuesToNotBeNull", {"column": "record_id"}),
            ("ExpectColumnValuesToBeUnique", {"column": "record_id"}),
            ("ExpectColumnValuesToMatchRegex", {"column": "record_id", "regex": r"^[0-9a-f]{24}$"}),
            ("ExpectColumnValuesToNotBeNull", {"column": "source"}),
            ("ExpectColumnValuesToNotBeNull", {"column": "native_id"}),
            ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": list(SPLITS)}),
            ("ExpectColumnValuesToBeInSet", {"column": "modality", "value_set": MODALITIES}),
            ("ExpectColumnValuesToBeBetween", {"column": "height", "min_value": 1, "max_value": 16384}),
            ("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": 1, "max_value": 16384}),
            ("ExpectColumnValuesToNotBeNull", {"column": "complete"}),
            ("ExpectColumnValuesToMatchRegex", {"column": "raw_sha256", "regex": r"^[0-9a-f]{64}$"}),
        ],
        "findings": [
            ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": labels}),
            ("ExpectColumnValuesToBeInSet", {"column": "status", "value_set": list(FINDING_STATUSES)}),
        ],
        "targets": [
            ("ExpectColumnValuesToNotBeNull", {"column": "target_id"}),
            ("ExpectColumnValuesToBeUnique", {"column": "target_id"}),
            ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": labels}),
            ("ExpectColumnValuesToBeInSet", {"column": "kind", "value_set": list(TARGET_KINDS)}),
            ("ExpectColumnValuesToBeBetween", {"column": "area_px", "min_value": 0, "strict_min": True}),
            ("ExpectColumnValuesToBeInSet", {"column": "box_inside_image", "value_set": [True]}),
            ("ExpectColumnValuesToBeInSet", {"column": "mask_size_matches", "value_set": [True]}),
        ],
    }
