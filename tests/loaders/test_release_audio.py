"""The demo Werewolf video game, built into a release like any game source (espeak-ng voices, the
faster-whisper transcript, the sidecar's turns, validation and publishing), read back with Hugging
Face ``datasets``: the ``utterances`` table's ``Audio()`` column decodes to an array and its sampling
rate, through torchcodec (the ``hf-audio`` extra) and the system FFmpeg libraries."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from skip_policy import requires_module, requires_tool

from shardsmith.config import Settings

pytestmark = [
    requires_tool("espeak-ng", "the Debian package makes the demo game's synthetic voices"),
    requires_module("torchcodec", "tools", "datasets decodes Audio() only through torchcodec (and FFmpeg): "
                                           "pip install 'shardsmith[hf-audio]' (scripts/bootstrap.sh does)"),
]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    from shardsmith.demo.werewolf_demo import write_werewolf_demo
    from shardsmith.pipeline.releases import build_release
    from shardsmith.staging.games import build_game, discover_games, write_game_staging

    settings = Settings(home=tmp_path_factory.mktemp("home"))
    raw = tmp_path_factory.mktemp("raw")
    write_werewolf_demo(raw)
    # the game with sidecar turns: its speakers need no encoder, so one transcription builds it
    src = settings.raw_dir("werewolf_video")
    src.mkdir(parents=True)
    for name in ("demo-village-turns.mp4", "demo-village-turns.json"):
        shutil.copy(raw / "werewolf_video" / name, src / name)
    for ref in discover_games("werewolf_video", src):
        result = build_game("werewolf_video", ref)
        assert result.published == 1 and result.utterances, result.quarantine
        write_game_staging(settings, "werewolf_video", result)
    return build_release(settings, "werewolf", ["werewolf_video"]).path


def test_load_dataset_decodes_audio_to_arrays(release: Path) -> None:
    import datasets
    import soundfile as sf

    files = sorted(str(p) for p in (release / "data" / "utterances").rglob("*.parquet"))
    assert files
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert ds.features["audio"] == datasets.Audio()
    stored = pq.read_table(files, columns=["utterance_id", "audio"]).to_pylist()
    assert len(ds) == len(stored) > 0
    by_id = {r["utterance_id"]: r["audio"]["bytes"] for r in stored}
    for row in ds.select(range(min(3, len(ds)))):
        audio = row["audio"]
        array, rate = audio["array"], audio["sampling_rate"]
        assert isinstance(array, np.ndarray) and array.ndim == 1 and array.size > 0
        flac = by_id[row["utterance_id"]]
        assert flac[:4] == b"fLaC"
        expected, expected_rate = sf.read(io.BytesIO(flac), dtype="float32")
        assert rate == expected_rate == 16_000
        np.testing.assert_array_equal(array, expected)  # FLAC is lossless: the same samples, bit for bit
