"""No patient identifier from a DICOM header reaches any byte of a release."""

import os
import shutil
from pathlib import Path

import pytest

from shardsmith.config import Settings
from shardsmith.demo.dicom_fixtures import make_cxr_dicom
from shardsmith.pipeline.releases import build_release
from shardsmith.sources.medical.vindr_cxr import VinDrCxr
from shardsmith.staging.runner import run_source

IDENTIFIERS = {
    "patient_id": "PID-778899-SECRET",
    "patient_name": "SMITH^JOHN^QUINCY",
}
EXTRA = {
    "InstitutionName": "St Elsewhere General Hospital",
    "AccessionNumber": "ACC20240517X",
    "StudyDate": "20240517",
    "PatientBirthDate": "19610203",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "OtherPatientIDs": "MRN-55501234",
}
SIIM_PATIENT_UUID = None


def _all_release_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_identifiers_never_reach_the_release(tmp_path):
    raw = tmp_path / "raw" / "vindr_cxr"
    (raw / "train").mkdir(parents=True)
    image_id = "ab" * 16
    make_cxr_dicom(raw / "train" / f"{image_id}.dicom", rows=200, columns=160, bits_stored=12,
                   extra_identifiers=EXTRA, study_uid="1.2.826.0.1.3680043.99.1", **IDENTIFIERS)
    (raw / "train.csv").write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
        + "".join(f"{image_id},No finding,14,R{i},,,,\n" for i in (1, 2, 3))
    )
    settings = Settings(home=tmp_path)
    counts = run_source(settings, VinDrCxr())
    assert counts.records == 1
    result = build_release(settings, "medical", ["vindr_cxr"])
    blob = _all_release_bytes(result.path)
    needles = list(IDENTIFIERS.values()) + list(EXTRA.values()) + ["1.2.826.0.1.3680043.99.1", "SMITH",
                                                                   os.environ["SHARDSMITH_PSEUDONYM_KEY"]]
    for needle in needles:
        assert needle.encode() not in blob, f"{needle!r} leaked into the release"
    rec = result.path / "data" / "records" / "train"
    import pyarrow.parquet as pq

    row = pq.read_table(next(rec.glob("*.parquet"))).to_pylist()[0]
    assert row["patient_id"] and len(row["patient_id"]) == 20  # pseudonym present
    assert row["age_band"] == "40-49" and row["sex"] == "M"


def test_real_siim_dicom_patient_uuid_does_not_leak(tmp_path, real_samples):
    from shardsmith.media.dicom import read_dicom_header

    src = real_samples / "cxr-images" / "siim" / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
    header = read_dicom_header(src)
    patient = header["identifiers"]["PatientID"]
    assert patient
    raw = tmp_path / "raw" / "vindr_cxr"
    (raw / "train").mkdir(parents=True)
    shutil.copy(src, raw / "train" / "siimreal01.dicom")
    (raw / "train.csv").write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
        "siimreal01,Pneumothorax,12,R1,100.0,100.0,300.0,400.0\n"
    )
    settings = Settings(home=tmp_path)
    assert run_source(settings, VinDrCxr()).records == 1
    result = build_release(settings, "medical", ["vindr_cxr"])
    assert patient.encode() not in _all_release_bytes(result.path)


def test_pseudonyms_need_a_key_outside_demo_mode(monkeypatch):
    from shardsmith.pseudonym import MissingKeyError, pseudonymise

    monkeypatch.delenv("SHARDSMITH_PSEUDONYM_KEY")
    monkeypatch.delenv("SHARDSMITH_DEMO", raising=False)
    with pytest.raises(MissingKeyError):
        pseudonymise("x", "vindr_cxr")
    monkeypatch.setenv("SHARDSMITH_DEMO", "1")
    assert pseudonymise("x", "vindr_cxr") != pseudonymise("x", "nih_cxr14")
