"""Source name -> adapter class, as data. Adapters are imported lazily so that one missing
optional dependency never breaks the others."""

from __future__ import annotations

import importlib

from shardsmith.sources.base import MedicalSource

MEDICAL_SOURCES: dict[str, str] = {
    "vindr_cxr": "shardsmith.sources.vindr_cxr:VinDrCxr",
    "nih_cxr14": "shardsmith.sources.nih_cxr14:NihCxr14",
    "rsna_pneumonia": "shardsmith.sources.rsna_pneumonia:RsnaPneumonia",
    "siim_acr": "shardsmith.sources.siim_acr:SiimAcr",
    "chestx_det": "shardsmith.sources.chestx_det:ChestXDet",
    "chexpert": "shardsmith.sources.chexpert:CheXpert",
    "ms_cxr": "shardsmith.sources.ms_cxr:MsCxr",
    "msd": "shardsmith.sources.msd:Msd",
    "brats": "shardsmith.sources.brats:Brats",
    "kits": "shardsmith.sources.kits:Kits",
    "lidc_idri": "shardsmith.sources.lidc_idri:LidcIdri",
    "totalsegmentator": "shardsmith.sources.totalsegmentator:TotalSegmentator",
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
