"""Pick a transcription backend by name or by ``SHARDSMITH_ASR_BACKEND`` (default faster-whisper)."""

from __future__ import annotations

from typing import Any

from shardsmith import config
from shardsmith.speech.base import Transcriber

BACKEND_ENV = "SHARDSMITH_ASR_BACKEND"
BACKENDS = ("faster-whisper", "whisperx")


def get_transcriber(backend: str | None = None, **options: Any) -> Transcriber:
    """A ready transcriber; raises TranscriberUnavailable (with the reason) if it cannot run here."""
    name = (backend or config.speech_options().backend or "faster-whisper").strip().lower().replace("_", "-")
    if name == "faster-whisper":
        from shardsmith.speech.faster_whisper_backend import FasterWhisperTranscriber

        return FasterWhisperTranscriber(**options)
    if name == "whisperx":
        from shardsmith.speech.whisperx_backend import WhisperXTranscriber

        return WhisperXTranscriber(**options)
    raise ValueError(f"unknown ASR backend {name!r}; choose one of {', '.join(BACKENDS)}")
