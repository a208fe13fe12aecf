"""Benchmarks for issue 8: ingest, volumes, speech and reading, with results in RESULTS.md."""
