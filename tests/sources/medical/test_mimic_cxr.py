"""MIMIC-CXR-JPG adapter on a sample written in PhysioNet's layout (gzip CSVs with the real headers,
a reports zip), with the dataset's traps: a study without a label row, -1 labels, a lateral-only
study, a report without FINDINGS, a study without a report, an image missing from ``files/``."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shardsmith.config import Settings
from shardsmith.demo.mimic_demo import IMAGES, write_mimic
from shardsmith.sources.medical.mimic_cxr import MimicCxr
from shardsmith.sources.medical.mimic_reports import parse_sections
from shardsmith.staging.runner import run_source

PA, LATERAL, FOLLOW_UP, MS_TEST, LATERAL_ONLY, MISSING = (row[0] for row in IMAGES)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARDSMITH_PSEUDONYM_KEY", "test-key-mimic")


def test_study_labels_reach_every_image_of_the_study_with_their_labeller(tmp_path: Path) -> None:
    write_mimic(tmp_path)
    result = MimicCxr().read_labels(tmp_path)
    items = {i.native_id: i for i in result.items}
    assert set(items) == {PA, LATERAL, FOLLOW_UP, MS_TEST, LATERAL_ONLY, MISSING} and result.rows_read == 6
    pa_, lat = items[PA], items[LATERAL]
    assert [(f.label, f.status, f.readers) for f in pa_.findings] == [
        ("atelectasis", "absent", ["negbio"]),  # NegBio fills what the CheXpert labeller left blank
        ("cardiomegaly", "present", ["chexpert", "negbio"]),
        ("edema", "uncertain", ["chexpert", "negbio"]),  # -1 stays uncertain
        ("pleural_effusion", "present", ["chexpert", "negbio"]),
        ("pneumothorax", "absent", ["chexpert", "negbio"]),
    ]
    assert lat.findings == pa_.findings and (pa_.view, lat.view) == ("PA", "LAT")
    # the labellers disagree (CheXpert -1, NegBio 1): the CheXpert file's status, named as its alone
    effusion = next(f for f in items[FOLLOW_UP].findings if f.label == "pleural_effusion")
    assert (effusion.status, effusion.readers) == ("uncertain", ["chexpert"])
    only_lateral = items[LATERAL_ONLY]  # a study with images but no label row in either file
    assert (only_lateral.findings, only_lateral.abnormal, only_lateral.complete) == ([], None, False)
    assert only_lateral.view == "LAT" and only_lateral.split == "val"  # "validate" is val
    assert (items[MISSING].abnormal, items[MISSING].complete) == (False, True)  # No Finding = 1


def test_reports_split_into_sections_and_link_to_the_study(tmp_path: Path) -> None:
    write_mimic(tmp_path)
    items = {i.native_id: i for i in MimicCxr().read_labels(tmp_path).items}
    sections = {s["name"]: s["text"] for s in items[PA].report_sections}
    assert sections["FINDINGS"].startswith("The heart is enlarged.")
    assert sections["IMPRESSION"] == "Cardiomegaly with small left pleural effusion."
    assert items[LATERAL].text == items[PA].text and items[PA].text.startswith("FINAL REPORT")
    no_findings = [s["name"] for s in items[MS_TEST].report_sections]
    assert "FINDINGS" not in no_findings and "IMPRESSION" in no_findings
    assert (items[LATERAL_ONLY].text, items[LATERAL_ONLY].report_sections) == (None, None)  # no report: no text


def test_the_unzipped_reports_are_read_like_the_zip(tmp_path: Path) -> None:
    write_mimic(tmp_path)
    zipped = {i.native_id: i.report_sections for i in MimicCxr().read_labels(tmp_path).items}
    import zipfile

    with zipfile.ZipFile(tmp_path / "mimic-cxr-reports.zip") as zf:
        zf.extractall(tmp_path)
    (tmp_path / "mimic-cxr-reports.zip").unlink()
    assert {i.native_id: i.report_sections for i in MimicCxr().read_labels(tmp_path).items} == zipped


def test_parse_sections_keeps_every_section_verbatim() -> None:
    text = "FINAL REPORT\n INDICATION: cough\n\n FINDINGS:\n\n Line one.\n Line two.\n NOTIFICATION:  called\n"
    assert parse_sections(text) == [
        {"name": "PREAMBLE", "text": "FINAL REPORT"}, {"name": "INDICATION", "text": "cough"},
        {"name": "FINDINGS", "text": "Line one.\n Line two."}, {"name": "NOTIFICATION", "text": "called"}]


def test_dates_become_day_offsets_and_study_order_per_patient(tmp_path: Path) -> None:
    write_mimic(tmp_path)
    items = {i.native_id: i for i in MimicCxr().read_labels(tmp_path).items}
    assert [(items[k].study_day, items[k].study_order) for k in (PA, LATERAL, FOLLOW_UP)] == [(0, 1), (0, 1), (30, 2)]
    assert (items[MISSING].study_day, items[MISSING].study_order) == (59, 2)
    for item in items.values():
        assert "2180" not in item.to_json() and "2152" not in item.to_json()  # no shifted date survives


def test_labels_stream_and_a_bad_label_value_quarantines_its_study(tmp_path: Path) -> None:
    write_mimic(tmp_path)
    path = tmp_path / "mimic-cxr-2.0.0-chexpert.csv.gz"
    text = gzip.decompress(path.read_bytes()).decode().replace("50414267,,1.0", "50414267,,yes")
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    result = MimicCxr().iter_labels(tmp_path)
    assert not isinstance(result.items, list)  # a one-shot iterator: the catalog spills as it reads
    kept = {i.native_id for i in result.items}
    assert kept == {FOLLOW_UP, MS_TEST, LATERAL_ONLY, MISSING}
    assert Counter((q["native_id"], q["reason"]) for q in result.quarantine) == Counter(
        {(PA, "bad_value"): 1, (LATERAL, "bad_value"): 1})


def test_records_carry_report_and_history_and_counts_reconcile(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    write_mimic(settings.raw_dir("mimic_cxr"))
    counts = run_source(settings, MimicCxr())
    assert (counts.records, counts.quarantined) == (5, 1), counts.reasons  # 6 inputs = 5 + 1
    assert counts.reasons == {"image_missing": 1}
    table = pq.read_table(settings.staging_dir("mimic_cxr") / "records.parquet")
    recs = {r["native_id"]: r for r in table.to_pylist()}
    assert [s["name"] for s in recs[PA]["report_sections"]][-2:] == ["FINDINGS", "IMPRESSION"]
    assert (recs[FOLLOW_UP]["study_day"], recs[FOLLOW_UP]["study_order"]) == (30, 2)
    assert recs[PA]["study_id"] == recs[LATERAL]["study_id"] != recs[FOLLOW_UP]["study_id"]
    assert recs[PA]["patient_id"] not in ("p10000032", "10000032")
    assert recs[PA]["split"] == "train" and recs[PA]["split_source"] == "official"
    for column in table.column_names:  # neither a raw patient id nor a shifted date is published
        if column != "image":
            dumped = str(table.column(column).to_pylist())
            assert "10000032" not in dumped and "50414267" not in dumped, column
            assert "21800506" not in dumped
