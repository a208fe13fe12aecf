"""Dagster assets: thin wiring of library calls into the asset graph."""
