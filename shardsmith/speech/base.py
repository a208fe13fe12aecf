"""The transcription interface every backend implements.

A backend turns 16 kHz mono float32 samples into a Transcript: segments with word timings and
probabilities, plus what produced them (backend, model, device, settings) so that a game record
can say how it was transcribed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from shardsmith.errors import ShardsmithError
from shardsmith.speech.progress import ProgressCallback


class TranscriberUnavailable(ShardsmithError, RuntimeError):
    """A backend that cannot run here (missing optional extra, missing model files)."""

    default_reason = "transcriber_unavailable"

    def __init__(self, detail: str, reason: str | None = None):
        super().__init__(reason, detail)


class MissingExtra(TranscriberUnavailable):
    """An optional extra of the package is not installed; ``extra`` names it for the install hint,
    and the reason (``needs_extra_<extra>``) is the game's quarantine reason."""

    def __init__(self, extra: str, why: str):
        self.extra = extra
        self.install = f"pip install 'shardsmith[{extra}]'"
        super().__init__(f"{why}; install the '{extra}' extra: {self.install}", f"needs_extra_{extra}")


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    probability: float | None = None


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float | None = None


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: str | None
    backend: str
    model: str
    device: str
    compute_type: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def describe(self) -> dict[str, Any]:
        """The ``transcription`` struct of a games row."""
        return {
            "backend": self.backend,
            "model": self.model,
            "device": self.device,
            "compute_type": self.compute_type,
            "language": self.language,
            "settings": json.dumps(self.settings, sort_keys=True, ensure_ascii=False),
        }


@runtime_checkable
class Transcriber(Protocol):
    backend: str

    def transcribe(self, samples16k: np.ndarray, progress: ProgressCallback | None = None) -> Transcript:
        """Transcribe mono float32 samples at 16 kHz; ``progress(done_s, total_s, wall_s)`` as it goes."""
        ...
