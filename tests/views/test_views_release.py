"""End to end: staged records -> stage_views -> publish -> open_release -> pandas / torch readers."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.loaders import open_release
from shardsmith.loaders.grounding import GroundingDataset
from shardsmith.publish.release import TableInput, publish
from shardsmith.schemas.records import RECORDS_SCHEMA
from shardsmith.schemas.tables import TABLES
from shardsmith.views import build_views
from shardsmith.views.stage import stage_views


def test_views_publish_beside_records_and_read_back(tmp_path: Path, demo_records) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    record_files = []
    for source in sorted({r["source"] for r in demo_records}):
        path = staging / f"records-{source}.parquet"
        pq.write_table(pa.Table.from_pylist([r for r in demo_records if r["source"] == source],
                                            schema=RECORDS_SCHEMA), path)
        record_files.append(path)
    staged = stage_views(record_files, tmp_path / "views")
    assert set(staged.files) >= {"grounding", "consensus", "dialogues"}
    assert "## Reader agreement" in staged.card_markdown and staged.agreement

    tables = [TableInput(TABLES["records"], record_files)]
    tables += [TableInput(TABLES[name], files) for name, files in sorted(staged.files.items())]
    result = publish(tmp_path / "releases", "medical", tables, input_fingerprints={"demo": "0" * 64},
                     card=lambda manifest: "# card\n\n" + staged.card_markdown)
    rel = open_release(tmp_path / "releases", "medical")
    rel.verify()
    assert set(rel.tables) >= {"records", "grounding", "consensus", "dialogues"}
    expected = build_views(demo_records)
    for name in ("grounding", "consensus", "dialogues"):
        assert sum(result.row_counts[name].values()) == len(getattr(expected, name)) == staged.rows[name]
    dialogues = rel.pandas("dialogues")
    assert sorted(dialogues["turn_id"]) == sorted(t["turn_id"] for t in expected.dialogues)
    assert (rel.path / "README.md").read_text().count("## Grounding") == 1
    ds = GroundingDataset(rel)
    assert len(ds) == len(expected.grounding)
    item = ds[len(ds) - 1]
    assert item["mask"].shape == item["image"].shape[-2:] and int(item["mask"].sum()) > 0
