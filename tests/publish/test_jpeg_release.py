"""A JPEG source end to end (issue 24 target 5): the published bytes are the raw file's, WebDataset
names the member ``.jpg``, and the loaders, Hugging Face Features and card pictures decode it."""

from __future__ import annotations

import json
import tarfile

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from shardsmith.defs.run import run_build
from shardsmith.demo.cxr_more import write_chexpert
from shardsmith.loaders import open_release


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    home = tmp_path_factory.mktemp("jpeg-home")
    raw = home / "raw" / "chexpert"
    write_chexpert(raw)
    summary = run_build(home, echo=False)
    assert summary["success"], summary
    return raw / "CheXpert-v1.0-small", open_release(home / "releases", "medical")


def test_wds_members_are_the_raw_jpegs_byte_for_byte(release):
    raw, rel = release
    members: dict[str, bytes] = {}
    for url in rel.shard_urls("records"):
        with tarfile.open(url) as tar:
            members.update({m.name: tar.extractfile(m).read() for m in tar.getmembers()})
    jpgs = {name: data for name, data in members.items() if name.endswith(".jpg")}
    assert jpgs and not any(name.endswith(".png") for name in members)
    for name, data in jpgs.items():
        meta = json.loads(members[name.removesuffix(".jpg") + ".json"])
        assert meta["media_type"] == "image/jpeg"
        assert data == (raw / f"{meta['native_id']}.jpg").read_bytes()
    assert len(jpgs) == len(list(raw.rglob("*.jpg")))


def test_loaders_and_hf_features_decode_the_jpegs(release):
    raw, rel = release
    for sample in rel.webdataset("records"):
        expected = cv2.imdecode(np.fromfile(raw / f"{sample['meta']['native_id']}.jpg", np.uint8),
                                cv2.IMREAD_UNCHANGED)
        assert np.array_equal(sample["image"], expected)
    table = rel.arrow("records")
    assert set(table["media_type"].to_pylist()) == {"image/jpeg"}
    import datasets

    schema = pq.read_schema(rel.parquet_files("records")[0])
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"]["_type"] == "Image"
    row = table.slice(0, 1).to_pylist()[0]
    pil = datasets.Image().decode_example(row["image"])
    assert pil.format == "JPEG" and pil.size == (row["width"], row["height"])


def test_card_pictures_are_drawn_from_the_jpegs(release):
    _, rel = release
    sheets = [f["path"] for f in rel.manifest["files"] if f["path"].startswith("pictures/contact-")]
    assert sheets
    for path in sheets:
        img = cv2.imdecode(np.fromfile(rel.path / path, np.uint8), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.std() > 0
