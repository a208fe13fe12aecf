"""Validation in the GX process gives the reports, failures and Data Docs it gives in this process;
one process holds one GX context for its checks (plus one file context per Data Docs site); and a
build that validates starts GX early in a child process and runs every check there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from shardsmith.pipeline import keys
from shardsmith.validation import gx_runner
from shardsmith.validation.suites import FrameSuite

SUITE = {"items": FrameSuite([("ExpectColumnValuesToNotBeNull", {"column": "item_id"}),
                              ("ExpectColumnValuesToBeBetween", {"column": "size", "min_value": 0})])}
GOOD = {"items": pd.DataFrame({"item_id": ["a", "b"], "size": [1, 2]})}
BROKEN = {"items": pd.DataFrame({"item_id": ["a", None], "size": [1, -5]})}  # one broken row, two rules


@pytest.fixture()
def gx_process():
    gx_runner.start_process()
    yield
    gx_runner.stop_process()


def _python(*args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter that imports the shardsmith under test, whatever the script's folder."""
    root = str(Path(gx_runner.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env)


def _failures(report) -> list[tuple]:
    return [(f["expectation"], str(f["column"]), f["unexpected_count"]) for s in report.suites for f in s.failed]


def _both(fn):
    """``fn()`` in this process, then in the GX process."""
    here = fn()
    gx_runner.start_process()
    try:
        assert gx_runner.gx_stats()["pid"] != os.getpid()
        return here, fn()
    finally:
        gx_runner.stop_process()


def test_a_broken_row_fails_the_same_way_in_the_gx_process():
    here, there = _both(lambda: gx_runner.ChunkRunner().run("items_t", BROKEN, SUITE))
    assert not here.success and not there.success
    assert _failures(here) == _failures(there) == [
        ("expect_column_values_to_not_be_null", "item_id", 1),
        ("expect_column_values_to_be_between", "size", 1)]
    good_here, good_there = _both(lambda: gx_runner.ChunkRunner().run("items_t", GOOD, SUITE))
    assert good_here.success and good_there.success


def test_data_docs_are_rendered_the_same_way_in_the_gx_process(tmp_path):
    sites = iter(("docs", "docs2"))
    here, there = _both(lambda: gx_runner.run_tables({"items_t": (BROKEN, SUITE)}, tmp_path / next(sites)))
    assert here["items_t"].docs_index == tmp_path / "docs" / "index.html"
    assert there["items_t"].docs_index == tmp_path / "docs2" / "index.html"
    pages = {d: sorted(p.relative_to(tmp_path / d).parts[0] for p in (tmp_path / d).rglob("*.html"))
             for d in ("docs", "docs2")}
    assert pages["docs"] == pages["docs2"] and len(pages["docs"]) > 1  # index + the suite and its run
    assert _failures(here["items_t"]) == _failures(there["items_t"])


def test_an_error_in_the_gx_process_is_raised_here_with_its_type(gx_process):
    bad = {"items": FrameSuite([("ExpectNoSuchThing", {"column": "item_id"})])}
    with pytest.raises(AttributeError, match="ExpectNoSuchThing") as err:
        gx_runner.ChunkRunner().run("items_bad", GOOD, bad)
    assert any("in the GX process" in note for note in getattr(err.value, "__notes__", []))
    assert gx_runner.ChunkRunner().run("items_t", GOOD, SUITE).success  # the process lives on


def test_one_process_has_one_gx_context_whatever_the_suites(gx_process):
    """Three suites of one frame taking turns (a partition that may be empty, one that may not, one
    with a stricter rule) share the context: each keeps its own checkpoint under a name of its own."""
    empty_ok = {"items": FrameSuite(SUITE["items"].expectations, allow_empty=True)}
    stricter = {"items": FrameSuite([*SUITE["items"].expectations,
                                     ("ExpectColumnValuesToBeBetween", {"column": "size", "min_value": 2})])}
    empty = {"items": pd.DataFrame({"item_id": pd.Series([], dtype=object), "size": pd.Series([], dtype=int)})}
    for _ in range(2):
        assert gx_runner.ChunkRunner().run("turns", empty, empty_ok).success
        assert not gx_runner.ChunkRunner().run("turns", empty, SUITE).success
        assert gx_runner.run_tables({"turns": (GOOD, SUITE)})["turns"].success
        assert not gx_runner.ChunkRunner().run("turns", GOOD, stricter).success
    stats = gx_runner.gx_stats()
    assert (stats["ephemeral"], stats["file"]) == (1, 0)


def test_the_gx_process_prints_nothing_on_stdout():
    """``shardsmith build --json`` owns stdout: whatever GX prints goes to stderr; and the child,
    terminated when the build ends, leaves nothing for the resource tracker to warn about."""
    code = ("from shardsmith.validation import gx_runner\n"
            "import pandas as pd\n"
            "from shardsmith.validation.suites import FrameSuite\n"
            "gx_runner.start_process()\n"
            "s = {'f': FrameSuite([('ExpectColumnValuesToNotBeNull', {'column': 'a'})])}\n"
            "r = gx_runner.ChunkRunner().run('t', {'f': pd.DataFrame({'a': [1]})}, s)\n"
            "import sys; sys.stderr.write('ok %s %s' % (r.success, 'great_expectations' in sys.modules))\n"
            "gx_runner.stop_process()\n")
    out = _python("-c", code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == ""
    assert "leaked" not in out.stderr  # the child, ended at once, leaves no semaphore behind
    assert "ok True False" in out.stderr  # validated, and GX was never imported here


def test_only_stages_that_run_suites_start_gx():
    assert not keys.validates([keys.catalog("vindr_cxr")])
    assert not keys.validates([keys.GAMES, keys.UTTERANCES])
    assert keys.validates([keys.catalog("vindr_cxr"), keys.records("vindr_cxr")])
    assert keys.validates([keys.release(keys.WEREWOLF)])


def test_a_one_image_rebuild_runs_its_checks_in_one_gx_context_of_a_child_process(nih_home, monkeypatch):
    from shardsmith.defs.run import run_build
    from shardsmith.demo import cxr_core
    from shardsmith.loaders import open_release

    cxr_core.write_vindr(nih_home / "raw" / "vindr_cxr")
    assert run_build(nih_home, echo=False, workers=1)["success"]
    path = sorted((nih_home / "raw" / "vindr_cxr").rglob("*.dicom"))[0]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))

    seen: dict = {}
    stop = gx_runner.stop_process

    def stop_and_count() -> None:
        seen.update(gx_runner.gx_stats())
        stop()

    monkeypatch.setattr(gx_runner, "stop_process", stop_and_count)
    result = run_build(nih_home, echo=False, workers=1)
    assert result["success"], result["errors"]
    assert result["recomputed"] == ["vindr_cxr_catalog", "vindr_cxr_records[b07]", "medical_release"]
    # the staging check and the release's later chunks share one context; the release's Data Docs
    # site has its own file context; both in the child, not here
    assert seen["pid"] != os.getpid() and (seen["ephemeral"], seen["file"]) == (1, 1)
    release = open_release(nih_home / "releases", "medical")
    assert Path(release.path / "validation" / "docs" / "index.html").is_file()
    assert gx_runner._PROCESS is None  # stopped with the build


def test_a_script_without_a_main_guard_validates_in_its_own_process(tmp_path):
    """A spawned child re-runs such a script and dies before it is ready: the script validates
    here instead, with a warning, rather than failing its build."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import os, sys\n"
        "import pandas as pd\n"
        "from shardsmith.validation import gx_runner\n"
        "from shardsmith.validation.suites import FrameSuite\n"
        "gx_runner.start_process()\n"
        "s = {'f': FrameSuite([('ExpectColumnValuesToNotBeNull', {'column': 'a'})])}\n"
        "r = gx_runner.ChunkRunner().run('t', {'f': pd.DataFrame({'a': [1, None]})}, s)\n"
        "print(r.success, gx_runner.gx_stats()['pid'] == os.getpid())\n")
    out = _python(str(script))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] == "False True"  # the broken row still fails, checked here
    assert "did not start" in out.stderr
