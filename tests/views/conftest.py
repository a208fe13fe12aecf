"""Records for the view tests: built by the real adapters from the demo generators, and by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from shardsmith.config import Settings
from shardsmith.media import masks as M

DEMO_SOURCES = ("vindr_cxr", "chestx_det", "ms_cxr", "siim_acr", "chexpert", "rsna_pneumonia", "lidc_idri")


@pytest.fixture(scope="session")
def demo_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Records of the demo sources, built the way staging builds them (catalog + build_records)."""
    from shardsmith.demo import cxr_core, cxr_more, volumes_demo
    from shardsmith.sources.registry import get_source

    home = tmp_path_factory.mktemp("views-demo")
    raw = home / "raw"
    cxr_core.write_vindr(raw / "vindr_cxr")
    for name, writer in cxr_more.WRITERS.items():
        writer(raw / name)
    volumes_demo.write_lidc(raw / "lidc_idri")
    settings = Settings(home=home)
    records: list[dict[str, Any]] = []
    for name in DEMO_SOURCES:
        src = get_source(name)
        for entry in src.catalog(raw / name).entries:
            records.extend(src.build_records(entry, raw / name, settings))
    assert {r["source"] for r in records} == set(DEMO_SOURCES)
    return records


def png(h: int, w: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".png", rng.integers(0, 255, (h, w), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def box_target(tid: str, label: str, box: list[float], reader: str | None = None,
               text: str | None = None) -> dict[str, Any]:
    x0, y0, x1, y1 = box
    return {"target_id": tid, "label": label, "kind": "abnormality", "box_xyxy": box, "mask_rle": None,
            "area_px": (x1 - x0) * (y1 - y0), "reader": reader, "source_geometry": "xyxy@native", "text": text}


def mask_target(tid: str, label: str, mask: np.ndarray, reader: str | None = None) -> dict[str, Any]:
    return {"target_id": tid, "label": label, "kind": "abnormality", "box_xyxy": M.mask_bbox_xyxy(mask),
            "mask_rle": M.coco_rle_encode(mask), "area_px": float(mask.sum()), "reader": reader,
            "source_geometry": "polygon", "text": None}


def finding(label: str, status: str, readers: list[str] | None = None) -> dict[str, Any]:
    return {"label": label, "source_label": label, "status": status, "readers": readers or []}


def record(rid: str, source: str, *, h: int = 100, w: int = 100, abnormal: bool | None = True,
           complete: bool = False, findings: list | None = None, targets: list | None = None,
           sex: str | None = None, age_band: str | None = None, split: str = "train",
           image: bool = False) -> dict[str, Any]:
    return {"record_id": rid, "source": source, "native_id": rid, "split": split, "sex": sex,
            "age_band": age_band, "height": h, "width": w, "abnormal": abnormal, "complete": complete,
            "findings": findings or [], "targets": targets or [],
            "image": {"bytes": png(h, w, seed=len(rid)), "path": f"{rid}.png"} if image else None}


@pytest.fixture
def hand_records() -> list[dict[str, Any]]:
    """Edge cases the demo data does not all have, each named by its record id."""
    blob = np.zeros((100, 100), dtype=bool)
    blob[40:45, 40:45] = True  # 25 px: 0.25% -> small
    r1, r2, r3 = np.zeros((3, 50, 50), dtype=bool)
    r1[0:10, 0:10] = True
    r2[5:15, 0:10] = True
    r3[8:18, 0:10] = True
    return [
        record("two-readers", "vindr_cxr", sex="F", age_band="40-49",
               findings=[finding("nodule_or_mass", "present", ["R1", "R2"]),
                         finding("pleural_effusion", "present", ["R3"]), finding("cardiomegaly", "absent")],
               targets=[box_target("t0", "nodule_or_mass", [10, 10, 20, 20], "R1"),
                        box_target("t1", "nodule_or_mass", [11, 11, 21, 21], "R2"),
                        box_target("t2", "pleural_effusion", [0, 50, 60, 100], "R3")]),
        record("child-and-parent", "chestx_det", sex="M", age_band="60-69",
               findings=[finding("nodule", "present"), finding("mass", "present")],
               targets=[mask_target("n0", "nodule", blob), box_target("m0", "mass", [60, 60, 70, 80])]),
        record("parent-absent", "chestx_det", sex="M",
               findings=[finding("consolidation", "present"), finding("lung_opacity", "absent")],
               targets=[box_target("c0", "consolidation", [0, 0, 10, 10])]),
        record("phrase", "ms_cxr", sex="F",
               findings=[finding("consolidation", "present")],
               targets=[box_target("p0", "consolidation", [0, 0, 50, 40], text="left lower lobe consolidation")]),
        record("parent-and-child-phrases", "ms_cxr",
               findings=[finding("lung_opacity", "present"), finding("edema", "present")],
               targets=[box_target("o0", "lung_opacity", [0, 0, 20, 20], text="right basal opacity"),
                        box_target("e0", "edema", [50, 50, 90, 90], text="mild pulmonary edema")]),
        record("normal", "vindr_cxr", abnormal=False, complete=True, sex="F", age_band="40-49",
               findings=[finding("cardiomegaly", "absent")]),
        record("uncertain", "chexpert", abnormal=None,
               findings=[finding("edema", "uncertain"), finding("cardiomegaly", "present")]),
        record("unstated-region", "siim_acr",
               findings=[finding("pneumothorax", "absent")],
               targets=[box_target("u0", "pneumothorax", [0, 0, 30, 30])]),
        record("three-readers", "lidc_idri", h=50, w=50,
               findings=[finding("lung_nodule", "present", ["reader1", "reader2", "reader3"])],
               targets=[mask_target("a", "lung_nodule", r1, "reader1"), mask_target("b", "lung_nodule", r2, "reader2"),
                        mask_target("c", "lung_nodule", r3, "reader3"),
                        mask_target("k", "lung_nodule", r1, "consensus")]),
    ]


@pytest.fixture(scope="session")
def real_vindr_root(real_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source root holding the real Kaggle ``train.csv`` (as .gz) where the VinDr adapter looks."""
    root = tmp_path_factory.mktemp("vindr-real")
    (root / "train.csv.gz").symlink_to(real_samples / "cxr-labels" / "vinbigdata-train.csv.gz")
    return root
