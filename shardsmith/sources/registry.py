"""Source name -> adapter class, as data. Adapters are imported lazily so that one missing
optional dependency never breaks the others."""

from __future__ import annotations

import importlib

from shardsmith.sources.medical.base import MedicalSource

MEDICAL_SOURCES: dict[str, str] = {
    "vindr_cxr": "shardsmith.sources.medical.vindr_cxr:VinDrCxr",
    "nih_cxr14": "shardsmith.sources.medical.nih_cxr14:NihCxr14",
    "rsna_pneumonia": "shardsmith.sources.medical.rsna_pneumonia:RsnaPneumonia",
    "siim_acr": "shardsmith.sources.medical.siim_acr:SiimAcr",
    "chestx_det": "shardsmith.sources.medical.chestx_det:ChestXDet",
    "chexpert": "shardsmith.sources.medical.chexpert:CheXpert",
    "ms_cxr": "shardsmith.sources.medical.ms_cxr:MsCxr",
    "msd": "shardsmith.sources.medical.msd:Msd",
    "brats": "shardsmith.sources.medical.brats:Brats",
    "kits": "shardsmith.sources.medical.kits:Kits",
    "lidc_idri": "shardsmith.sources.medical.lidc_idri:LidcIdri",
    "totalsegmentator": "shardsmith.sources.medical.totalsegmentator:TotalSegmentator",
}


def get_source(name: str) -> MedicalSource:
    try:
        target = MEDICAL_SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(MEDICAL_SOURCES))
        raise KeyError(f"unknown medical source {name!r}; known: {known}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)()


def medical_source_names() -> list[str]:
    return list(MEDICAL_SOURCES)
