"""Speech code takes its settings from the caller (``Settings.speech``), never from the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import shardsmith.speech
from shardsmith.config import SpeechOptions, settings_from_env
from shardsmith.speech.base import MissingExtra, TranscriberUnavailable

SPEECH_DIR = Path(shardsmith.speech.__path__[0])
ENV_READS = re.compile(r"os\.environ|getenv\(|\bconfig\.\w+\(|settings_from_env\(|from shardsmith import config\b")


def test_no_speech_module_reads_the_environment() -> None:
    offenders = [f"{p.name}:{n}: {line.strip()}" for p in sorted(SPEECH_DIR.glob("*.py"))
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if ENV_READS.search(line)]
    assert offenders == []


def test_transcriber_follows_the_settings_passed_not_the_environment(tmp_path: Path, monkeypatch) -> None:
    from shardsmith.speech.select import get_transcriber

    monkeypatch.setenv("SHARDSMITH_ASR_BACKEND", "nope")
    monkeypatch.setenv("SHARDSMITH_WHISPER_MODEL", str(tmp_path / "env-model"))
    tr = get_transcriber(speech=SpeechOptions())  # defaults: the packaged tiny.en, whatever the environment says
    assert tr.backend == "faster-whisper" and tr.model_name.startswith("tiny.en")
    with pytest.raises(TranscriberUnavailable, match="given-model"):
        get_transcriber(speech=SpeechOptions(whisper_model=str(tmp_path / "given-model")))
    # The environment reaches speech code only through settings_from_env, once, in the caller.
    monkeypatch.setenv("SHARDSMITH_ASR_BACKEND", "faster-whisper")
    with pytest.raises(TranscriberUnavailable, match="env-model"):
        get_transcriber(speech=settings_from_env(tmp_path).speech)


def test_speaker_weights_come_from_the_settings(tmp_path: Path, monkeypatch) -> None:
    from shardsmith.speech.embeddings import encoder_weights_path, missing_speakers_extra

    monkeypatch.setenv("SHARDSMITH_SPEAKER_ENCODER", str(tmp_path / "from-env.pt"))
    given = tmp_path / "given.pt"
    assert encoder_weights_path(given) == given
    missing = missing_speakers_extra(given)  # the file does not exist
    assert isinstance(missing, MissingExtra) and "given.pt" in str(missing) and missing.reason == "needs_extra_speakers"
    assert "from-env" not in str(encoder_weights_path())  # unset: the encoder's own file, not the env's
