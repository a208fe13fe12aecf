"""Settings read from the environment, shared by the library and the Dagster layer.

Kept as a plain dataclass so library code never needs Dagster to know where data lives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEMO_ENV = "SHARDSMITH_DEMO"
HOME_ENV = "SHARDSMITH_HOME"
KEY_ENV = "SHARDSMITH_PSEUDONYM_KEY"


@dataclass(frozen=True)
class ImageOptions:
    """How decoded pixels are stored: longest side in pixels (0 keeps the native size) and bit depth."""

    max_side: int = 1024
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
        if self.max_side < 0:
            raise ValueError("max_side must be >= 0")


@dataclass(frozen=True)
class Settings:
    home: Path
    image: ImageOptions = field(default_factory=ImageOptions)

    @property
    def raw(self) -> Path:
        return self.home / "raw"

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    def raw_dir(self, source: str) -> Path:
        return self.raw / source

    def staging_dir(self, source: str) -> Path:
        return self.staging / source

    def quarantine_dir(self, source: str) -> Path:
        return self.quarantine / source


def demo_mode() -> bool:
    return os.environ.get(DEMO_ENV, "").lower() in {"1", "true", "yes"}


def settings_from_env(home: str | Path | None = None) -> Settings:
    root = Path(home or os.environ.get(HOME_ENV, "data")).resolve()
    image = ImageOptions(
        max_side=int(os.environ.get("SHARDSMITH_IMAGE_MAX_SIDE", "1024")),
        bit_depth=int(os.environ.get("SHARDSMITH_IMAGE_BIT_DEPTH", "8")),
    )
    return Settings(home=root, image=image)


ALIGN_MODEL_ENV = "SHARDSMITH_ALIGN_MODEL"
DIARIZATION_MODEL_ENV = "SHARDSMITH_DIARIZATION_MODEL"


def align_model_path() -> Path | None:
    """A local wav2vec2 folder for whisperx word alignment; unset (the default) leaves alignment off."""
    value = os.environ.get(ALIGN_MODEL_ENV, "").strip()
    return Path(value).expanduser() if value else None


def diarization_model_path() -> Path | None:
    """A local pyannote pipeline folder for whisperx diarization; unset keeps the built-in d-vector diarizer."""
    value = os.environ.get(DIARIZATION_MODEL_ENV, "").strip()
    return Path(value).expanduser() if value else None
