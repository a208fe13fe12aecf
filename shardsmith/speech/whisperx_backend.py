"""GPU transcription with WhisperX: batched faster-whisper inference behind VAD, optional alignment.

``whisperx`` is the optional ``gpu`` extra and is imported only when this backend is used, so
the module always imports. Everything is local: the Whisper model folder (same rules as the CPU
backend), the pyannote VAD weights bundled in the whisperx wheel, an alignment model only when
``align_model_path`` (a local wav2vec2 folder, ``SHARDSMITH_ALIGN_MODEL``) is given, and pyannote
diarization only when ``diarization_model_path`` (a local pipeline folder, ``SHARDSMITH_DIARIZATION_MODEL``,
see ``diarize``) is given; the caller passes them from ``Settings.speech`` (``select.get_transcriber``).
It runs on the CPU too (``device="cpu", compute_type="int8"``), which is how its tests run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shardsmith.config import DIARIZATION_MODEL_ENV
from shardsmith.speech.base import Segment, Transcriber, TranscriberUnavailable, Transcript, Word
from shardsmith.speech.faster_whisper_backend import resolve_model_dir
from shardsmith.speech.progress import ProgressCallback


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
        diarization_model_path: str | Path | None = None,
        cpu_threads: int = 0,
    ):
        self._whisperx = _import_whisperx()  # fail at selection time, with the reason
        self.model_dir, self.model_name = resolve_model_dir(model_path)
        self.device = device
        self.compute_type = compute_type
        self.batch_size = batch_size
        self.language = language
        self.align_model_path = _as_str(align_model_path)
        self.diarization_model_path = _as_str(diarization_model_path)
        if self.diarization_model_path and not (Path(self.diarization_model_path) / "config.yaml").is_file():
            raise TranscriberUnavailable(  # at selection time, not after a game has been transcribed
                f"{DIARIZATION_MODEL_ENV}={self.diarization_model_path} is not a local pyannote "
                "pipeline folder (no config.yaml); unset it to use the built-in diarizer"
            )
        self.vad_method = vad_method
        self.cpu_threads = cpu_threads
        self._model: Any = None
        self._diarizer: Any = None

    def settings(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "vad_method": self.vad_method,
            "aligned": bool(self.align_model_path),
            "align_model": Path(self.align_model_path).name if self.align_model_path else None,
            "diarization_model": Path(self.diarization_model_path).name if self.diarization_model_path else None,
        }

    @property
    def can_diarize(self) -> bool:
        """True when a local pyannote pipeline is configured (``SHARDSMITH_DIARIZATION_MODEL``)."""
        return bool(self.diarization_model_path)

    def _load(self) -> Any:
        if self._model is None:
            self._model = self._whisperx.load_model(
                str(self.model_dir),
                self.device,
                compute_type=self.compute_type,
                language=self.language,
                vad_method=self.vad_method,
                local_files_only=True,
                threads=self.cpu_threads,
            )
            if self.language is None and not self._model.model.model.is_multilingual:
                self.language = "en"  # an English-only model (tiny.en in a folder not named *.en)
        return self._model

    def transcribe(self, samples16k: np.ndarray, progress: ProgressCallback | None = None) -> Transcript:
        wx = self._whisperx
        samples = np.asarray(samples16k, dtype=np.float32)
        model = self._load()
        total_s = len(samples) / 16_000
        t0 = time.perf_counter()
        # whisperx reports the share of speech chunks done; seconds are that share of the audio
        callback = (lambda pct: progress(total_s * pct / 100.0, total_s, time.perf_counter() - t0)) if progress else None
        result = model.transcribe(samples, batch_size=self.batch_size, language=self.language,
                                  progress_callback=callback)
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
        if progress is not None:
            progress(total_s, total_s, time.perf_counter() - t0)
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
        """Speaker turns (start, end, label) from pyannote through whisperx.

        Only from a local pipeline folder (``SHARDSMITH_DIARIZATION_MODEL``: a folder with the
        pipeline's ``config.yaml`` and the checkpoints it names, e.g. a downloaded copy of
        pyannote/speaker-diarization-community-1); pyannote's default pipeline is gated on the hub,
        and nothing is downloaded at run time. The werewolf video adapter calls this instead of the
        built-in d-vector diarizer when ``can_diarize`` is true.
        """
        if not self.diarization_model_path:
            raise TranscriberUnavailable(f"set {DIARIZATION_MODEL_ENV} to a local pyannote pipeline folder")
        folder = Path(self.diarization_model_path)
        if self._diarizer is None:
            from whisperx.diarize import DiarizationPipeline

            self._diarizer = DiarizationPipeline(model_name=str(folder), device=self.device)
        df = self._diarizer(np.asarray(samples16k, dtype=np.float32), num_speakers=num_speakers)
        return [(float(r.start), float(r.end), str(r.speaker)) for r in df.itertuples()]


def _as_str(path: str | Path | None) -> str | None:
    """A configured folder as a string, ``~`` expanded; empty means not configured."""
    return str(Path(path).expanduser()) if path else None


def _maybe_float(x: Any) -> float | None:
    return None if x is None else float(x)
