"""The real label files give the datasets' published facts through ``shardsmith labels``."""

import json
import os

import pytest
from click.testing import CliRunner

from shardsmith.cli import main


def _labels(source, root):
    result = CliRunner().invoke(main, ["labels", source, str(root), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _link(tmp_path, real, names):
    for native, real_name in names.items():
        os.symlink(real / "cxr-labels" / real_name, tmp_path / native)
    return tmp_path


def test_vindr_kaggle_train_csv_published_facts(tmp_path, real_samples):
    root = _link(tmp_path, real_samples, {"train.csv.gz": "vinbigdata-train.csv.gz"})
    stats = _labels("vindr_cxr", root)
    assert stats["images"] == 15_000
    assert stats["abnormal"] == {"true": 4_394, "false": 10_606, "unknown": 0}
    # 67,914 rows, 31,818 of them "No finding" without a box: every other row is one box.
    assert sum(stats["targets"].values()) == 67_914 - 31_818
    assert stats["findings"]["nodule_or_mass"]["present"] > 0
    assert set(stats["findings"]) >= {"pleural_effusion", "infiltration", "interstitial_lung_disease"}


def test_nih_published_facts(tmp_path, real_samples):
    root = _link(tmp_path, real_samples, {"Data_Entry_2017_v2020.csv.gz": "Data_Entry_2017_v2020.csv.gz",
                                          "BBox_List_2017.csv.gz": "BBox_List_2017.csv.gz"})
    stats = _labels("nih_cxr14", root)
    assert stats["images"] == 112_120
    assert stats["abnormal"]["false"] == 60_361
    assert sum(stats["targets"].values()) == 984
    assert stats["quarantined_rows"] == 0
    # the BBox file says "Infiltrate"; it lands on the canonical label of NIH's "Infiltration"
    assert "infiltration" in stats["targets"]
    assert stats["findings"]["pleural_effusion"]["present"] == 13_317


def test_nih_boxes_are_on_880_images(tmp_path, real_samples):
    from shardsmith.sources.medical.nih_cxr14 import NihCxr14

    root = _link(tmp_path, real_samples, {"Data_Entry_2017_v2020.csv.gz": "Data_Entry_2017_v2020.csv.gz",
                                          "BBox_List_2017.csv.gz": "BBox_List_2017.csv.gz"})
    items = NihCxr14().read_labels(root).items
    assert sum(1 for i in items if i.targets) == 880
    assert all(t.source_geometry == "xywh@1024" for i in items for t in i.targets)


@pytest.mark.parametrize("source", ["vindr_cxr", "nih_cxr14"])
def test_labels_on_a_folder_without_label_files_is_an_error(tmp_path, source):
    """A wrong folder is a user's mistake, not an empty success (0 images and exit 0 hid it)."""
    result = CliRunner().invoke(main, ["labels", source, str(tmp_path), "--json"])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and "holds no label files" in result.output
