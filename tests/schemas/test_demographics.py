"""One age_band for every source: DICOM AS strings, bare numbers, months and weeks."""

import pytest

from shardsmith.schemas.demographics import age_band


@pytest.mark.parametrize(("value", "band"), [
    ("120M", "10-19"),  # 120 months = 10 years (the old CXR helper said 0-9)
    ("045Y", "40-49"),
    ("006W", "0-9"),
    ("010D", "0-9"),
    ("62", "60-69"),
    (62.9, "60-69"),
    ("089Y", "80-89"),
    ("090Y", "90+"),
    (104, "90+"),
    ("1188M", "90+"),  # 99 years in months
])
def test_age_bands(value, band):
    assert age_band(value) == band


@pytest.mark.parametrize("value", [None, "", "abc", "-5", "45X", float("nan"), True])
def test_unknown_ages_have_no_band(value):
    assert age_band(value) is None


def test_dicom_decoder_uses_the_same_helper():
    from shardsmith.media import dicom
    from shardsmith.sources.medical import base

    assert dicom.age_band is age_band and base.age_band is age_band
