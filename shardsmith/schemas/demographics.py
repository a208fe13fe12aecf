"""Demographic fields as they may appear in a release: decade age bands, 90 and over pooled
(HIPAA Safe Harbor), whatever form the source gives the age in."""

from __future__ import annotations

import math
import re

# DICOM AS ("045Y", "006M", "003W", "010D"), bare numbers ("62", "62.5"), optional unit letter.
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([YyMmWwDd])?\s*$")
_YEARS_PER_UNIT = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def age_years(value: object) -> float | None:
    """An age in years, or None when the value is missing or not an age."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if math.isnan(value) or value < 0 else float(value)
    match = _AGE.match(str(value))
    if not match:
        return None
    return float(match.group(1)) * _YEARS_PER_UNIT[(match.group(2) or "Y").upper()]


def age_band(value: object, width: int = 10) -> str | None:
    """Decade band ("40-49") of an age in any accepted form; "90+" from 90 years up; None if unknown."""
    years = age_years(value)
    if years is None:
        return None
    if years >= 90:
        return "90+"
    low = int(years) // width * width
    return f"{low}-{low + width - 1}"
