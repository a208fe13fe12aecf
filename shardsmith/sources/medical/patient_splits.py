"""One split per patient when a dataset's official splits disagree within a patient.

A patient can have one image on an official test list and another on no list (or on the train
list). Publishing them in two splits would put one patient in train and test, so the rule is:
the STRICTEST official split among a patient's images wins for all of that patient's images
(test > val > train), and those images count as officially split. A patient with no official
split on any image keeps the seeded split, which is already one per patient.
"""

from __future__ import annotations

from shardsmith.identity.splits import SPLIT_ORDER

_RANK = {s: k for k, s in enumerate(SPLIT_ORDER)}


class PatientSplits:
    """Collects each patient's official splits while labels are read (one small set per patient, no
    image ids: a source's items are never held); ``overrides`` then names the patients whose images
    disagree and the split they all take."""

    def __init__(self) -> None:
        self._splits: dict[str, set[str | None]] = {}

    def add(self, patient_raw: str | None, split: str | None) -> None:
        if patient_raw:
            self._splits.setdefault(patient_raw, set()).add(split)

    def overrides(self) -> dict[str, str]:
        """raw patient id -> the strictest official split among its images, for patients whose images
        disagree (two official splits, or official and none); every other patient is left out."""
        out: dict[str, str] = {}
        for patient, splits in self._splits.items():
            official = [s for s in splits if s is not None]
            if len(splits) > 1 and official:
                out[patient] = max(official, key=_RANK.__getitem__)
        self._splits = {}
        return out
