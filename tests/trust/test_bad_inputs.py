"""A corpus of bad inputs, each planted beside good ones in a source's native layout.

Every case must end in a quarantine row with its specific reason (or, for a whole label file that is
unusable, a LabelFileError naming file and line); the run finishes, counts reconcile, and every good
item is still there. The last test plants the whole corpus at once and publishes a release.
"""

from __future__ import annotations

import csv
import json
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo.dicom_fixtures import chest_phantom, make_cxr_dicom, write_png
from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.registry import get_source
from shardsmith.staging.runner import run_source

SIZE = 64
VINDR_HEADER = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
VINDR_GOOD = {"good0000normal": None, "good0001cardio": [8.0, 10.0, 40.0, 50.0]}
NIH_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
NIH_GOOD = {"00000001_000.png": "Cardiomegaly", "00000002_000.png": "No Finding"}
SIIM_GOOD = {"1.2.276.0.7230010.3.1.4.1.1.1": "-1"}


@pytest.fixture(autouse=True)
def _serial(monkeypatch):
    """Tiny inputs: decode in this process (no worker pool start-up per case)."""
    monkeypatch.setenv("SHARDSMITH_WORKERS", "1")
    monkeypatch.delenv("SHARDSMITH_ALLOW_BURNED_IN", raising=False)


# ------------------------------------------------------------------------------- good layouts
def _dicom(path: Path, **kw) -> Path:
    return make_cxr_dicom(path, rows=SIZE, columns=SIZE, bits_stored=8, patient_id=f"P-{path.stem}",
                          **kw)


def _vindr_rows(root: Path, rows: list[list[str]]) -> None:
    path = root / "train.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(VINDR_HEADER)
        w.writerows(rows)


def vindr_good(root: Path) -> list[str]:
    for image_id, box in VINDR_GOOD.items():
        _dicom(root / "train" / f"{image_id}.dicom")
        if box is None:
            _vindr_rows(root, [[image_id, "No finding", "14", f"R{i}", "", "", "", ""] for i in (1, 2, 3)])
        else:
            _vindr_rows(root, [[image_id, "Cardiomegaly", "3", "R1", *map(str, box)]])
    return list(VINDR_GOOD)


def _nih_rows(root: Path, rows: list[list[str]]) -> None:
    path = root / "Data_Entry_2017_v2020.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        if new:
            fh.write(NIH_HEADER + "\r\n")
        csv.writer(fh).writerows(rows)


def _nih_entry(image: str, labels: str, patient: str) -> list[str]:
    return [image, labels, "0", patient, "50", "M", "PA", "1024", "1024", "0.14", "0.14"]


def _nih_boxes(root: Path, rows: list[list[str]]) -> None:
    path = root / "BBox_List_2017.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        if new:
            fh.write("Image Index,Finding Label,Bbox [x,y,w,h],,,\r\n")
        csv.writer(fh).writerows(rows)


def _nih_png(root: Path, name: str) -> Path:
    return write_png(root / "images_001" / "images" / name, chest_phantom(SIZE, SIZE, 8).astype(np.uint8))


def nih_good(root: Path) -> list[str]:
    for i, (image, labels) in enumerate(NIH_GOOD.items()):
        _nih_png(root, image)
        _nih_rows(root, [_nih_entry(image, labels, str(i + 1))])
    _nih_boxes(root, [["00000001_000.png", "Cardiomegaly", "300", "400", "200", "150"]])
    return list(NIH_GOOD)


def _siim_dicom(root: Path, uid: str, **kw) -> Path:
    study, series = f"{uid}.9.1", f"{uid}.9.2"  # nested Study/Series/SOP dirs named by UIDs
    return _dicom(root / "dicom-images-train" / study / series / f"{uid}.dcm", sop_uid=uid, study_uid=study,
                  series_uid=series, modality="CR")


def _siim_rows(root: Path, rows: list[list[str]]) -> None:
    path = root / "train-rle.csv"
    new = not path.exists()
    with path.open("a", newline="") as fh:
        if new:
            fh.write("ImageId, EncodedPixels\n")
        csv.writer(fh).writerows(rows)


def siim_good(root: Path) -> list[str]:
    for uid, rle in SIIM_GOOD.items():
        _siim_dicom(root, uid)
        _siim_rows(root, [[uid, rle]])
    return list(SIIM_GOOD)


def chestx_good(root: Path) -> list[str]:
    items = [{"file_name": "36200.png", "syms": [], "boxes": [], "polygons": []}]
    root.mkdir(parents=True, exist_ok=True)
    (root / "ChestX_Det_train.json").write_text(json.dumps(items))
    with zipfile.ZipFile(root / "train_data.zip", "w") as zf:
        zf.writestr("train_data/36200.png", _png_bytes())
    return ["36200.png"]


def _png_bytes() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", chest_phantom(SIZE, SIZE, 8).astype(np.uint8))
    assert ok
    return buf.tobytes()


def msd_good(root: Path) -> list[str]:
    from shardsmith.demo.volumes_demo import write_msd

    write_msd(root)
    return ["Task01_BrainTumour/BRATS_001"]


GOOD: dict[str, Callable[[Path], list[str]]] = {
    "vindr_cxr": vindr_good, "nih_cxr14": nih_good, "siim_acr": siim_good, "chestx_det": chestx_good,
    "msd": msd_good,
}


# ------------------------------------------------------------------------------- bad inputs
def _vindr_image(root: Path, uid: str, data: bytes | None = None, **kw) -> Path:
    path = root / "train" / f"{uid}.dicom"
    if data is None:
        _dicom(path, **kw)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    _vindr_rows(root, [[uid, "No finding", "14", f"R{i}", "", "", "", ""] for i in (1, 2, 3)])
    return path


def truncated_dicom(root: Path, uid: str) -> None:
    path = _vindr_image(root, uid)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def empty_dicom(root: Path, uid: str) -> None:
    _vindr_image(root, uid, data=b"")


def png_named_dicom(root: Path, uid: str) -> None:
    _vindr_image(root, uid, data=_png_bytes())


def dicom_without_pixels(root: Path, uid: str) -> None:
    _vindr_image(root, uid, omit_pixel_data=True)


def dicom_unsupported_syntax(root: Path, uid: str) -> None:
    import pydicom
    from pydicom.encaps import encapsulate

    path = _vindr_image(root, uid)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video: no pixel plugin decodes it
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)


def dicom_burned_in(root: Path, uid: str) -> None:
    _vindr_image(root, uid, burned_in=True)


def garbage_dicom(root: Path, uid: str) -> None:
    _vindr_image(root, uid, data=b"\x00" * 128 + b"DICM" + bytes(range(7, 71)))  # preamble, then junk


def vindr_unknown_label(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Dragon scales", "99", "R1", "1", "1", "5", "5"]])


def vindr_box_outside(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "10", "10", str(SIZE * 3), "40"]])


def vindr_box_degenerate(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "40", "10", "20", "40"]])


def vindr_box_not_numeric(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")
    _vindr_rows(root, [[uid, "Cardiomegaly", "3", "R1", "ten", "10", "20", "40"]])


def vindr_label_without_image(root: Path, uid: str) -> None:
    _vindr_rows(root, [[uid, "No finding", "14", "R1", "", "", "", ""]])


def vindr_image_without_label(root: Path, uid: str) -> None:
    _dicom(root / "train" / f"{uid}.dicom")


def vindr_symlink_loop(root: Path, uid: str) -> None:
    train = root / "train"
    train.mkdir(parents=True, exist_ok=True)
    (train / f"{uid}.dicom").symlink_to(f"{uid}.dicom")  # a link to itself: ELOOP on open
    (train / "loop").symlink_to(".", target_is_directory=True)  # a directory loop: must not hang a scan
    (root / "loop").symlink_to("..", target_is_directory=True)
    _vindr_rows(root, [[uid, "No finding", "14", f"R{i}", "", "", "", ""] for i in (1, 2, 3)])


def nih_corrupt_png(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    data = bytearray(_png_bytes())
    rng = np.random.default_rng(7)
    data[40:-20] = rng.integers(0, 256, len(data) - 60, dtype=np.uint8).tobytes()  # keep signature and IEND
    path = root / "images_001" / "images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    _nih_rows(root, [_nih_entry(name, "No Finding", "77")])


def nih_truncated_png(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    path = _nih_png(root, name)
    path.write_bytes(path.read_bytes()[:-30])
    _nih_rows(root, [_nih_entry(name, "No Finding", "78")])


def nih_unknown_label(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "Dragon Pox", "79")])


def nih_contradictory(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "No Finding|Mass", "80")])


def nih_box_outside(root: Path, uid: str) -> None:
    name = f"{uid}.png"
    _nih_png(root, name)
    _nih_rows(root, [_nih_entry(name, "Mass", "81")])
    _nih_boxes(root, [[name, "Mass", "900", "900", "400", "300"]])  # 1024-px space: ends at 1300


def nih_box_without_entry(root: Path, uid: str) -> None:
    _nih_boxes(root, [[f"{uid}.png", "Mass", "10", "10", "40", "30"]])


def nih_missing_column(root: Path, uid: str) -> None:
    (root / "Data_Entry_2017_v2020.csv").write_text("Image Index,Patient ID\r\nx.png,1\r\n")


def siim_rle_past_image(root: Path, uid: str) -> None:
    _siim_dicom(root, uid)
    _siim_rows(root, [[uid, f" {SIZE * SIZE - 10} 50"]])  # the run ends 40 px past the last pixel


def siim_rle_malformed(root: Path, uid: str) -> None:
    _siim_dicom(root, uid)
    _siim_rows(root, [[uid, " 10 20 30"]])


def siim_truncated(root: Path, uid: str) -> None:
    path = _siim_dicom(root, uid)
    path.write_bytes(path.read_bytes()[:300])
    _siim_rows(root, [[uid, "-1"]])


def chestx_zip_slip(root: Path, uid: str) -> None:
    with zipfile.ZipFile(root / "train_data.zip", "a") as zf:
        zf.writestr(f"train_data/../../{uid}.png", _png_bytes())


def chestx_corrupt_json(root: Path, uid: str) -> None:
    (root / "ChestX_Det_test.json").write_text('[{"file_name": "1.png", "syms": []},\n {"file_name": ')


def chestx_box_outside(root: Path, uid: str) -> None:
    items = json.loads((root / "ChestX_Det_train.json").read_text())
    items.append({"file_name": f"{uid}.png", "syms": ["Nodule"], "boxes": [[900, 900, 1500, 1400]],
                  "polygons": [[[900, 900], [1500, 900], [1500, 1400]]]})
    (root / "ChestX_Det_train.json").write_text(json.dumps(items))
    with zipfile.ZipFile(root / "train_data.zip", "a") as zf:
        zf.writestr(f"train_data/{uid}.png", _png_bytes())


def _msd_lung(root: Path, image: np.ndarray | None = None, label: np.ndarray | None = None) -> None:
    import nibabel as nib

    from shardsmith.demo.volumes_demo import DEFAULT_AFFINE

    task = root / "Task06_Lung"
    if image is not None:
        nib.save(nib.Nifti1Image(image, DEFAULT_AFFINE), str(task / "imagesTr" / "lung_001.nii.gz"))
    if label is not None:
        nib.save(nib.Nifti1Image(label, DEFAULT_AFFINE), str(task / "labelsTr" / "lung_001.nii.gz"))


def msd_nan(root: Path, uid: str) -> None:
    import nibabel as nib

    img = np.asarray(nib.load(str(root / "Task06_Lung" / "imagesTr" / "lung_001.nii.gz")).dataobj).astype(np.float32)
    img[3, 4, 5] = np.nan
    img[1, 1, 1] = np.inf
    _msd_lung(root, image=img)


def msd_label_shape(root: Path, uid: str) -> None:
    _msd_lung(root, label=np.zeros((16, 32, 12), dtype=np.uint8))


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    plant: Callable[[Path, str], None]
    reason: str | None  # expected quarantine reason; None: the whole label file is refused
    error: str | None = None  # for reason None: text the LabelFileError must contain
    native: bool = True  # the quarantine row names the planted id


CASES = [
    Case("truncated_dicom", "vindr_cxr", truncated_dicom, "truncated"),
    Case("empty_dicom", "vindr_cxr", empty_dicom, "empty_file"),
    Case("png_named_dicom", "vindr_cxr", png_named_dicom, "not_dicom"),
    Case("garbage_after_dicm_preamble", "vindr_cxr", garbage_dicom, "truncated"),
    Case("dicom_without_pixel_data", "vindr_cxr", dicom_without_pixels, "no_pixel_data"),
    Case("dicom_unsupported_transfer_syntax", "vindr_cxr", dicom_unsupported_syntax, "unsupported_transfer_syntax"),
    Case("dicom_burned_in_annotation", "vindr_cxr", dicom_burned_in, "burned_in_annotation"),
    Case("vindr_unknown_label", "vindr_cxr", vindr_unknown_label, "unknown_label"),
    Case("vindr_box_outside_image", "vindr_cxr", vindr_box_outside, "box_outside_image"),
    Case("vindr_box_degenerate", "vindr_cxr", vindr_box_degenerate, "box_degenerate"),
    Case("vindr_box_not_numeric", "vindr_cxr", vindr_box_not_numeric, "box_not_numeric"),
    Case("vindr_label_without_image", "vindr_cxr", vindr_label_without_image, "image_missing"),
    Case("vindr_image_without_label", "vindr_cxr", vindr_image_without_label, "unlabelled_image"),
    Case("vindr_symlink_loop", "vindr_cxr", vindr_symlink_loop, "symlink_loop"),
    Case("nih_corrupt_png", "nih_cxr14", nih_corrupt_png, "decode_failed"),
    Case("nih_truncated_png", "nih_cxr14", nih_truncated_png, "truncated"),
    Case("nih_unknown_label", "nih_cxr14", nih_unknown_label, "unknown_label"),
    Case("nih_contradictory_labels", "nih_cxr14", nih_contradictory, "contradictory_labels"),
    Case("nih_box_outside_image", "nih_cxr14", nih_box_outside, "box_outside_image"),
    Case("nih_box_without_entry", "nih_cxr14", nih_box_without_entry, "box_without_entry"),
    Case("nih_csv_missing_columns", "nih_cxr14", nih_missing_column, None, "missing required column"),
    Case("siim_rle_past_image", "siim_acr", siim_rle_past_image, "rle_out_of_bounds"),
    Case("siim_rle_malformed", "siim_acr", siim_rle_malformed, "rle_malformed"),
    Case("siim_truncated_dicom", "siim_acr", siim_truncated, "truncated"),
    Case("chestx_det_zip_slip", "chestx_det", chestx_zip_slip, "unsafe_archive_member", native=False),
    Case("chestx_det_polygon_outside_image", "chestx_det", chestx_box_outside, "polygon_outside_image"),
    Case("chestx_det_malformed_json", "chestx_det", chestx_corrupt_json, None, "line 2"),
    Case("msd_nifti_nan_inf", "msd", msd_nan, "non_finite_voxels", native=False),
    Case("msd_label_shape_mismatch", "msd", msd_label_shape, "label_shape_mismatch", native=False),
]


def _uid(case: Case) -> str:
    """A native id per case in the source's own id format (deterministic across runs)."""
    n = zlib.crc32(case.id.encode())
    if case.source == "siim_acr":
        return f"1.2.276.0.7230010.3.1.4.{n % 10**6}.{len(case.id)}"
    if case.source == "nih_cxr14":
        return f"{n % 10**8:08d}_000"
    return f"bad{case.id.replace('_', '')}"


def _run(settings: Settings, source: str):
    return run_source(settings, get_source(source))


def _quarantine(settings: Settings, source: str) -> list[dict]:
    return pq.read_table(settings.quarantine_dir(source) / "quarantine.parquet").to_pylist()


def _staged_ids(settings: Settings, source: str) -> set[str]:
    files = sorted(settings.staging_dir(source).glob("records*.parquet"))
    return {r for f in files for r in pq.read_table(f, columns=["native_id"])["native_id"].to_pylist()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_quarantined_and_good_rows_survive(case: Case, tmp_path: Path):
    settings = Settings(home=tmp_path)
    root = settings.raw_dir(case.source)
    good = GOOD[case.source](root)
    uid = _uid(case)
    case.plant(root, uid)
    if case.reason is None:
        with pytest.raises(LabelFileError) as err:
            _run(settings, case.source)
        msg = str(err.value)
        assert case.error in msg and "line" in msg and str(root) in msg, msg
        return
    counts = _run(settings, case.source)
    assert counts.reconciles, counts
    rows = _quarantine(settings, case.source)
    hits = [r for r in rows if r["reason"] == case.reason]
    assert hits, f"expected a {case.reason!r} quarantine row, got {[(r['reason'], r['detail']) for r in rows]}"
    for r in hits:
        assert r["stage"] in {"catalog", "labels", "decode", "harmonise"} and r["detail"]
        assert r["raw_path"] or r["native_id"]
    if case.native:
        assert any(uid in (r["native_id"] or "") + (r["raw_path"] or "") + r["detail"] for r in hits), hits
    staged = _staged_ids(settings, case.source)
    assert all(any(g in s for s in staged) for g in good), (good, staged)


def test_burned_in_allowed_when_configured(tmp_path: Path, monkeypatch):
    settings = Settings(home=tmp_path, allow_burned_in=True)
    root = settings.raw_dir("vindr_cxr")
    vindr_good(root)
    dicom_burned_in(root, "burnedin0001")
    counts = _run(settings, "vindr_cxr")
    assert counts.quarantined == 0 and "burnedin0001" in _staged_ids(settings, "vindr_cxr")


def test_whole_corpus_still_publishes_the_good_rows(tmp_path: Path):
    """All per-item cases at once, then a release: it validates and carries exactly the good items."""
    from shardsmith.loaders import open_release
    from shardsmith.publish.build import build_release

    settings = Settings(home=tmp_path)
    sources = ["vindr_cxr", "nih_cxr14", "siim_acr"]
    good = {s: GOOD[s](settings.raw_dir(s)) for s in sources}
    planted = [c for c in CASES if c.source in sources and c.reason is not None]
    for case in planted:
        case.plant(settings.raw_dir(case.source), _uid(case))
    for s in sources:
        counts = _run(settings, s)
        assert counts.reconciles
        reasons = {r["reason"] for r in _quarantine(settings, s)}
        assert {c.reason for c in planted if c.source == s} <= reasons
    result = build_release(settings, "medical", sources)
    rel = open_release(settings.releases, "medical")
    assert rel.verify().ok and rel.version == result.version
    published = set(rel.pandas("records", columns=["native_id"])["native_id"])
    expected = {g for s in sources for g in good[s]}
    assert expected <= published, "a good item was lost"
    assert not published - expected, f"a bad item was published: {published - expected}"


# ------------------------------------------------------------------------------- werewolf
def _season(raw: Path) -> Path:
    return raw / "werebench" / "Season_9"


def werebench_reversed_timestamp(raw: Path) -> None:
    d = _season(raw)
    (d / "02-GAME_CONFIG.py").write_text((d / "01-GAME_CONFIG.py").read_text())
    (d / "02.srt").write_text("1\n00:00:20,000 --> 00:00:19,000\n说话人 1: 时间倒着走\n\n"
                              "2\n00:00:21,000 --> 00:00:22,000\n说话人 2: 正常的一条\n")


def werebench_config_with_code(raw: Path) -> None:
    d = _season(raw)
    cfg = (d / "01-GAME_CONFIG.py").read_text()
    marker = raw / "PWNED"
    evil = f'__import__("pathlib").Path({str(marker)!r}).write_text("x")'
    (d / "03-GAME_CONFIG.py").write_text(cfg.replace("{", "{'pwn': " + evil + ", ", 1))
    (d / "03.srt").write_text((d / "01.srt").read_text(encoding="utf-8-sig"), encoding="utf-8")


def _video_game(raw: Path, name: str, samples: np.ndarray | None, empty: bool = False) -> None:
    from shardsmith.demo.werewolf_demo import DemoTurn, demo_sidecar, write_video

    d = raw / "werewolf_video"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.mp4"
    if empty:
        path.write_bytes(b"")
    else:
        write_video(path, samples)
    turns = [DemoTurn(0.2, 0.8, "host", "Night falls.", "night_1"), DemoTurn(1.0, 1.6, "1", "I am the seer.", "day_1")]
    (d / f"{name}.json").write_text(json.dumps(demo_sidecar(name, turns, True)))


def video_without_audio(raw: Path) -> None:
    _video_game(raw, "silent-game", None)


def zero_length_video(raw: Path) -> None:
    _video_game(raw, "empty-game", None, empty=True)


WW_CASES = [
    ("werebench_reversed_srt_timestamp", "werebench", werebench_reversed_timestamp, "broken_timestamp"),
    ("werebench_config_contains_code", "werebench", werebench_config_with_code, "config_contains_code"),
    ("video_without_audio", "werewolf_video", video_without_audio, "no_audio_stream"),
    ("zero_length_video", "werewolf_video", zero_length_video, "empty_media"),
]


@pytest.mark.parametrize("case", WW_CASES, ids=[c[0] for c in WW_CASES])
def test_bad_werewolf_input_is_quarantined(case, tmp_path: Path):
    from shardsmith.demo.werewolf_demo import write_werewolf_demo
    from shardsmith.staging.games import build_game, discover_games

    _, source, plant, reason = case
    raw = tmp_path / "raw"
    write_werewolf_demo(raw, video=False)
    plant(raw)
    quarantine, published = [], []
    for ref in discover_games(source, raw / source):
        result = build_game(source, ref)  # no transcriber: bad media must fail before transcription
        quarantine += result.quarantine
        published += [u["utterance_id"] for u in result.utterances]
    assert any(q["reason"] == reason and q["detail"] for q in quarantine), [(q["reason"], q["detail"]) for q in quarantine]
    assert not (raw / "PWNED").exists(), "a game config was executed"
    if source == "werebench":
        assert published, "the good demo game lost its utterances"
