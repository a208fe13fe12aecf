"""Release writer: Parquet + WebDataset shards, manifest, dataset card, validation results."""
