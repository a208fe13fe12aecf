"""Cross-source identity: perceptual fingerprints, duplicate groups and group-aware splits."""
