"""GPU transcription with WhisperX: batched faster-whisper inference behind VAD, optional alignment.

``whisperx`` is the optional ``gpu`` extra and is imported only when this backend is used, so
the module always imports. Everything is local: the Whisper model folder (same rules as the CPU
backend), the pyannote VAD weights bundled in the whisperx wheel, an alignment model only when
``SHARDSMITH_ALIGN_MODEL`` (a local wav2vec2 folder) is configured, and pyannote diarization only
when ``SHARDSMITH_DIARIZATION_MODEL`` (a local pipeline folder) is configured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from shardsmith.speech.base import Segment, Transcriber, TranscriberUnavailable, Transcript, Word
from shardsmith.speech.faster_whisper_backend import resolve_model_dir

ALIGN_MODEL_ENV = "SHARDSMITH_ALIGN_MODEL"
DIARIZATION_MODEL_ENV = "SHARDSMITH_DIARIZATION_MODEL"


def _import_whisperx() -> Any:
    try:
        import whisperx
    except ImportError as exc:
        raise TranscriberUnavailable(
            "the whisperx backend needs the optional 'gpu' extra (pip install 'shardsmith[gpu]'); "
            "use SHARDSMITH_ASR_BACKEND=faster-whisper on machines without it"
        ) from exc
    return whisperx


class WhisperXTranscriber(Transcriber):
    backend = "whisperx"

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "cuda",
        compute_type: str = "float16",
        batch_size: int = 16,
        language: str | None = None,
        align_model_path: str | Path | None = None,
        vad_method: str = "pyannote",
    ):
        self._whisperx = _import_whisperx()  # fail at selection time, with the reason
        self.model_dir, self.model_name = resolve_model_dir(model_path)
        self.device = device
        self.compute_type = compute_type
        self.batch_size = batch_size
        self.language = language
        self.align_model_path = align_model_path or os.environ.get(ALIGN_MODEL_ENV) or None
        self.vad_method = vad_method
        self._model: Any = None

    def settings(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "vad_method": self.vad_method,
            "aligned": bool(self.align_model_path),
            "align_model": Path(self.align_model_path).name if self.align_model_path else None,
        }

    def _load(self) -> Any:
        if self._model is None:
            self._model = self._whisperx.load_model(
                str(self.model_dir),
                self.device,
                compute_type=self.compute_type,
                language=self.language,
                vad_method=self.vad_method,
                local_files_only=True,
            )
        return self._model

    def transcribe(self, samples16k: np.ndarray) -> Transcript:
        wx = self._whisperx
        samples = np.asarray(samples16k, dtype=np.float32)
        result = self._load().transcribe(samples, batch_size=self.batch_size, language=self.language)
        language = result.get("language") or self.language
        segments = result["segments"]
        if self.align_model_path:
            align_model, metadata = wx.load_align_model(
                language_code=language, device=self.device, model_name=str(self.align_model_path)
            )
            segments = wx.align(
                segments, align_model, metadata, samples, self.device, return_char_alignments=False
            )["segments"]
        out = []
        for seg in segments:
            words = tuple(
                Word(w["word"], float(w["start"]), float(w["end"]), _maybe_float(w.get("score")))
                for w in seg.get("words", [])
                if "start" in w and "end" in w  # unalignable tokens lack times
            )
            out.append(
                Segment(
                    float(seg["start"]),
                    float(seg["end"]),
                    seg["text"],
                    words,
                    _maybe_float(seg.get("avg_logprob")),
                )
            )
        return Transcript(
            tuple(out),
            language,
            self.backend,
            self.model_name,
            self.device,
            self.compute_type,
            self.settings(),
        )

    def diarize(self, samples16k: np.ndarray, num_speakers: int | None) -> list[tuple[float, float, str]]:
        """pyannote through whisperx, only from a configured local pipeline folder."""
        model = os.environ.get(DIARIZATION_MODEL_ENV)
        if not model:
            raise TranscriberUnavailable(f"set {DIARIZATION_MODEL_ENV} to a local pyannote pipeline folder")
        from whisperx.diarize import DiarizationPipeline

        df = DiarizationPipeline(model_name=model, device=self.device)(samples16k, num_speakers=num_speakers)
        return [(float(r.start), float(r.end), str(r.speaker)) for r in df.itertuples()]


def _maybe_float(x: Any) -> float | None:
    return None if x is None else float(x)
