"""Native layout variants and broken label files, built by code."""

import csv

import pytest

from shardsmith.sources.labelfiles import LabelFileError
from shardsmith.sources.medical.nih_cxr14 import NihCxr14
from shardsmith.sources.medical.stats import label_stats
from shardsmith.sources.medical.vindr_cxr import VinDrCxr


def test_vindr_physionet_layout(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    with (ann / "annotations_train.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"])
        w.writerow(["aa01", "R1", "Rib fracture", "10.5", "20.25", "40.0", "60.0"])
        w.writerow(["aa01", "R2", "No finding", "", "", "", ""])
        w.writerow(["aa02", "R1", "No finding", "", "", "", ""])
    with (ann / "image_labels_test.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "rad_id", "COPD", "Tuberculosis", "Other disease", "No finding"])
        w.writerow(["bb01", "R5", "0", "1", "0", "0"])
        w.writerow(["bb02", "R5", "0", "0", "0", "1"])
    result = VinDrCxr().read_labels(tmp_path)
    by_id = {i.native_id: i for i in result.items}
    assert by_id["aa01"].abnormal is True and by_id["aa01"].targets[0].label == "rib_fracture"
    assert by_id["aa01"].split == "train" and by_id["bb01"].split == "test"
    assert by_id["aa02"].abnormal is False and by_id["aa02"].complete
    assert {f.label: f.status for f in by_id["bb01"].findings}["tuberculosis"] == "present"
    assert by_id["bb02"].abnormal is False
    assert by_id["aa01"].image_relpath == "train/aa01.dicom"


def test_old_nih_data_entry_with_trailing_empty_column(tmp_path):
    (tmp_path / "Data_Entry_2017.csv").write_text(
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
        "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
        "00000001_000.png,Cardiomegaly|Emphysema,0,1,058Y,M,PA,2682,2749,0.143,0.143,\n"
        "00000002_000.png,No Finding,0,2,81,F,AP,2500,2048,0.171,0.171,\n"
    )
    stats = label_stats("nih_cxr14", NihCxr14().read_labels(tmp_path))
    assert stats["images"] == 2
    assert stats["abnormal"] == {"true": 1, "false": 1, "unknown": 0}
    assert stats["findings"]["emphysema"] == {"present": 1, "absent": 1, "uncertain": 0}


def test_unknown_label_is_quarantined_with_its_name(tmp_path):
    (tmp_path / "Data_Entry_2017_v2020.csv").write_text(
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
        "00000001_000.png,Cardiomegaly|Unicorn horn,0,1,58,M,PA\n"
        "00000002_000.png,No Finding,0,2,81,F,AP\n"
    )
    result = NihCxr14().read_labels(tmp_path)
    assert [i.native_id for i in result.items] == ["00000002_000.png"]
    [q] = result.quarantine
    assert q["reason"] == "unknown_label" and "Unicorn horn" in q["detail"]


def test_missing_columns_name_file_and_line(tmp_path):
    (tmp_path / "train.csv").write_text("image_id,class_name\nabc,No finding\n")
    with pytest.raises(LabelFileError, match=r"train\.csv: line 1: missing required column"):
        VinDrCxr().read_labels(tmp_path)
