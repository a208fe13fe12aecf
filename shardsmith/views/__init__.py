"""Evaluation views derived per game from the games / utterances / votes rows (plain library)."""
