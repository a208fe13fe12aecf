"""One small medical release (two CXR sources + MSD volumes, built through staging, validation and
publishing like any release) read every way a user would: Hugging Face ``datasets``, the
map-style PyTorch Dataset with its collate, WebDataset streaming with shuffle and node splitting,
the TorchXRayVision-style view, MONAI's LoadImaged on the NIfTI export, and fsspec memory://."""

from __future__ import annotations

import io
import itertools
import json
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest

from shardsmith.config import ImageOptions, Settings
from shardsmith.loaders import collate, open_release
from shardsmith.media.raster import decode_png
from shardsmith.publish import release as release_mod

SOURCES = ("vindr_cxr", "nih_cxr14", "msd")


@pytest.fixture(scope="module")
def rel(tmp_path_factory):
    from shardsmith.demo import cxr_core, volumes_demo
    from shardsmith.pipeline.releases import build_release
    from shardsmith.sources.medical.msd import Msd
    from shardsmith.sources.medical.volumetric import VolumeOptions
    from shardsmith.sources.registry import get_source
    from shardsmith.staging.runner import run_source

    settings = Settings(home=tmp_path_factory.mktemp("home"), image=ImageOptions(max_side=64))
    cxr_core.write_demo(settings.raw)
    volumes_demo.write_msd(settings.raw_dir("msd"))
    with pytest.MonkeyPatch.context() as mp:
        settings = settings.with_overrides(workers=1)  # a dozen small items: a pool costs more than it saves
        run_source(settings, get_source("vindr_cxr"))
        run_source(settings, get_source("nih_cxr14"))
        run_source(settings, Msd(options=VolumeOptions(volume_spacing_mm=3.0)))
        mp.setattr(release_mod, "WDS_SHARD_COUNT", 8)  # several shards per split, to split across nodes
        build_release(settings, "medical", list(SOURCES))
    return open_release(settings.releases, "medical")


def test_load_dataset_decodes_images_to_pil(rel) -> None:
    import datasets
    from PIL import Image

    files = rel.parquet_files("records", "train")
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert ds.features["image"] == datasets.Image()
    assert ds.features["findings"] == datasets.List({"label": datasets.Value("string"),
                                                     "source_label": datasets.Value("string"),
                                                     "status": datasets.Value("string"),
                                                     "readers": datasets.List(datasets.Value("string"))})
    row = ds[0]
    assert isinstance(row["image"], Image.Image)
    assert row["image"].size == (row["width"], row["height"])
    stored = pq.read_table(files[0], columns=["image"]).column("image")[0].as_py()["bytes"]
    assert np.array_equal(np.asarray(row["image"]), decode_png(stored))
    # the card's front matter names a config per table: load_dataset on the release folder itself
    by_card = datasets.load_dataset(str(rel.path), "records", split="test")
    assert len(by_card) == rel.manifest["row_counts"]["records"]["test"]
    assert isinstance(by_card[0]["image"], Image.Image)


def test_every_parquet_part_carries_features(rel) -> None:
    parts = [e["path"] for e in rel.manifest["files"] if e["path"].endswith(".parquet")]
    assert {p.split("/")[1] for p in parts} >= {"records", "volumes", "grounding", "consensus", "dialogues"}
    for p in parts:
        meta = json.loads(pq.read_schema(rel.path / p).metadata[b"huggingface"])
        feats = meta["info"]["features"]
        if p.startswith("data/records/"):
            assert feats["image"] == {"_type": "Image"}
        elif p.startswith("data/volumes/"):
            assert feats["image_npy"] == {"_type": "Value", "dtype": "binary"}
            assert feats["affine_lps"] == {"_type": "List", "feature": {"_type": "Value", "dtype": "float64"}}


def test_card_front_matter_through_dataset_card_data(rel) -> None:
    from huggingface_hub import DatasetCard

    from shardsmith.publish.card import card_data, render_card

    card = DatasetCard.load(rel.path / "README.md")
    assert card.data.pretty_name == f"shardsmith medical {rel.version}"
    assert card.data.license == "other" and "object-detection" in card.data.task_categories
    assert {c["config_name"] for c in card.data.configs} >= {"records", "volumes", "grounding", "dialogues"}
    # by default the sources' own declared facts decide the gating: VinDr-CXR's terms forbid re-hosting
    assert "vindr_cxr" in card.data.to_dict()["extra_gated_prompt"]
    assert "nih_cxr14" not in card.data.to_dict()["extra_gated_prompt"]
    licences = {
        "vindr_cxr": {"licence": "PhysioNet Credentialed Health Data License 1.5.0", "gated": True,
                      "homepage": "https://physionet.org/content/vindr-cxr/", "citation": "Nguyen et al. 2022"},
        "nih_cxr14": {"licence": "cc0-1.0", "gated": False},
        "msd": {"licence": "cc-by-sa-4.0", "gated": False},
    }
    gated = card_data(rel.manifest, licences).to_dict()
    assert gated["license"] == ["cc-by-sa-4.0", "cc0-1.0", "other"]
    assert "vindr_cxr" in gated["extra_gated_prompt"] and "physionet.org" in gated["extra_gated_prompt"]
    assert "nih_cxr14" not in gated["extra_gated_prompt"]
    assert gated["extra_gated_fields"]["I have access to vindr_cxr and accept its terms"] == "checkbox"
    text = render_card(rel.manifest, {}, licences)
    assert "| vindr_cxr | PhysioNet Credentialed Health Data License 1.5.0 |" in text
    assert "- **vindr_cxr**: Nguyen et al. 2022 <https://physionet.org/content/vindr-cxr/>" in text
    assert DatasetCard(text).data.extra_gated_prompt == gated["extra_gated_prompt"]


def test_torch_dataset_matches_webdataset_and_collates_ragged_targets(rel) -> None:
    import torch

    ds = rel.torch("records", "train")
    assert len(ds) == rel.manifest["row_counts"]["records"]["train"]
    streamed = {s["key"]: s for s in rel.webdataset("records", "train")}
    assert len(streamed) == len(ds)
    for i in range(len(ds)):
        item = ds[i]
        s = streamed[item["key"]]
        assert np.array_equal(item["image"], s["image"]) and item["meta"] == s["meta"]
        np.testing.assert_array_equal(item["boxes"], s["boxes"])
    with_masks = [i for i in range(len(ds)) if any(m is not None for m in ds[i]["masks"])]
    with_boxes = [i for i in range(len(ds)) if ds[i]["meta"]["source"] != "msd" and len(ds[i]["boxes"])]
    assert with_masks and with_boxes
    picked = [with_masks[0], with_boxes[0], next(i for i in range(len(ds)) if not len(ds[i]["boxes"]))]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, picked), batch_size=3,
                                         collate_fn=collate, num_workers=1)
    batch = next(iter(loader))
    items = [ds[i] for i in picked]
    assert [b.shape[0] for b in batch["boxes"]] == [len(it["boxes"]) for it in items]
    m = batch["masks"][0]
    assert m.dtype == torch.bool and m.shape[1:] == items[0]["image"].shape[:2]
    assert m.shape[0] == len(items[0]["masks"]) and bool(batch["has_mask"][0].all())
    assert np.array_equal(m[0].numpy(), items[0]["masks"][0])
    assert batch["masks"][2].shape[0] == 0 and batch["labels"][1] == items[1]["labels"]


def test_webdataset_shuffle_and_node_splitting(rel) -> None:
    shards = rel.shard_urls("records", "train")
    assert len(shards) >= 4
    ordered = [s["__key__"] for s in rel.webdataset("records", "train", decode=False)]
    shuffled = [s["__key__"] for s in rel.webdataset("records", "train", decode=False, shuffle=16, seed=3)]
    assert sorted(shuffled) == sorted(ordered) and shuffled != ordered
    again = [s["__key__"] for s in rel.webdataset("records", "train", decode=False, shuffle=16, seed=3)]
    assert again == shuffled

    def rank(r: int, world: int = 2):
        return lambda src: itertools.islice(src, r, None, world)

    parts = [[s["__key__"] for s in rel.webdataset("records", "train", decode=False, nodesplitter=rank(r))]
             for r in range(2)]
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(ordered)


def test_xrv_view(rel) -> None:
    view = rel.xrv()
    assert len(view) == 9  # the radiographs; MSD slices are MR
    assert view.pathologies == sorted(view.pathologies) and "cardiomegaly" in view.pathologies
    by_id = {view.csv[i]["record_id"]: i for i in range(len(view))}
    df = rel.pandas("records", columns=["record_id", "native_id", "source", "image"])
    native = dict(zip(df.native_id, df.record_id, strict=True))
    item = view[by_id[native["00000001_000.png"]]]  # NIH: cardiomegaly present, the rest absent
    lab = dict(zip(view.pathologies, item["lab"], strict=True))
    assert lab["cardiomegaly"] == 1.0 and lab["pleural_effusion"] == 0.0
    assert np.isnan(lab["aortic_enlargement"])  # NIH never reads it: unknown, not absent
    assert np.isnan(lab["nodule_or_mass"])  # NIH reads nodule and mass, not their parent
    nodule = view[by_id[native["00000004_000.png"]]]
    assert dict(zip(view.pathologies, nodule["lab"], strict=True))["nodule_or_mass"] == 1.0  # rolled up
    vindr = view[by_id[native["0a1b2c3d4e5f60718293a4b5c6d7e8f9"]]]
    assert dict(zip(view.pathologies, vindr["lab"], strict=True))["aortic_enlargement"] == 1.0
    png = decode_png(df.set_index("record_id").loc[item["record_id"], "image"]["bytes"])
    img = item["img"]
    assert img.dtype == np.float32 and img.shape == (1, *png.shape)
    top = float(np.iinfo(png.dtype).max)
    np.testing.assert_allclose(img[0], (png / top * 2 - 1) * 1024, rtol=1e-6, atol=1e-3)
    assert img.min() >= -1024 and img.max() <= 1024


def test_monai_datalist_loads_with_the_affine(rel, tmp_path: Path) -> None:
    import SimpleITK as sitk
    from monai.data import load_decathlon_datalist
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from shardsmith.loaders.nifti import ras_affine_xyz
    from shardsmith.media.volume import affine_zyx

    path = rel.monai_datalist(tmp_path / "nifti")
    training = load_decathlon_datalist(str(path), data_list_key="training")
    assert len(training) == rel.manifest["row_counts"]["volumes"]["train"]
    rows = {r["record_id"]: r for r in rel.arrow("volumes").to_pylist()}
    load = Compose([LoadImaged(keys=["image", "label"], image_only=True),
                    EnsureChannelFirstd(keys=["image", "label"])])
    for entry in training:
        row = rows[entry["record_id"]]
        image = np.load(io.BytesIO(row["image_npy"]))  # [C, Z, Y, X]
        label = np.load(io.BytesIO(row["label_npy"]))  # [Z, Y, X]
        out = load(entry)
        assert tuple(out["image"].shape) == (image.shape[0], *image.shape[:0:-1])  # C, X, Y, Z
        np.testing.assert_array_equal(out["image"].numpy(), image.transpose(0, 3, 2, 1))
        np.testing.assert_array_equal(out["label"].numpy()[0], label.transpose(2, 1, 0))
        np.testing.assert_allclose(out["image"].affine.numpy(), ras_affine_xyz(row["affine_lps"]), atol=1e-5)
        # independently: ITK reads the label NIfTI back to the stored array and LPS affine
        itk = sitk.ReadImage(entry["label"])
        np.testing.assert_array_equal(sitk.GetArrayFromImage(itk), label)
        np.testing.assert_allclose(affine_zyx(itk), np.reshape(row["affine_lps"], (4, 4)), atol=1e-4)


def test_open_release_over_fsspec_urls(rel) -> None:
    from shardsmith.publish.object_store import push

    url = f"memory://shardsmith-{uuid.uuid4().hex}/releases"
    push(rel.path.parents[1], url)
    remote = open_release(url, "medical")
    assert remote.version == rel.version and remote.verify().ok
    assert remote.arrow("records").equals(rel.arrow("records"))
    keys = sorted(s["key"] for s in remote.webdataset("records", "test"))
    assert keys == sorted(s["key"] for s in rel.iter_samples("records", "test"))
    assert sorted(s["key"] for s in remote.iter_samples("records", "test")) == keys
    assert np.array_equal(remote.torch("records", "test")[0]["image"], rel.torch("records", "test")[0]["image"])
    fs, root = fsspec.core.url_to_fs(url)
    shard = next(p for p in fs.find(root) if p.endswith(".tar"))
    fs.pipe_file(shard, fs.cat_file(shard)[:-512])
    fs.pipe_file(f"{root}/medical/{rel.version}/data/records/train/part-99999.parquet", b"stray")
    problems = open_release(url, "medical").verify(raise_on_error=False).problems
    assert problems == [f"checksum mismatch: {shard.split(rel.version + '/', 1)[1]}",
                        "unlisted file: data/records/train/part-99999.parquet"]
    as_file = open_release(f"file://{rel.path.parents[1]}", "medical")
    assert as_file.verify().ok and len(as_file.torch("volumes")) == 3
