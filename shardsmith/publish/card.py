"""The dataset card (README.md) of a release, with the front matter Hugging Face reads."""

from __future__ import annotations

import json
import re
from typing import Any

from shardsmith.schemas.vocabulary import load_vocabulary

# Hugging Face task categories a table serves (front matter ``task_categories``).
TASK_CATEGORIES: dict[str, tuple[str, ...]] = {
    "records": ("image-classification", "object-detection", "image-segmentation"),
    "volumes": ("image-segmentation",),
    "utterances": ("automatic-speech-recognition",),
    "games": ("text-classification",),
}
_HF_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")


def default_licences(sources: list[str]) -> dict[str, dict]:
    """Licence facts as each source declares them (``sources/registry``); a source the registry
    does not know (a release built by another installation) gets a placeholder, never a guess."""
    from shardsmith.sources.registry import facts

    known = facts()
    return {s: known.get(s, {"licence": "see the source", "gated": False}) for s in sources}


def card_data(manifest: dict, licences: dict[str, dict[str, Any]] | None = None):
    """The card's front matter as ``huggingface_hub.DatasetCardData``.

    ``licences`` maps each source to ``{licence, gated, homepage, citation}``. A licence that is a
    Hub licence id (``cc-by-4.0``) is used as is, anything else makes the card ``other`` with the
    texts in the body. Any gated source (terms that forbid open re-hosting) adds the Hub's
    gated-access fields, so a re-upload asks every user to accept those terms first.
    """
    from huggingface_hub import DatasetCardData

    sources = sorted(manifest.get("input_fingerprints", {}))
    facts = {**default_licences(sources), **(licences or {})}
    facts = {s: facts[s] for s in sources}
    ids = sorted({f["licence"] if _HF_LICENSE_ID.fullmatch(str(f.get("licence", ""))) else "other"
                  for f in facts.values()}) or ["other"]
    configs, tasks = [], set()
    for table, splits in manifest["row_counts"].items():
        if not splits:
            continue
        tasks.update(TASK_CATEGORIES.get(table, ()))
        configs.append({"config_name": table, "data_files": [
            {"split": split, "path": f"data/{table}/{split}/*.parquet"} for split in splits]})
    extra: dict[str, Any] = {}
    if "other" in ids:
        extra["license_name"] = "mixed-source-terms"
        extra["license_details"] = "; ".join(f"{s}: {f['licence']}" for s, f in facts.items())
    gated = {s: f for s, f in facts.items() if f.get("gated")}
    if gated:
        extra["extra_gated_prompt"] = (
            "This release contains data from sources whose terms forbid open re-hosting: "
            + "; ".join(f"{s} ({f['licence']}{', ' + f['homepage'] if f.get('homepage') else ''})"
                        for s, f in gated.items())
            + ". You must hold your own access to each of them and accept their terms.")
        extra["extra_gated_fields"] = {
            **{f"I have access to {s} and accept its terms": "checkbox" for s in gated},
            "Affiliation": "text",
        }
    return DatasetCardData(
        license=ids if len(ids) > 1 else ids[0],
        pretty_name=f"shardsmith {manifest['collection']} {manifest['version']}",
        task_categories=sorted(tasks) or None,
        configs=configs,
        **extra,
    )


def _front_matter(manifest: dict, licences: dict[str, dict[str, Any]] | None = None) -> str:
    return f"---\n{card_data(manifest, licences).to_yaml()}\n---\n"


def render_card(manifest: dict, stats: dict[str, Any] | None = None,
                licences: dict[str, dict[str, Any]] | None = None) -> str:
    """README.md of a release; ``licences`` as in :func:`card_data` (default: the sources' declared facts)."""
    stats = stats or {}
    vocab = load_vocabulary()
    facts = {**default_licences(sorted(manifest.get("input_fingerprints", {}))), **(licences or {})}
    out = [_front_matter(manifest, licences)]
    out.append(f"# shardsmith {manifest['collection']} release {manifest['version']}\n")
    out.append(f"Content digest `{manifest['content_digest']}`; parent `{manifest.get('parent')}`; "
               f"code {manifest['code_version']}; schemas {json.dumps(manifest['schema_versions'])}.\n")
    out.append("## Rows\n\n| table | split | rows |\n| --- | --- | ---: |")
    for table, splits in manifest["row_counts"].items():
        for split, n in splits.items():
            out.append(f"| {table} | {split} | {n} |")
    sources = sorted(manifest.get("input_fingerprints", {}))
    out.append("\n## Sources and licences\n\n| source | licence | input fingerprint |\n| --- | --- | --- |")
    for s in sources:
        out.append(f"| {s} | {facts[s]['licence']} | `{manifest['input_fingerprints'][s][:16]}` |")
    cited = [(s, facts[s]) for s in sources
             if facts[s].get("citation", "—") not in ("", "—") or facts[s].get("homepage", "—") not in ("", "—")]
    if cited:
        out.append("\n## Citations\n\nCite each source you use:\n")
        out += [f"- **{s}**: {f.get('citation') or ''} {('<' + f['homepage'] + '>') if f.get('homepage') else ''}".rstrip()
                for s, f in cited]
    findings = stats.get("findings") or {}
    targets = stats.get("targets") or {}
    if findings or targets:
        srcs = sorted({s for c in list(findings.values()) + list(targets.values()) for s in c})
        out.append("\n## Labels (canonical vocabulary, per source)\n")
        out.append("Present findings per source (targets in brackets).\n")
        out.append("| label | parent | " + " | ".join(srcs) + " |")
        out.append("| --- | --- | " + " | ".join("---:" for _ in srcs) + " |")
        for label in sorted(set(findings) | set(targets)):
            c = vocab.canonical.get(label)
            cells = [f"{findings.get(label, {}).get(s, 0)} ({targets.get(label, {}).get(s, 0)})" for s in srcs]
            out.append(f"| {label} | {c.parent if c and c.parent else ''} | " + " | ".join(cells) + " |")
        out.append("\nSource label mapping:\n\n| source | source label | canonical | kind |\n| --- | --- | --- | --- |")
        for m in vocab.source_rows():
            if m.source in sources:
                out.append(f"| {m.source} | {m.source_label} | {m.canonical or ''} | {m.kind} |")
    coll = manifest["collection"]
    first = next(iter(manifest["row_counts"]), "records")
    out.append(f"""
## How to load

```python
from shardsmith.loaders import open_release
rel = open_release("RELEASES_ROOT", "{coll}")       # version="latest" by default
rel.verify()                                  # re-hash every file against manifest.json
df = rel.pandas("{first}", split="train")
for sample in rel.webdataset("{first}", split="train"):
    ...
```

or `datasets.load_dataset("parquet", data_dir="<release>/data/<table>")`; the front matter above
lists the Parquet files per split for `load_dataset("<release folder>")`.
""")
    return "\n".join(out)
