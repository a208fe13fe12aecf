"""The duplicates stage inside a release: ChestX-Det's demo image 0 is NIH's demo film 0, renamed and
2% cropped (the dataset's real trap). The release puts both in one group, in one split, lists them in
``duplicates`` and in the card; ``shardsmith dupes`` prints the same pair count."""

import json

import pyarrow.parquet as pq
from click.testing import CliRunner

from shardsmith.cli import main
from shardsmith.config import ImageOptions, Settings
from shardsmith.demo import cxr_core, cxr_more
from shardsmith.pipeline.releases import build_release
from shardsmith.sources.registry import get_source
from shardsmith.staging.runner import run_source


def test_release_groups_a_rerelease_across_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARDSMITH_DEMO", "1")
    settings = Settings(home=tmp_path, image=ImageOptions(max_side=256), workers=1)
    cxr_core.write_nih(settings.raw_dir("nih_cxr14"))
    cxr_more.write_chestx_det(settings.raw_dir("chestx_det"))
    for name in ("nih_cxr14", "chestx_det"):
        run_source(settings, get_source(name, settings))
    result = build_release(settings, "medical", ["chestx_det", "nih_cxr14"])

    dupes = pq.read_table(result.path / "data" / "duplicates").to_pylist()
    image_links = [d for d in dupes if d["method"] in ("exact", "perceptual")]
    groups = {d["duplicate_group"] for d in image_links}
    assert len(groups) == 1 and {d["source"] for d in image_links} == {"nih_cxr14", "chestx_det"}
    group = groups.pop()
    records = pq.read_table(result.path / "data" / "records", columns=["record_id", "source", "split",
                                                                      "duplicate_group"]).to_pylist()
    members = [r for r in records if r["duplicate_group"] == group]
    assert {r["source"] for r in members} >= {"nih_cxr14", "chestx_det"}
    assert len({r["split"] for r in members}) == 1  # the group never spans splits
    assert all(r["duplicate_group"] for r in records)  # every record has its (possibly singleton) group
    split_of = {r["record_id"]: r["split"] for r in records}
    turns = pq.read_table(result.path / "data" / "dialogues", columns=["record_id", "split"]).to_pylist()
    assert turns and all(t["split"] == split_of[t["record_id"]] for t in turns)  # views follow the groups
    card = (result.path / "README.md").read_text()
    assert "## Duplicates across sources" in card and "| chestx_det | nih_cxr14 | 1 |" in card

    out = CliRunner().invoke(main, ["dupes", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert {"source_a": "chestx_det", "source_b": "nih_cxr14", "groups": 1} in summary["pairs"]
