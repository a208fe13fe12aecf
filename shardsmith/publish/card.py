"""The dataset card (README.md) of a release, with the front matter Hugging Face reads."""

from __future__ import annotations

import json
from typing import Any

from shardsmith.schemas.vocabulary import load_vocabulary


def _source_facts() -> dict[str, dict]:
    """Licence, citation and homepage as each source declares them (sources/registry)."""
    from shardsmith.sources.registry import facts

    return facts()


def _front_matter(manifest: dict) -> str:
    lines = ["---", "configs:"]
    for table, splits in manifest["row_counts"].items():
        if not splits:
            continue
        lines += [f"- config_name: {table}", "  data_files:"]
        for split in splits:
            lines += [f"  - split: {split}", f"    path: data/{table}/{split}/*.parquet"]
    lines += ["---", ""]
    return "\n".join(lines)


def render_card(manifest: dict, stats: dict[str, Any] | None = None) -> str:
    stats = stats or {}
    vocab = load_vocabulary()
    out = [_front_matter(manifest)]
    out.append(f"# shardsmith {manifest['collection']} release {manifest['version']}\n")
    out.append(f"Content digest `{manifest['content_digest']}`; parent `{manifest.get('parent')}`; "
               f"code {manifest['code_version']}; schemas {json.dumps(manifest['schema_versions'])}.\n")
    out.append("## Rows\n\n| table | split | rows |\n| --- | --- | ---: |")
    for table, splits in manifest["row_counts"].items():
        for split, n in splits.items():
            out.append(f"| {table} | {split} | {n} |")
    sources = sorted(manifest.get("input_fingerprints", {}))
    known = _source_facts()
    out.append("\n## Sources and licences\n\n| source | licence | homepage | input fingerprint |\n"
               "| --- | --- | --- | --- |")
    for s in sources:
        f = known.get(s, {})
        out.append(f"| {s} | {f.get('licence', 'see the source')} | {f.get('homepage', '')} | "
                   f"`{manifest['input_fingerprints'][s][:16]}` |")
    cited = [s for s in sources if known.get(s, {}).get("citation", "—") not in ("", "—")]
    if cited:
        out.append("\n## Citations\n\nPlease cite the datasets this release is built from:\n")
        out += [f"- **{s}**: {known[s]['citation']}" for s in cited]
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
