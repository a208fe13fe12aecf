"""Speech: transcription backends behind one interface, and speaker attribution.

Heavy dependencies (faster-whisper, whisperx, torch) are imported inside the functions that need
them, so importing this package is cheap and never fails for a missing optional extra.
"""
