"""The CLI as a user drives it: a dry run says what a build would do and why, a build through
Dagster does it, `diff` shows what changed between versions, a wrong source name is a clear error."""

import json
import os
import traceback

import pytest
from click.testing import CliRunner

from shardsmith.cli import main


@pytest.fixture()
def home(nih_home):
    return nih_home


def _json(args):
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, (args, out.output, "".join(traceback.format_exception(*out.exc_info))[-1500:])
    return json.loads(out.stdout[out.stdout.index("{"):])


def test_dry_run_build_and_diff(home):
    plan = _json(["build", "--home", str(home), "--dry-run", "--json"])
    assert {s["step"]: s["would"] for s in plan["steps"]} == {
        "nih_cxr14_catalog": "recompute", "nih_cxr14_records": "recompute", "medical_release": "recompute"}

    built = _json(["build", "--home", str(home), "--workers", "1", "--json"])
    assert built["success"] and built["runs"] == 3  # catalogs, every bucket in ONE run, the release

    again = _json(["build", "--home", str(home), "--dry-run", "--json"])
    assert {s["would"] for s in again["steps"]} == {"reuse"}
    assert sum(1 for s in again["steps"] if s["step"].startswith("nih_cxr14_records[")) == 8

    label_file = home / "raw" / "nih_cxr14" / "Data_Entry_2017_v2020.csv"
    rows = label_file.read_text().splitlines()
    gone = next(r for r in rows[1:] if r.startswith("00000004_000.png"))  # an image on disk
    label_file.write_text("\n".join(r for r in rows if r != gone) + "\n")  # it loses its label row
    touched = _json(["build", "--home", str(home), "--dry-run", "--json"])
    catalog = next(s for s in touched["steps"] if s["step"] == "nih_cxr14_catalog")
    assert catalog["would"] == "recompute" and "touched" in catalog["why"]

    rebuilt = _json(["build", "--home", str(home), "--workers", "1", "--json"])
    assert rebuilt["success"]
    diff = _json(["diff", "v1", "v2", "--home", str(home), "--json"])
    assert len(diff["records"]["removed"]) == 1 and not diff["records"]["added"]
    quarantined = json.loads((home / "staging" / "nih_cxr14" / "catalog.json").read_text())["quarantined"]
    assert quarantined >= 1  # the image without a label row is quarantined, not dropped


def test_unknown_source_is_a_clear_error(home):
    out = CliRunner().invoke(main, ["build", "--home", str(home), "--source", "nih_cxr15"])
    assert out.exit_code == 2 and "Error: unknown source 'nih_cxr15' (did you mean nih_cxr14?)" in out.output
    assert "Traceback" not in out.output


def test_sources_lists_every_registered_source():
    out = CliRunner().invoke(main, ["sources"], env={**os.environ, "COLUMNS": "200"})
    assert out.exit_code == 0
    for name in ("vindr_cxr", "nih_cxr14", "kits", "werebench", "werewolf_video"):
        assert name in out.output
