"""Pick a transcription backend from the speech settings (default faster-whisper).

The settings come from the caller (``Settings.speech``, built once by ``config.settings_from_env``);
nothing here reads the environment.
"""

from __future__ import annotations

from typing import Any

from shardsmith.config import SpeechOptions
from shardsmith.speech.base import Transcriber

BACKENDS = ("faster-whisper", "whisperx")


def get_transcriber(backend: str | None = None, speech: SpeechOptions | None = None, **options: Any) -> Transcriber:
    """A ready transcriber for ``backend`` (else ``speech.backend``) with the model folders of ``speech``
    (defaults when None); raises TranscriberUnavailable (with the reason) if it cannot run here."""
    speech = speech or SpeechOptions()
    name = (backend or speech.backend or "faster-whisper").strip().lower().replace("_", "-")
    options.setdefault("model_path", speech.whisper_model or None)
    if name == "faster-whisper":
        from shardsmith.speech.faster_whisper_backend import FasterWhisperTranscriber

        return FasterWhisperTranscriber(**options)
    if name == "whisperx":
        from shardsmith.speech.whisperx_backend import WhisperXTranscriber

        options.setdefault("align_model_path", speech.align_model or None)
        options.setdefault("diarization_model_path", speech.diarization_model or None)
        return WhisperXTranscriber(**options)
    raise ValueError(f"unknown ASR backend {name!r}; choose one of {', '.join(BACKENDS)}")
