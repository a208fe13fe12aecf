"""De-identification across a whole demo release, including every DICOM-reading source.

DICOMs full of identifiers (names, ids, dates, institution, accession) are planted in RSNA (whose
``patientId`` is both the file name and the DICOM PatientID), SIIM (nested Study/Series/SOP folders
named by UIDs) and LIDC (a CT series); none of those strings may appear in any byte of the release,
Parquet decompressed included, and the pseudonym key may appear in no file under SHARDSMITH_HOME.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest

from shardsmith.config import Settings
from shardsmith.demo import cxr_core, cxr_more, mimic_demo, volumes_demo
from shardsmith.demo.dicom_fixtures import make_cxr_dicom
from shardsmith.pipeline.releases import build_release
from shardsmith.schemas.records import RECORDS_SCHEMA
from shardsmith.sources.registry import get_source, medical_source_names
from shardsmith.staging.runner import run_source

KEY = "trust-key-Zq8vN3pLx0"
EXTRA = {
    "InstitutionName": "Mercy Westbrook Infirmary",
    "InstitutionAddress": "12 Harbour Lane Springfield",
    "AccessionNumber": "ACC77231905Q",
    "StudyDate": "20190311",
    "PatientBirthDate": "19580704",
    "ReferringPhysicianName": "KILDARE^JAMES",
    "OtherPatientIDs": "MRN-90817263",
    "StudyID": "STUDY-55120",
}
RSNA_PID = "7d2f0b5e-3c9a-4e61-8f27-d1a05c6b9e44"
SIIM_PATIENT = "c0ffee00-1234-4abc-9def-00000000beef"
SIIM_STUDY = "1.2.276.0.7230010.3.1.2.8323329.777.1517875777.1"
SIIM_SOP = "1.2.276.0.7230010.3.1.4.8323329.777.1517875777.9"
NAMES = ["WHITAKER^ROSALIND", "OKONKWO^CHIDI", "LINDQVIST^MAJA"]


def _plant(raw: Path) -> None:
    rsna = raw / "rsna_pneumonia"
    make_cxr_dicom(rsna / "stage_2_train_images" / f"{RSNA_PID}.dcm", rows=64, columns=64, bits_stored=8,
                   modality="CR", patient_id=RSNA_PID, patient_name=NAMES[0], extra_identifiers=EXTRA)
    with (rsna / "stage_2_train_labels.csv").open("a", newline="") as fh:
        csv.writer(fh).writerow([RSNA_PID, "", "", "", "", 0])
    with (rsna / "stage_2_detailed_class_info.csv").open("a", newline="") as fh:
        csv.writer(fh).writerow([RSNA_PID, "Normal"])
    siim = raw / "siim_acr"
    series = SIIM_STUDY + ".2"
    make_cxr_dicom(siim / "dicom-images-train" / SIIM_STUDY / series / f"{SIIM_SOP}.dcm", rows=64, columns=64,
                   bits_stored=8, modality="CR", patient_id=SIIM_PATIENT, patient_name=NAMES[1],
                   study_uid=SIIM_STUDY, series_uid=series, sop_uid=SIIM_SOP, extra_identifiers=EXTRA)
    with (siim / "train-rle.csv").open("a", newline="") as fh:
        csv.writer(fh).writerow([SIIM_SOP, "-1"])
    for path in sorted((raw / "lidc_idri").rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PatientName = NAMES[2]
        for k, v in EXTRA.items():
            setattr(ds, k, v)
        ds.save_as(path, enforce_file_format=True)


def _parquet_text(path: Path) -> str:
    table = pq.read_table(path)
    cols = [c for c in table.column_names if c not in ("image", "image_npy", "label_npy", "audio")]
    return json.dumps(table.select(cols).to_pylist(), default=str, ensure_ascii=False)


@pytest.fixture(scope="module")
def demo_release(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SHARDSMITH_PSEUDONYM_KEY", KEY)
    mp.setenv("SHARDSMITH_WORKERS", "1")
    mp.delenv("SHARDSMITH_DEMO", raising=False)
    home = tmp_path_factory.mktemp("deid-home")
    for module in (cxr_core, cxr_more, mimic_demo, volumes_demo):
        module.write_demo(home / "raw")
    _plant(home / "raw")
    settings = Settings(home=home)
    sources = [n for n in medical_source_names() if settings.raw_dir(n).is_dir()]
    for name in sources:
        assert run_source(settings, get_source(name)).reconciles
    result = build_release(settings, "medical", sources)
    yield home, result, sources
    mp.undo()


def test_every_dicom_source_is_in_the_release(demo_release):
    home, result, sources = demo_release
    assert {"rsna_pneumonia", "siim_acr", "lidc_idri", "vindr_cxr"} <= set(sources)
    import pyarrow.dataset as pads

    rows = pads.dataset(result.path / "data" / "records", format="parquet").to_table(
        columns=["source", "patient_id", "study_id", "raw_path"]).to_pylist()
    by_source = {r["source"] for r in rows}
    assert {"rsna_pneumonia", "siim_acr", "lidc_idri"} <= by_source
    for r in rows:
        if r["patient_id"] is not None:
            assert re.fullmatch(r"[0-9a-f]{20}", r["patient_id"]), r  # keyed pseudonym: 20 hex digits


def test_no_identifier_in_any_byte_of_the_release(demo_release):
    home, result, _ = demo_release
    needles = [*EXTRA.values(), *NAMES, RSNA_PID, SIIM_PATIENT, "KILDARE", "WHITAKER", "Westbrook", KEY]
    for p in sorted(result.path.rglob("*")):
        if not p.is_file():
            continue
        texts = [p.read_bytes()]
        if p.suffix == ".parquet":
            texts.append(_parquet_text(p).encode())
        for needle in needles:
            assert not any(needle.encode() in t for t in texts), f"{needle!r} leaked into {p}"


def test_records_carry_only_the_schema_whitelist(demo_release):
    """No DICOM header is copied: Parquet columns and WebDataset JSON keys are exactly the contract."""
    import tarfile

    _, result, _ = demo_release
    allowed = set(RECORDS_SCHEMA.names)
    for p in (result.path / "data" / "records").rglob("*.parquet"):
        assert set(pq.read_schema(p).names) == allowed
    for p in (result.path / "wds" / "records").rglob("*.tar"):
        with tarfile.open(p) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".json"):
                    assert set(json.loads(tf.extractfile(m).read())) <= allowed - {"image"}


def test_key_is_written_nowhere_under_home(demo_release):
    home, _, _ = demo_release
    for p in sorted(home.rglob("*")):
        if not p.is_file() or p.is_symlink():
            continue
        data = p.read_bytes()
        assert KEY.encode() not in data, f"the pseudonym key was written to {p}"
        if p.suffix == ".parquet":
            assert KEY not in _parquet_text(p), f"the pseudonym key is inside {p}"


def _raw_ids(settings: Settings, source: str) -> set[str]:
    """The raw patient and study ids the source's label files name (from its staged catalog)."""
    from shardsmith.sources.medical.items import LabelledItem
    from shardsmith.staging.catalog_io import iter_catalog

    ids = set()
    for row in iter_catalog(settings, source):
        item = LabelledItem.from_json(row.item_json)
        ids |= {str(v) for v in (item.patient_raw, item.study_raw) if v}
    return ids


def test_no_raw_patient_or_study_id_where_a_path_or_id_names_it(demo_release):
    """Where a source's image id or path names the raw patient or study (RSNA's patientId;
    MIMIC-CXR-JPG's ``files/p10/p10000032/s5.../``, under MIMIC-CXR and MS-CXR, the key into the
    credentialed MIMIC-IV records), none of those raw ids reaches any byte of the release. Other
    sources publish their dataset's own case and image ids as provenance (``native_id``)."""
    from shardsmith.sources.registry import source_class

    home, result, sources = demo_release
    settings = Settings(home=home)
    named = [s for s in sources if source_class(s).path_names_patient or source_class(s).native_id_identifies_patient]
    assert {"mimic_cxr", "ms_cxr", "rsna_pneumonia"} <= set(named)
    needles = {(s, i) for s in named for i in _raw_ids(settings, s) if len(i) >= 6}
    assert {s for s, _ in needles} >= {"mimic_cxr", "ms_cxr"}
    texts = {p: _parquet_text(p) for p in sorted((result.path / "data").rglob("*.parquet"))}
    texts.update({p: p.read_text(errors="ignore") for p in result.path.rglob("*") if p.suffix in (".md", ".json")})
    leaks = sorted({f"{s}:{i}:{p.relative_to(result.path).as_posix()}" for s, i in needles
                    for p, text in texts.items() if i in text})
    assert leaks == []
