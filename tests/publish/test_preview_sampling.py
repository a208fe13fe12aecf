"""Contact sheets sample every partition by a stable hash, not the first rows of the first file."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from shardsmith.publish.preview import label_pictures, sample_by_label
from shardsmith.schemas.records import RECORDS_SCHEMA


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _files(tmp_path, parts=8, per_part=25):
    png = _png()
    files = []
    for b in range(parts):
        rows = []
        for i in range(per_part):
            rid = f"{b:02d}{i:04d}".ljust(24, "0")
            rows.append({"record_id": rid, "source": "s", "native_id": f"b{b}-{i}", "split": "train",
                         "complete": False, "image": {"bytes": png, "path": f"{rid}.png"}, "height": 16,
                         "width": 16, "findings": [{"label": "nodule", "source_label": "Nodule",
                                                    "status": "present", "readers": []}], "targets": []})
        path = tmp_path / f"records-b{b:02d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA), path)
        files.append(path)
    return files


def test_sample_spans_partitions_and_is_stable(tmp_path):
    files = _files(tmp_path)
    sample = sample_by_label(files, per_label=8)["nodule"]
    assert len(sample) == 8
    assert len({r["native_id"].split("-")[0] for r in sample}) >= 3  # not all from the first file
    again = sample_by_label(list(reversed(files)), per_label=8)["nodule"]
    assert [r["record_id"] for r in again] == [r["record_id"] for r in sample]


def test_label_pictures_write_chart_and_sheets(tmp_path):
    files = _files(tmp_path, parts=2, per_part=3)
    lines = label_pictures(files, tmp_path / "pictures", {"nodule": 6})
    assert (tmp_path / "pictures" / "contact-nodule.png").is_file()
    assert "![nodule](pictures/contact-nodule.png)" in lines


def test_sample_is_the_per_row_rule_over_row_groups_statuses_and_missing_images(tmp_path):
    """The sample read with Arrow is the one the rule gives row by row: for each label, the
    ``per_label`` smallest ``_rank(record_id, label)`` among rows that hold image bytes and list the
    label as present (once per row), read back whole from whichever row group holds them."""
    from shardsmith.publish.preview import _rank

    png = _png()
    labels = ["nodule", "mass", "effusion"]
    files, rows_all = [], []
    for b in range(3):
        rows = []
        for i in range(60):
            rid = f"{b:02d}{i:04d}".ljust(24, "0")
            status = ["present", "absent", "uncertain"][(i + b) % 3]
            findings = [{"label": labels[i % 3], "source_label": "x", "status": status, "readers": []},
                        {"label": labels[(i + 1) % 3], "source_label": "y", "status": "present", "readers": []}]
            if i % 7 == 0:  # the same label twice in one record: one candidate
                findings.append(dict(findings[1], source_label="z"))
            image = None if i % 5 == 0 else {"bytes": b"" if i % 11 == 0 else png, "path": None}
            rows.append({"record_id": rid, "source": "s", "native_id": f"b{b}-{i}", "split": "train",
                         "complete": False, "image": image, "height": 16, "width": 16, "findings": findings,
                         "targets": []})
        path = tmp_path / f"records-b{b:02d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA), path, row_group_size=16)
        files.append(path)
        rows_all += rows
    expected = {}
    for label in labels:
        have = [r for r in rows_all if r["image"] and r["image"]["bytes"]
                and any(f["label"] == label and f["status"] == "present" for f in r["findings"])]
        expected[label] = [r["native_id"] for r in sorted(have, key=lambda r: _rank(r["record_id"], label))[:4]]
    sample = sample_by_label(files, per_label=4, batch_rows=10)
    assert {k: [r["native_id"] for r in v] for k, v in sample.items()} == expected
    chosen = next(iter(sample.values()))[0]
    source = next(r for r in rows_all if r["native_id"] == chosen["native_id"])
    assert chosen["image"]["bytes"] == png and chosen["findings"] == source["findings"]


def _ranked_rows(tmp_path, without_image: int, n: int = 60):
    """One file of ``n`` 'nodule' records whose ``without_image`` best-ranked rows hold no image."""
    from shardsmith.publish.preview import _rank

    png = _png()
    ids = [f"{i:04d}".ljust(24, "0") for i in range(n)]
    best = set(sorted(ids, key=lambda r: _rank(r, "nodule"))[:without_image])
    rows = [{"record_id": rid, "source": "s", "native_id": f"n-{rid[:4]}", "split": "train", "complete": False,
             "image": None if rid in best else {"bytes": png, "path": None}, "height": 16, "width": 16,
             "findings": [{"label": "nodule", "source_label": "Nodule", "status": "present", "readers": []}],
             "targets": []} for rid in ids]
    path = tmp_path / "records.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA), path, row_group_size=8)
    expected = [r["native_id"] for r in sorted((r for r in rows if r["image"]), key=lambda r: _rank(r["record_id"],
                                                                                               "nodule"))]
    return [path], expected


def test_rows_without_images_past_the_slack_still_give_the_rule_s_sample(tmp_path):
    """More imageless rows at the top of the ranking than the slack covers: the label is ranked
    again with the image column, and the sample is still the rule's."""
    from shardsmith.publish.preview import SAMPLE_SLACK

    files, expected = _ranked_rows(tmp_path, without_image=SAMPLE_SLACK + 6)
    sample = sample_by_label(files, per_label=4, batch_rows=10)
    assert [r["native_id"] for r in sample["nodule"]] == expected[:4]


def test_the_ranking_pass_does_not_read_the_image_column(tmp_path, monkeypatch):
    """The first pass reads ``record_id`` and ``findings`` only: reading every record's image bytes
    to test them for emptiness was the release's largest allocation. Image bytes are read back only
    for the row groups of the kept candidates."""
    files, expected = _ranked_rows(tmp_path, without_image=3)
    read: list[list[str]] = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        read.append(list(kwargs.get("columns") or []))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    sample = sample_by_label(files, per_label=4, batch_rows=10)
    assert [r["native_id"] for r in sample["nodule"]] == expected[:4]
    assert read and all("image" not in cols for cols in read), read
