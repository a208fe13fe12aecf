"""Settings: every knob of shardsmith, read once, in one place.

``settings_from_env()`` is the only code that reads the process environment (``ENV`` below
lists every variable); the Dagster resource (``defs/resources.py``) and the CLI build a
:class:`Settings` through it, with their own overrides, and hand it down. Library code receives
settings as an argument and never looks at ``os.environ`` itself, so a worker process, a test or a
notebook sees exactly the configuration it was given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shardsmith.staging.layout import StagingLayout

DEMO_ENV = "SHARDSMITH_DEMO"
HOME_ENV = "SHARDSMITH_HOME"
KEY_ENV = "SHARDSMITH_PSEUDONYM_KEY"
ALIGN_MODEL_ENV = "SHARDSMITH_ALIGN_MODEL"
DIARIZATION_MODEL_ENV = "SHARDSMITH_DIARIZATION_MODEL"
# Built-in key for demo data only (SHARDSMITH_DEMO=1); real data must bring its own secret.
DEMO_KEY = b"shardsmith-demo-key-not-for-real-data"
# Public seed of the seeded train/val/test split. Splits hash this seed, the source and the native
# patient id, never the secret pseudonym key: two sites with the same raw files publish the same
# splits, and rotating the key moves no patient. Change it only to draw a different split on purpose.
DEFAULT_SPLIT_SEED = "shardsmith-split-v1"

SLICE_MODES = ("labelled+empty", "labelled", "all")
_TRUE = {"1", "true", "yes", "on"}


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
class VolumeOptions:
    """What becomes a record of a volume and how intensities/volumes are stored."""

    slices: str = "labelled+empty"
    empty_fraction: float = 0.1
    ct_window: str | None = None  # preset name or "level,width"; None = the source's default
    mr_percentiles: tuple[float, float] = (0.5, 99.5)
    volume_spacing_mm: float | None = 1.5  # None keeps the native (reoriented) grid
    write_volumes: bool = True
    sequences: tuple[str, ...] | None = None  # MR sequences that get 2D records; None = all

    def __post_init__(self) -> None:
        if self.slices not in SLICE_MODES:
            raise ValueError(f"slices must be one of {SLICE_MODES}, got {self.slices!r}")
        if not 0.0 <= self.empty_fraction <= 1.0:
            raise ValueError(f"empty_fraction must be in [0, 1], got {self.empty_fraction}")
        if self.volume_spacing_mm is not None and self.volume_spacing_mm <= 0:
            raise ValueError("volume_spacing_mm must be positive")


@dataclass(frozen=True)
class SpeechOptions:
    """Transcription and speaker settings (paths are local folders: nothing is downloaded)."""

    backend: str = "faster-whisper"  # faster-whisper (CPU) | whisperx (GPU, `gpu` extra)
    whisper_model: str = ""  # CTranslate2 model folder; empty = the packaged tiny.en
    align_model: str = ""  # whisperx alignment model folder; empty = no word alignment pass
    diarization_model: str = ""  # local pyannote pipeline folder for whisperx diarization
    speaker_weights: str = ""  # speaker-encoder weights; empty = Resemblyzer's bundled file


@dataclass(frozen=True)
class Settings:
    """Where data lives and how every step behaves. Frozen: built once, passed down."""

    home: Path
    image: ImageOptions = field(default_factory=ImageOptions)
    volume: VolumeOptions = field(default_factory=VolumeOptions)
    speech: SpeechOptions = field(default_factory=SpeechOptions)
    workers: int = 0  # decoding processes; 0 = every usable core, 1 = serial in this process
    buckets: int = 8  # hash buckets (partitions) of a partitioned source
    item_timeout_s: float = 300.0  # one item's decode limit in the pool; then quarantined
    allow_burned_in: bool = False  # publish DICOMs flagged BurnedInAnnotation=YES
    allow_partial: bool = False  # publish a release even when a source failed to stage
    executor: str = "multiprocess"  # multiprocess | in_process | celery | k8s
    celery_broker: str = "redis://127.0.0.1:6379/0"
    celery_backend: str = ""
    demo: bool = False  # demo data: the built-in pseudonym key is allowed
    split_seed: str = DEFAULT_SPLIT_SEED  # public seed of seeded splits (not a secret)

    def __post_init__(self) -> None:
        if self.buckets < 1:
            raise ValueError("buckets must be >= 1")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        if not self.split_seed.strip():
            raise ValueError("split_seed must not be empty (the default is config.DEFAULT_SPLIT_SEED)")

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

    @property
    def layout(self) -> StagingLayout:
        """The staging layout of this home: made once per settings object (one per build) and
        handed down with it, so no step rebuilds its own."""
        cached = self.__dict__.get("_layout")
        if cached is None:
            from shardsmith.staging.layout import StagingLayout

            cached = StagingLayout(self.home)
            object.__setattr__(self, "_layout", cached)
        return cached

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def usable_workers(self, n_items: int) -> int:
        """``workers`` (0 = the usable CPU count), never more than the items to do."""
        workers = self.workers
        if workers == 0:
            try:
                workers = len(os.sched_getaffinity(0))
            except AttributeError:  # pragma: no cover - not Linux
                workers = os.cpu_count() or 1
        return max(1, min(workers, n_items))


# Every environment variable shardsmith reads, and the Settings field it sets.
ENV: dict[str, str] = {
    HOME_ENV: "home",
    "SHARDSMITH_IMAGE_MAX_SIDE": "image.max_side",
    "SHARDSMITH_IMAGE_BIT_DEPTH": "image.bit_depth",
    "SHARDSMITH_VOLUME_SLICES": "volume.slices",
    "SHARDSMITH_VOLUME_EMPTY_FRACTION": "volume.empty_fraction",
    "SHARDSMITH_CT_WINDOW": "volume.ct_window",
    "SHARDSMITH_VOLUME_SPACING_MM": "volume.volume_spacing_mm",
    "SHARDSMITH_VOLUME_TABLE": "volume.write_volumes",
    "SHARDSMITH_VOLUME_SEQUENCES": "volume.sequences",
    "SHARDSMITH_ASR_BACKEND": "speech.backend",
    "SHARDSMITH_WHISPER_MODEL": "speech.whisper_model",
    ALIGN_MODEL_ENV: "speech.align_model",
    DIARIZATION_MODEL_ENV: "speech.diarization_model",
    "SHARDSMITH_SPEAKER_ENCODER": "speech.speaker_weights",
    "SHARDSMITH_WORKERS": "workers",
    "SHARDSMITH_BUCKETS": "buckets",
    "SHARDSMITH_ITEM_TIMEOUT_S": "item_timeout_s",
    "SHARDSMITH_ALLOW_BURNED_IN": "allow_burned_in",
    "SHARDSMITH_ALLOW_PARTIAL": "allow_partial",
    "SHARDSMITH_EXECUTOR": "executor",
    "SHARDSMITH_CELERY_BROKER": "celery_broker",
    "SHARDSMITH_CELERY_BACKEND": "celery_backend",
    DEMO_ENV: "demo",
    "SHARDSMITH_SPLIT_SEED": "split_seed",
}


def _parse(kind: Any, text: str, name: str) -> Any:
    text = text.strip()
    try:
        if kind in (bool, "bool"):
            return text.lower() in _TRUE
        if kind in (int, "int"):
            return int(text)
        if kind in (float, "float"):
            return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected {kind if isinstance(kind, str) else kind.__name__}") from None
    return text


def _volume_value(attr: str, text: str, name: str) -> Any:
    if attr == "volume_spacing_mm":
        return None if text.strip().lower() in ("", "native", "none") else _parse(float, text, name)
    if attr == "write_volumes":
        return text.strip().lower() not in ("0", "false", "no", "off")
    if attr == "sequences":
        return tuple(s.strip() for s in text.split(",") if s.strip()) or None
    if attr == "ct_window":
        return text.strip() or None
    if attr == "empty_fraction":
        return _parse(float, text, name)
    return text.strip()


def settings_from_env(home: str | Path | None = None, environ: dict[str, str] | None = None,
                      **overrides: Any) -> Settings:
    """Settings from the environment (``ENV``), then ``home`` and ``overrides`` on top."""
    env = os.environ if environ is None else environ
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {"image": {}, "volume": {}, "speech": {}}
    kinds = {f.name: f.type for f in fields(Settings)}
    for name, target in ENV.items():
        value = env.get(name)
        if value is None or target == "home":
            continue
        if "." in target:
            group, attr = target.split(".")
            if group == "image":
                nested[group][attr] = _parse(int, value, name)
            elif group == "volume":
                nested[group][attr] = _volume_value(attr, value, name)
            else:
                nested[group][attr] = value.strip()
        else:
            top[target] = _parse(kinds[target], value, name)
    root = Path(home or env.get(HOME_ENV) or "data").resolve()
    settings = Settings(
        home=root,
        image=ImageOptions(**nested["image"]),
        volume=VolumeOptions(**nested["volume"]),
        speech=SpeechOptions(**nested["speech"]),
        **top,
    )
    return settings.with_overrides(**overrides)


def demo_mode(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(DEMO_ENV, "").strip().lower() in _TRUE


def pseudonym_key(environ: dict[str, str] | None = None) -> bytes | None:
    """The secret for keyed pseudonyms: the environment's (kept out of ``Settings`` so it is never
    printed or pickled with them), the demo key in demo mode, else None."""
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV)
    if value:
        return value.encode()
    return DEMO_KEY if demo_mode(env) else None


def export_home(home: Path) -> None:
    """Point child processes (Dagster runs, workers) at ``home``: the CLI's ``--home`` wins."""
    os.environ[HOME_ENV] = str(home)


def enable_demo() -> None:
    """``shardsmith demo``: allow the built-in key for the demo data it writes."""
    os.environ.setdefault(DEMO_ENV, "1")


def dagster_home() -> str | None:
    """``DAGSTER_HOME`` when set: the persistent instance the CLI records its runs in."""
    return os.environ.get("DAGSTER_HOME") or None


def gx_quiet() -> None:
    """Great Expectations 1.x has no analytics module; the variable stays for older 1.x releases."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
