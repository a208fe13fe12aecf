"""The GX check of one staged records partition, with Data Docs where they help: on failure.

An empty partition passes only when every input it had is in quarantine (none at all, or all with a
reason: nothing was lost); a partition that lost items, or whose columns were renamed, fails.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from shardsmith.validation.gx_runner import ValidationReport, run_suites, validate_with_docs


def check_records_partition(name: str, path: Path, inputs: int, docs_out: Path,
                            quarantined: int = 0) -> ValidationReport:
    """Validate ``path`` (a staged records file); a failing run renders Data Docs into ``docs_out``.

    ``inputs`` is the partition's catalog size (``counts["inputs"]``), ``quarantined`` the rows of its
    quarantine file: with ``inputs == quarantined`` no rows is the right answer. The passing run uses an ephemeral
    GX context (fast); only a failure is re-run with a file context to render the site, whose
    ``index.html`` is ``report.docs_index``.
    """
    from shardsmith.validation.frames import read_tables, record_frames
    from shardsmith.validation.suites import record_suites

    cols = [c for c in pq.read_schema(path).names if c != "image"]
    frames = record_frames(read_tables([path], cols))
    suites = record_suites(allow_empty=inputs == quarantined)
    report = run_suites(f"{name}_records", frames, suites)
    if report.success:
        return report
    return validate_with_docs(f"{name}_records", frames, suites, docs_out)[0]
