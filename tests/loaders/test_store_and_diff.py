"""Small releases published straight from rows (no sources, no validation): object-store push/pull
through memory://, a tampered pull, the release diff, and Audio() features on utterances."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardsmith.media.audio import encode_flac
from shardsmith.publish import object_store
from shardsmith.publish.diff import diff_releases
from shardsmith.publish.object_store import PullVerificationError, pull, push
from shardsmith.publish.release import TableInput, publish
from shardsmith.schemas.tables import TABLES

SPEC = TABLES["utterances"]


def _tone(freq: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(1600, dtype=np.float32) / 16_000)).astype(np.float32)


def _utterance(i: int, text: str, freq: float) -> dict:
    return {"utterance_id": f"u{i}", "game_id": "g1", "source": "werewolf_video", "order": i, "start_s": float(i),
            "end_s": i + 0.1, "is_host": False, "speaker_source": "turns", "verified": True, "text": text,
            "audio": {"bytes": encode_flac(_tone(freq)), "path": None}}


def _release(home: Path, rows: list[dict]) -> Path:
    staging = home / f"staging-{uuid.uuid4().hex}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SPEC.schema), staging)
    res = publish(home / "releases", "werewolf", [TableInput(SPEC, [staging])],
                  input_fingerprints={"werewolf_video": uuid.uuid4().hex}, card=lambda m: "# card\n")
    return res.path


@pytest.fixture
def two_versions(tmp_path: Path) -> tuple[Path, Path]:
    v1 = _release(tmp_path, [_utterance(0, "hello", 440), _utterance(1, "vote two", 330),
                             _utterance(2, "i am the seer", 550)])
    v2 = _release(tmp_path, [_utterance(0, "hello", 440), _utterance(1, "vote three", 330),
                             _utterance(3, "night falls", 660)])
    return v1, v2


def test_diff_names_added_removed_changed_rows(two_versions) -> None:
    v1, v2 = two_versions
    assert (v1.name, v2.name) == ("v1", "v2")
    assert diff_releases(v1, v2) == {"utterances": {"added": ["u3"], "removed": ["u2"], "changed": ["u1"]}}
    assert diff_releases(v2, v2) == {"utterances": {"added": [], "removed": [], "changed": []}}


def test_diff_sees_a_media_only_change(tmp_path: Path) -> None:
    v1 = _release(tmp_path, [_utterance(0, "hello", 440)])
    v2 = _release(tmp_path, [_utterance(0, "hello", 441)])  # same text, other audio bytes
    assert diff_releases(v1, v2)["utterances"]["changed"] == ["u0"]


def test_utterance_parquet_declares_audio_for_datasets(two_versions) -> None:
    import datasets

    files = sorted(str(p) for p in (two_versions[0] / "data" / "utterances").rglob("*.parquet"))
    meta = json.loads(pq.read_schema(files[0]).metadata[b"huggingface"])
    assert meta["info"]["features"]["audio"] == {"_type": "Audio"}
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert ds.features["audio"] == datasets.Audio()
    assert ds.features["order"] == datasets.Value("int32")
    # Audio decoding itself runs through torchcodec (and system FFmpeg); the stored clip is FLAC.
    raw = ds.cast_column("audio", datasets.Audio(decode=False))[0]["audio"]
    assert raw["bytes"][:4] == b"fLaC"


def test_loaders_decode_audio_to_arrays(two_versions) -> None:
    from shardsmith.loaders import open_release

    rel = open_release(two_versions[1].parents[1], "werewolf", "v1")
    by_id = {item["meta"]["utterance_id"]: item for item in rel.torch("utterances")}
    streamed = {s["meta"]["utterance_id"]: s for s in rel.webdataset("utterances")}
    for uid, freq in (("u0", 440), ("u1", 330), ("u2", 550)):
        audio = by_id[uid]["audio"]
        assert audio["sampling_rate"] == 16_000 and audio["array"].dtype == np.float32
        np.testing.assert_allclose(audio["array"], _tone(freq), atol=1e-4)  # 16-bit FLAC, lossless
        np.testing.assert_array_equal(streamed[uid]["audio"]["array"], audio["array"])


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_push_uploads_latest_after_every_manifest_and_pull_round_trips(two_versions, monkeypatch) -> None:
    releases = two_versions[0].parents[1]
    url = f"memory://shardsmith-{uuid.uuid4().hex}/releases"
    fs, _ = object_store.fsspec.core.url_to_fs(url)
    order: list[str] = []
    real_put = type(fs).put_file

    def recording_put(self, lpath, rpath, *a, **kw):
        order.append(rpath.rsplit("/releases/", 1)[1])
        return real_put(self, lpath, rpath, *a, **kw)

    monkeypatch.setattr(type(fs), "put_file", recording_put)
    assert push(releases, url)["uploaded"] == len(_tree(releases))
    kinds = [2 if p.endswith("LATEST") else 1 if p.endswith("manifest.json") else 0 for p in order]
    assert kinds == sorted(kinds) and kinds[-1] == 2 and kinds.count(1) == 2  # v1, v2 manifests, then LATEST
    first = len(order)
    again = push(releases, url)
    assert again == {"skipped": first - 1, "uploaded": 0, "removed": 0}  # every sha256 already right
    back = two_versions[0].parents[2] / "pulled"
    assert pull(url, back)["downloaded"] == first - 1  # data and manifests; LATEST written, not counted
    assert _tree(back) == _tree(releases)


def test_pull_refuses_a_tampered_file_and_keeps_latest(two_versions) -> None:
    releases = two_versions[0].parents[1]
    url = f"memory://shardsmith-{uuid.uuid4().hex}/releases"
    push(releases, url)
    fs, root = object_store.fsspec.core.url_to_fs(url)
    shard = next(p for p in fs.find(root) if p.endswith(".tar") and "/v2/" in p)
    data = bytearray(fs.cat_file(shard))
    data[600] ^= 0xFF  # same size, other bytes
    fs.pipe_file(shard, bytes(data))
    back = two_versions[0].parents[2] / "pulled"
    with pytest.raises(PullVerificationError, match=r"checksum mismatch: werewolf/v2/wds/utterances/all/shard"):
        pull(url, back)
    assert not (back / "werewolf" / "LATEST").exists()


def test_lean_install_publishes_without_features(tmp_path: Path, monkeypatch, caplog) -> None:
    import sys

    from shardsmith.publish import hf_features

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the `hf` extra were not installed
    monkeypatch.setattr(hf_features, "_warned", False)
    path = _release(tmp_path, [_utterance(0, "hello", 440)])
    part = next((path / "data" / "utterances").rglob("*.parquet"))
    assert b"huggingface" not in (pq.read_schema(part).metadata or {})
    assert "pip install 'shardsmith[hf]'" in caplog.text
