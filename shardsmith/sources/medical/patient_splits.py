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
    """Collects (patient, native id, official split) while labels are read; ``overrides`` then says
    which images must change split so that every patient sits in one split."""

    def __init__(self) -> None:
        self._splits: dict[str, set[str | None]] = {}
        self._images: dict[str, list[str]] = {}

    def add(self, patient_raw: str | None, native_id: str, split: str | None) -> None:
        if not patient_raw:
            return
        self._splits.setdefault(patient_raw, set()).add(split)
        self._images.setdefault(patient_raw, []).append(native_id)

    def overrides(self) -> dict[str, str]:
        """native id -> the strictest official split of its patient, for patients whose images
        disagree (two official splits, or official and none); everything else is left out."""
        out: dict[str, str] = {}
        for patient, splits in self._splits.items():
            official = [s for s in splits if s is not None]
            if len(splits) < 2 or not official:
                continue
            strictest = max(official, key=_RANK.__getitem__)
            out.update(dict.fromkeys(self._images[patient], strictest))
        self._splits, self._images = {}, {}
        return out
