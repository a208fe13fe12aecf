"""Speech paths of a video game that are not about recognition quality.

- Lean install: without the ``speakers`` extra (torch or the encoder weights missing, simulated by
  blocking the import), a game with no sidecar ``turns`` is quarantined ``needs_extra_speakers``
  before any transcription, with the install command in the log; a game with turns still builds.
- External diarization (the whisperx/pyannote route): speaker turns from a diarizer are mapped to
  seats by what people say, and the games row records the method.
- Progress: seconds of audio done / total and the real-time factor reach ``shardsmith.progress``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from skip_policy import need_tool, requires_tool

from shardsmith.speech.base import Transcript
from shardsmith.speech.progress import format_progress, transcription_progress

needs_espeak = requires_tool("espeak-ng", "the Debian package (scripts/bootstrap.sh installs it) makes the "
                                          "synthetic voices")


_CACHE: dict[str, Transcript] = {}  # the demo games share one audio track: transcribe it once per module


class CountingTranscriber:
    """The real faster-whisper transcriber; identical audio is transcribed once, calls are counted."""

    def __init__(self, inner):
        self.inner, self.backend, self.cache, self.calls = inner, inner.backend, _CACHE, 0

    def transcribe(self, samples16k: np.ndarray, progress=None) -> Transcript:
        self.calls += 1
        key = hashlib.sha256(np.ascontiguousarray(samples16k).tobytes()).hexdigest()
        if key not in self.cache:
            self.cache[key] = self.inner.transcribe(samples16k, progress)
        return self.cache[key]


class GivenTurnsDiarizer(CountingTranscriber):
    """Stands in for whisperx with a local pyannote pipeline: ``diarize`` returns the speaker turns it
    was given, under anonymous labels, as pyannote would. What is tested is everything after that."""

    def __init__(self, inner, turns: list[tuple[float, float, str]]):
        super().__init__(inner)
        self.turns, self.diarize_calls = turns, []
        self.can_diarize, self.diarization_model_path = True, "/models/pyannote-local"

    def diarize(self, samples16k: np.ndarray, num_speakers: int | None) -> list[tuple[float, float, str]]:
        self.diarize_calls.append(num_speakers)
        return self.turns


@pytest.fixture(scope="module")
def whisper():
    from shardsmith.speech.select import get_transcriber

    return get_transcriber("faster-whisper")


@pytest.fixture(scope="module")
def demo_refs(tmp_path_factory) -> dict:
    need_tool("espeak-ng", "the Debian package (scripts/bootstrap.sh installs it) makes the synthetic voices")
    from shardsmith.demo.werewolf_demo import write_werewolf_demo
    from shardsmith.sources.werewolf.werewolf_video import discover

    root = tmp_path_factory.mktemp("raw")
    write_werewolf_demo(root)
    refs = discover(root / "werewolf_video").games
    return {("turns" if r.native_id.endswith("turns") else "diarize"): r for r in refs}


@needs_espeak
@pytest.mark.parametrize("blocked", ["torch", "resemblyzer"])
def test_game_without_turns_needs_speakers_extra(
    blocked: str, demo_refs: dict, whisper, monkeypatch, caplog
) -> None:
    from shardsmith.sources.werewolf.werewolf_video import build_game

    monkeypatch.setitem(sys.modules, blocked, None)  # `import <blocked>` now raises ImportError
    tr = CountingTranscriber(whisper)
    with caplog.at_level(logging.WARNING):
        res = build_game(demo_refs["diarize"], tr)
    assert res.reconciles() and res.quarantined == 1 and not res.games and not res.utterances
    row = res.quarantine[0]
    assert row["reason"] == "needs_extra_speakers" and "pip install 'shardsmith[speakers]'" in row["detail"]
    assert tr.calls == 0  # set aside before transcription
    assert any("pip install 'shardsmith[speakers]'" in r.getMessage() for r in caplog.records)

    with_turns = build_game(demo_refs["turns"], tr)  # sidecar turns: no speaker encoder needed
    assert with_turns.published == 1 and with_turns.utterances, with_turns.quarantine


@needs_espeak
def test_external_diarizer_turns_are_mapped_to_seats(demo_refs: dict, whisper) -> None:
    from shardsmith.demo.werewolf_demo import demo_turns
    from shardsmith.sources.werewolf.werewolf_video import build_game

    truth = demo_turns()
    anonymous = {s: f"SPEAKER_{i:02d}" for i, s in enumerate(["3", "host", "1", "4", "2"])}
    tr = GivenTurnsDiarizer(whisper, [(t.start, t.end, anonymous[t.speaker]) for t in truth])
    res = build_game(demo_refs["diarize"], tr)
    assert res.published == 1, res.quarantine
    assert tr.diarize_calls == [5]  # four seats and the host
    right = total = 0.0
    for u in res.utterances:
        assert u["speaker_source"] == "diarization" and u["verified"] is False
        overlap = [max(0.0, min(u["end_s"], t.end) - max(u["start_s"], t.start)) for t in truth]
        expected = truth[int(np.argmax(overlap))].speaker
        got = "host" if u["is_host"] else str(u["speaker_seat"])
        total += u["end_s"] - u["start_s"]
        right += (u["end_s"] - u["start_s"]) * (got == expected)
    assert right / total >= 0.9, f"{right / total:.1%} of speech time on the right speaker"
    settings = json.loads(res.games[0]["transcription"]["settings"])
    assert settings["speakers"]["method"] == "pyannote:pyannote-local"
    assert settings["speakers"]["clusters"] == 5


def test_progress_reports_audio_seconds_and_real_time_factor(real_samples: Path, whisper, caplog) -> None:
    from shardsmith.media.audio import decode_audio

    samples = decode_audio(real_samples / "speech" / "jfk.flac")
    seen: list[tuple[float, float, float]] = []
    log_progress = transcription_progress("jfk", every_s=0.0)

    def both(done: float, total: float, wall: float) -> None:
        seen.append((done, total, wall))
        log_progress(done, total, wall)

    with caplog.at_level(logging.INFO, logger="shardsmith.progress"):
        whisper.transcribe(samples, progress=both)
    total_s = len(samples) / 16_000
    assert len(seen) >= 2 and seen[-1][:2] == (total_s, total_s)
    assert all(a[0] <= b[0] and a[2] <= b[2] for a, b in zip(seen, seen[1:], strict=False))
    lines = [r.getMessage() for r in caplog.records if r.name == "shardsmith.progress"]
    assert lines[-1].startswith("jfk: 11.0/11.0 s of audio transcribed (100 %), real-time factor ")
    assert len([m for m in lines if "(100 %)" in m]) == 1  # the end is reported once


def test_progress_lines_are_throttled_and_say_the_speed() -> None:
    assert format_progress("g", 30.0, 120.0, 3.0) == (
        "g: 30.0/120.0 s of audio transcribed (25 %), real-time factor 0.10 (10.0x real time)"
    )
    got: list[str] = []
    report = transcription_progress("g", sink=got.append, every_s=3600.0)
    for done in (10.0, 20.0, 30.0, 40.0):
        report(done, 40.0, done / 10)
    assert got == [format_progress("g", 10.0, 40.0, 1.0), format_progress("g", 40.0, 40.0, 4.0)]


@needs_espeak
@pytest.mark.parametrize("blocked", ["faster_whisper", "av"])
def test_video_game_without_speech_extra_is_quarantined(blocked: str, demo_refs: dict, monkeypatch) -> None:
    """A medical-only install has no `speech` extra: a video game is set aside with the install hint."""
    from shardsmith.staging.games import build_game

    monkeypatch.setitem(sys.modules, blocked, None)
    res = build_game("werewolf_video", demo_refs["turns"])
    assert res.reconciles() and res.quarantined == 1 and not res.games
    row = res.quarantine[0]
    assert row["reason"] == "needs_extra_speech" and "pip install 'shardsmith[speech]'" in row["detail"]
    assert f"{blocked!r} module" in row["detail"]  # names what is missing
