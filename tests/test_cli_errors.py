"""A user's mistakes end in one ``Error:`` line and exit code 2, never a traceback; a build is quiet
unless ``--verbose``; names are never cut in ``--json``; a broken plugin fails the build naming it."""

from __future__ import annotations

import json
import textwrap
import traceback

import pytest
from click.testing import CliRunner

from shardsmith.cli import main
from shardsmith.demo import cxr_core
from shardsmith.sources import registry


def _invoke(args: list[str], **kw):
    out = CliRunner().invoke(main, args, **kw)
    assert "Traceback" not in out.output, out.output
    assert not isinstance(out.exception, Exception) or isinstance(out.exception, SystemExit), \
        "".join(traceback.format_exception(out.exception))
    return out


def _errors(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("Error: ")]


@pytest.fixture()
def home(nih_home):
    return nih_home


def test_verify_and_diff_without_releases_or_with_unknown_versions(home):
    out = _invoke(["verify", "--home", str(home)])
    assert out.exit_code == 2 and len(_errors(out.output)) == 1 and "shardsmith build" in out.output
    out = _invoke(["diff", "v1", "v9", "--home", str(home)])
    assert out.exit_code == 2 and len(_errors(out.output)) == 1
    assert _invoke(["build", "--home", str(home), "--workers", "1", "--json"]).exit_code == 0
    out = _invoke(["verify", "--home", str(home), "--version", "v9"])
    assert out.exit_code == 2 and _errors(out.output) == ["Error: medical has no version 'v9'; published: v1"]
    out = _invoke(["diff", "v1", "v9", "--home", str(home)])
    assert out.exit_code == 2 and "published: v1" in out.output
    assert _invoke(["verify", "--home", str(home), "--version", "v1"]).exit_code == 0


def test_labels_unknown_source_and_wrong_folder(home, tmp_path):
    out = _invoke(["labels", "nih_cxr15", str(home / "raw" / "nih_cxr14")])
    assert out.exit_code == 2 and "did you mean nih_cxr14?" in _errors(out.output)[0]
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    out = _invoke(["labels", "nih_cxr14", str(empty)])
    assert out.exit_code == 2 and "holds no label files of nih_cxr14" in _errors(out.output)[0]
    assert _invoke(["labels", "nih_cxr14", str(home / "raw" / "nih_cxr14"), "--json"]).exit_code == 0


def test_missing_key_and_foreign_folder_fail_before_anything_runs(home, monkeypatch):
    monkeypatch.delenv("SHARDSMITH_DEMO")
    monkeypatch.delenv("SHARDSMITH_PSEUDONYM_KEY")
    (home / "raw" / "vindr_cxr").mkdir()  # a source's folder without its label files
    out = _invoke(["build", "--home", str(home)])
    errors = _errors(out.output)
    assert out.exit_code == 2 and len(errors) == 2, out.output
    assert "SHARDSMITH_PSEUDONYM_KEY is not set" in errors[0]
    assert "is not in a layout of vindr_cxr" in errors[1]
    assert len(out.output.splitlines()) == 2  # nothing else: no stack trace, no Dagster lines
    assert not (home / "staging").exists()


def test_sources_json_lists_layouts():
    out = _invoke(["sources", "--json"])
    facts = json.loads(out.stdout)
    assert facts["nih_cxr14"]["layouts"] and all(isinstance(f["layouts"], list) for f in facts.values())


BROKEN = textwrap.dedent('''
    import a_module_that_is_not_installed_anywhere  # noqa: F401
''')


@pytest.fixture()
def broken_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_lab_source.py").write_text(BROKEN)
    dist = site / "broken_lab_source-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-lab-source\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[shardsmith.sources]\nbroken_lab = broken_lab_source:Broken\n")
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield
    monkeypatch.undo()
    registry.refresh()


def test_plugin_that_fails_to_import_fails_the_build_naming_it(home, broken_plugin):
    out = _invoke(["build", "--home", str(home), "--dry-run"])
    assert out.exit_code == 2
    (error,) = _errors(out.output)
    assert "broken_lab = broken_lab_source:Broken" in error and "a_module_that_is_not_installed_anywhere" in error
    out = _invoke(["build", "--home", str(home), "--dry-run", "--allow-partial"])
    assert out.exit_code == 0 and "broken_lab" not in out.stdout


def test_a_release_refuses_a_broken_plugin_in_dagster_too(home, broken_plugin):
    """The Dagster UI path has no preflight: the release step itself refuses, unless allow_partial,
    and then the card names what was left out."""
    from shardsmith.pipeline.preflight import build_settings
    from shardsmith.pipeline.releases import PartialReleaseRefusedError, check_partial, partial_card_note

    with pytest.raises(PartialReleaseRefusedError, match="broken_lab_source"):
        check_partial(build_settings(home), "medical")
    left_out = check_partial(build_settings(home, allow_partial=True), "medical")
    assert "broken_lab = broken_lab_source:Broken" in partial_card_note(left_out)


def test_json_summary_keeps_whole_names(home):
    cxr_core.write_vindr(home / "raw" / "vindr_cxr")
    out = _invoke(["build", "--home", str(home), "--workers", "1", "--json"])
    summary = json.loads(out.stdout)
    runs = [s["run"] for s in summary["steps"]]
    assert "nih_cxr14_catalog, vindr_cxr_catalog" in runs
    assert "nih_cxr14_records, vindr_cxr_records (8 partitions)" in runs
    assert all(" x " not in r and "…" not in r for r in runs)


def _impossible_width(suite_fn):
    """A record suite with one more expectation that every record fails (width <= 1)."""
    from shardsmith.validation.suites import FrameSuite

    def patched(*args, **kwargs):
        suite = suite_fn(*args, **kwargs)
        records = suite["records"]
        suite["records"] = FrameSuite([*records.expectations,
                                       ("ExpectColumnValuesToBeBetween", {"column": "width", "max_value": 1})],
                                      records.allow_empty, records.extra_columns)
        return suite

    return patched


def _docs_path(lines: list[str]) -> str:
    (line,) = [ln for ln in lines if "Data Docs: " in ln]
    return line.split("Data Docs: ", 1)[1].split(" ")[0]


def test_a_failed_check_names_what_failed_and_where_the_docs_are(home, monkeypatch):
    from pathlib import Path

    from shardsmith.validation import suites

    monkeypatch.setattr(suites, "record_suites", _impossible_width(suites.record_suites))
    out = _invoke(["build", "--home", str(home), "--workers", "1"], env={"COLUMNS": "300"})
    assert out.exit_code == 1
    lines = out.output.splitlines()
    failed = [ln for ln in lines if ln.startswith("check failed: nih_cxr14_records:records_gx_suite: ")]
    assert any("expect_column_values_to_be_between column=width failing_rows=" in ln for ln in failed), out.output
    assert Path(_docs_path(failed)).is_file()
    assert "sources that failed to stage: nih_cxr14" in out.output
    assert len(lines) <= 30, out.output


def test_a_refused_release_names_each_failure_and_keeps_its_data_docs(home, monkeypatch):
    from pathlib import Path

    from shardsmith.validation import suites

    original = suites.suites_for
    monkeypatch.setattr(suites, "suites_for", lambda table: _impossible_width(original)(table)
                        if table == "records" else original(table))
    out = _invoke(["build", "--home", str(home), "--workers", "1"], env={"COLUMNS": "300"})
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert "error: medical_release: ValidationFailedError: medical: validation failed; nothing published" in lines, \
        out.output
    assert any(ln.strip().startswith("table records: records.records: expect_column_values_to_be_between "
                                     "column=width failing_rows=") for ln in lines), out.output
    docs = Path(_docs_path(lines))
    assert docs.is_file() and docs.is_relative_to(home / "staging" / "_validation" / "medical")
    assert not (home / "releases" / "medical" / "LATEST").exists()
