"""Pull is atomic and push is honest: tiny real releases (one votes table) mirrored through
memory:// and file:// remotes, with remote and local files tampered at the same size."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from shardsmith.cli import main
from shardsmith.loaders import open_release
from shardsmith.publish.object_store import (
    PullVerificationError,
    ReleaseConflictError,
    pull,
    push,
)
from shardsmith.publish.release import TableInput, list_versions, publish, read_latest
from shardsmith.schemas.tables import TABLES

SPEC = TABLES["votes"]


def _publish(releases: Path, game: str) -> Path:
    """One more version of ``werewolf``: a few votes of ``game`` (other content, other digest)."""
    rows = [{"game_id": game, "split": "train", "day": d, "voter_seat": s, "target_seat": (s + d) % 7 + 1,
             "source": "werewolf_video", "cut_off_utterance_id": None} for d in (1, 2) for s in range(1, 8)]
    releases.mkdir(parents=True, exist_ok=True)
    staging = releases.parent / f"staging-{uuid.uuid4().hex}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SPEC.schema), staging)
    res = publish(releases, "werewolf", [TableInput(SPEC, [staging])],
                  input_fingerprints={"werewolf_video": game}, card=lambda m: "# card\n")
    return res.path


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _memory_url() -> str:
    return f"memory://shardsmith-{uuid.uuid4().hex}/releases"


def _tamper(url: str, version: str) -> str:
    """Flip one byte of the version's first shard on the remote (same size, other sha256)."""
    fs, root = fsspec.core.url_to_fs(url)
    shard = next(p for p in sorted(fs.find(root)) if p.endswith(".tar") and f"/{version}/" in p)
    data = bytearray(fs.cat_file(shard))
    data[600] ^= 0xFF
    fs.pipe_file(shard, bytes(data))
    return shard


def _no_pull_leftovers(releases: Path) -> bool:
    return not list(releases.glob(".pull-*"))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A home's releases root holding werewolf v1 and v2 (LATEST v2)."""
    releases = tmp_path / "src" / "releases"
    _publish(releases, "g1")
    _publish(releases, "g2")
    return releases


def test_tampered_remote_leaves_a_home_holding_that_version_as_it_was(source: Path, tmp_path: Path) -> None:
    home = tmp_path / "home" / "releases"
    shutil.copytree(source, home)  # this home holds v1 and v2
    before = _tree(home)
    _publish(source, "g3")  # the remote also has v3, which this home lacks
    url = _memory_url()
    push(source, url)
    _tamper(url, "v2")
    _tamper(url, "v3")
    with pytest.raises(PullVerificationError, match=r"checksum mismatch: werewolf/v3/wds/votes/train/shard"):
        pull(url, home)
    assert _tree(home) == before  # the good local v2 was not replaced by the remote's tampered one
    assert read_latest(home / "werewolf") == "v2" and list_versions(home / "werewolf") == ["v1", "v2"]
    assert open_release(home, "werewolf").verify().ok
    assert _no_pull_leftovers(home)


def test_tampered_remote_into_a_fresh_folder_leaves_no_release(source: Path, tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'remote'}"
    push(source, url)
    _tamper(url, "v2")
    home = tmp_path / "fresh"
    out = CliRunner().invoke(main, ["pull", url, "--home", str(home)])
    assert out.exit_code == 1 and "Error: pull refused:" in out.output and "checksum mismatch" in out.output
    assert not list((home / "releases").glob("*/v*"))  # no version folder, not even the good v1
    assert not (home / "releases" / "werewolf" / "LATEST").exists()
    assert _no_pull_leftovers(home / "releases")
    listed = CliRunner().invoke(main, ["releases", "--home", str(home)])
    assert listed.exit_code == 0 and "werewolf/" not in listed.output


def test_pull_fetches_only_what_is_missing_and_moves_latest(source: Path, tmp_path: Path) -> None:
    url = _memory_url()
    push(source, url)
    home = tmp_path / "home" / "releases"
    first = pull(url, home)
    assert first["versions"] == ["werewolf/v1", "werewolf/v2"] and first["latest"] == {"werewolf": "v2"}
    assert _tree(home) == _tree(source) and _no_pull_leftovers(home)
    _publish(source, "g3")
    push(source, url)
    _tamper(url, "v1")  # a held, verified version is never downloaded again
    again = pull(url, home)
    assert again["versions"] == ["werewolf/v3"] and again["kept"] == ["werewolf/v1", "werewolf/v2"]
    assert again["downloaded"] == len(_tree(source / "werewolf" / "v3"))
    assert read_latest(home / "werewolf") == "v3" and open_release(home, "werewolf", "v1").verify().ok


def test_pull_replaces_a_damaged_local_copy_with_the_verified_remote_one(source: Path, tmp_path: Path) -> None:
    url = _memory_url()
    push(source, url)
    home = tmp_path / "home" / "releases"
    shutil.copytree(source, home)
    shard = next((home / "werewolf" / "v2" / "wds").rglob("*.tar"))
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert not open_release(home, "werewolf").verify(raise_on_error=False).ok
    result = pull(url, home)
    assert result["versions"] == ["werewolf/v2"] and result["kept"] == ["werewolf/v1"]
    assert open_release(home, "werewolf").verify().ok and _tree(home) == _tree(source)
    assert _no_pull_leftovers(home)


def test_pull_refuses_a_remote_version_that_differs_from_the_local_one(source: Path, tmp_path: Path) -> None:
    url = _memory_url()
    push(source, url)
    other = tmp_path / "other" / "releases"
    _publish(other, "elsewhere")  # another home's v1: other content under the same number
    before = _tree(other)
    with pytest.raises(ReleaseConflictError, match=r"werewolf/v1 differs from the local werewolf/v1"):
        pull(url, other)
    assert _tree(other) == before and _no_pull_leftovers(other)
    with pytest.raises(ReleaseConflictError, match=r"werewolf/v1 is another release"):
        push(other, url)
    assert open_release(url, "werewolf", "v1").verify().ok
    assert open_release(url, "werewolf", "v1").manifest == open_release(source, "werewolf", "v1").manifest


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_pull_from_a_url_without_releases_is_a_usage_error(tmp_path: Path, kind: str) -> None:
    url = f"memory://shardsmith-{uuid.uuid4().hex}/nothing-here"
    if kind == "empty":
        (tmp_path / "empty-remote").mkdir()
        url = f"file://{tmp_path / 'empty-remote'}"
    home = tmp_path / "home"
    out = CliRunner().invoke(main, ["pull", url, "--home", str(home)])
    assert out.exit_code == 2 and isinstance(out.exception, SystemExit)
    errors = [line for line in out.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and url in errors[0] and "Traceback" not in out.output
    assert not list((home / "releases").glob("*/v*"))


def test_push_repairs_a_tampered_remote_file_of_the_same_size(source: Path) -> None:
    url = _memory_url()
    first = push(source, url)
    files = sum(len(open_release(source, "werewolf", v).manifest["files"]) for v in ("v1", "v2"))
    assert first["uploaded"] == files + 3 and first["skipped"] == 0  # + two manifests and LATEST
    shard = _tamper(url, "v2")
    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/werewolf/v2/data/votes/train/part-99999.parquet", b"stray")
    assert not open_release(url, "werewolf").verify(raise_on_error=False).ok
    again = push(source, url)
    assert fs.cat_file(shard) == (source / shard.split("/releases/", 1)[1]).read_bytes()
    assert open_release(url, "werewolf").verify().ok
    assert again == {"uploaded": 1, "skipped": files - 1 + 2, "removed": 1}
    assert push(source, url) == {"uploaded": 0, "skipped": files + 2, "removed": 0}


def test_push_refuses_a_damaged_local_release_and_uploads_nothing(source: Path) -> None:
    shard = next((source / "werewolf" / "v1" / "wds").rglob("*.tar"))
    shard.write_bytes(b"\0" * shard.stat().st_size)
    url = _memory_url()
    out = CliRunner().invoke(main, ["push", url, "--home", str(source.parent)])
    assert out.exit_code == 1 and "Error: push refused: local werewolf/v1 fails verification" in out.output
    fs, root = fsspec.core.url_to_fs(url)
    assert not fs.exists(root)


def test_pull_renames_every_version_before_latest_moves(source: Path, tmp_path: Path, monkeypatch) -> None:
    from shardsmith.publish import object_store

    url = _memory_url()
    push(source, url)
    events: list[str] = []
    real_rename, real_write = object_store.os.rename, object_store.atomic_write_text
    monkeypatch.setattr(object_store.os, "rename", lambda a, b: (events.append(Path(b).name), real_rename(a, b)))
    monkeypatch.setattr(object_store, "atomic_write_text",
                        lambda p, t: (events.append(Path(p).name), real_write(p, t)))
    pull(url, tmp_path / "home")
    assert events == ["v1", "v2", "LATEST"]


def test_pull_never_moves_latest_backwards(source: Path, tmp_path: Path) -> None:
    url = _memory_url()
    push(source, url)
    home = tmp_path / "home" / "releases"
    shutil.copytree(source, home)
    _publish(home, "local-only")  # this home is ahead: v3, LATEST v3
    assert pull(url, home)["latest"] == {}
    assert read_latest(home / "werewolf") == "v3"


def test_a_manifest_path_outside_its_version_is_refused(source: Path, tmp_path: Path) -> None:
    remote = tmp_path / "r" / "releases"
    push(source, f"file://{remote}")
    manifest = remote / "werewolf" / "v2" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"path": "README.md"', b'"path": "../../../escape.md"'))
    (remote.parent / "escape.md").write_text("# card\n")  # what that path reaches on the remote
    home = tmp_path / "home"
    with pytest.raises(PullVerificationError, match=r"werewolf/v2/manifest.json has unusable file entries"):
        pull(f"file://{remote}", home)
    assert not (home / "escape.md").exists() and not list(home.glob("*/v*"))
