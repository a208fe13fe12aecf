"""Validation in bounded chunks: read a table a chunk of rows at a time, and combine the GX
reports of the chunks into one (issue 12: validation memory must not grow with the release).

Only the reading strategy and the combination live here; the suites and the GX runner are
unchanged (``validation.suites``, ``validation.gx_runner``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shardsmith.validation.gx_runner import SuiteOutcome, ValidationReport


def chunks_of(files: list[Path], columns: list[str], rows: int) -> Iterator[pa.Table]:
    """Arrow tables of about ``rows`` rows of ``files`` (only ``columns`` that exist), in order."""
    pending: list = []
    n = 0
    for f in files:
        pf = pq.ParquetFile(f)
        cols = [c for c in columns if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=min(rows, 8192), columns=cols):
            pending.append(pa.Table.from_batches([batch]))
            n += batch.num_rows
            if n >= rows:
                yield pa.concat_tables(pending, promote_options="default")
                pending, n = [], 0
    if pending:
        yield pa.concat_tables(pending, promote_options="default")


def merge_reports(reports: list[ValidationReport]) -> ValidationReport:
    """One report from the reports of several chunks of a table: a suite fails if any chunk failed;
    failures of the same expectation add their unexpected counts."""
    if len(reports) == 1:
        return reports[0]
    suites: dict[str, SuiteOutcome] = {}
    for report in reports:
        for s in report.suites:
            have = suites.get(s.suite)
            if have is None:
                suites[s.suite] = SuiteOutcome(s.suite, s.success, s.evaluated, [dict(f) for f in s.failed])
                continue
            have.success = have.success and s.success
            have.evaluated = max(have.evaluated, s.evaluated)
            for f in s.failed:
                same = next((g for g in have.failed if (g["expectation"], str(g["column"]))
                             == (f["expectation"], str(f["column"]))), None)
                if same is None:
                    have.failed.append(dict(f))
                    continue
                if isinstance(same.get("unexpected_count"), int) and isinstance(f.get("unexpected_count"), int):
                    same["unexpected_count"] += f["unexpected_count"]
                same["sample"] = (list(same.get("sample") or []) + list(f.get("sample") or []))[:5]
    out = list(suites.values())
    return ValidationReport(reports[0].table, all(s.success for s in out), out, reports[0].docs_dir)
