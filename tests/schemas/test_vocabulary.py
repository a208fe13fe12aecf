import pytest

from shardsmith.schemas.vocabulary import UnknownLabelError, load_vocabulary


def test_synonyms_land_on_one_canonical_label():
    v = load_vocabulary()
    assert {v.lookup("vindr_cxr", "Pleural effusion").canonical, v.lookup("nih_cxr14", "Effusion").canonical,
            v.lookup("chexpert", "Pleural Effusion").canonical} == {"pleural_effusion"}
    assert v.lookup("nih_cxr14", "Infiltrate").canonical == v.lookup("vindr_cxr", "Infiltration").canonical
    assert v.lookup("chexpert", "Airspace Opacity").canonical == "lung_opacity"


def test_normal_and_combined_labels_are_handled_on_purpose():
    v = load_vocabulary()
    for source, label in [("vindr_cxr", "No finding"), ("nih_cxr14", "No Finding"), ("rsna_pneumonia", "Normal")]:
        m = v.lookup(source, label)
        assert m.kind == "normal" and m.canonical is None
    assert v.lookup("vindr_cxr", "Nodule/Mass").canonical == "nodule_or_mass"
    assert v.ancestors("nodule") == ["nodule_or_mass"]
    assert v.ancestors("mass") == ["nodule_or_mass"]


def test_unknown_label_is_an_error_that_names_it():
    with pytest.raises(UnknownLabelError, match="Dragon scales.*nih_cxr14"):
        load_vocabulary().lookup("nih_cxr14", "Dragon scales")


def test_whitespace_in_source_labels_is_normalised():
    assert load_vocabulary().lookup("nih_cxr14", "  Pleural_Thickening ").canonical == "pleural_thickening"
