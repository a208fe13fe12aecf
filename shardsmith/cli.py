"""``shardsmith``: build, demo, releases, verify, labels."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from shardsmith import config
from shardsmith.config import settings_from_env


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("great_expectations", "dagster", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group()
@click.option("-v", "--verbose", is_flag=True)
def main(verbose: bool) -> None:
    """Build research datasets from public medical images and Werewolf games."""
    _setup_logging(verbose)


def enabled_medical(settings) -> list[str]:
    from shardsmith.sources.registry import get_source, medical_source_names

    out = []
    for name in medical_source_names():
        root = settings.raw_dir(name)
        if root.is_dir() and get_source(name, settings).detect(root):
            out.append(name)
    return out


def run_build(home: Path, echo: bool = True) -> dict:
    """Materialise every enabled source and the releases in-process through Dagster.

    Unpartitioned assets run together; a partitioned stage runs once per partition (the same
    runs a backfill would launch), and whatever depends on it runs after every partition passed.
    Steps whose inputs are unchanged reuse their staged output, so a repeated build is cheap.
    """
    import dagster as dg

    from shardsmith.definitions import graph_parts
    from shardsmith.defs.resources import ShardsmithResource

    config.export_home(home)
    settings = settings_from_env(home)
    medical = enabled_medical(settings)
    keys: list[dg.AssetKey] = []
    for name in medical:
        keys += [dg.AssetKey(f"{name}_catalog"), dg.AssetKey(f"{name}_records")]
    if medical:
        keys.append(dg.AssetKey("medical_release"))
    extra = _werewolf_selection(settings)
    keys += extra
    if not keys:
        raise click.ClickException(f"nothing to build: no known source under {settings.raw}")
    say = (lambda msg: click.echo(msg, err=True)) if echo else (lambda msg: None)
    say(f"building {', '.join(medical)}{' + werewolf' if extra else ''} under {home}")
    assets, checks = graph_parts(settings)
    instance = dg.DagsterInstance.get() if config.dagster_home() else dg.DagsterInstance.ephemeral()
    resources = {"shardsmith": ShardsmithResource(home=str(home))}
    t0 = time.monotonic()
    summary: dict = {"success": True, "runs": 0, "failed_checks": [], "recomputed": [], "reused": []}

    def run(selected: set, partition_key: str | None, label: str) -> bool:
        t = time.monotonic()
        result = dg.materialize(
            [*assets, *checks], selection=dg.AssetSelection.assets(*selected), partition_key=partition_key,
            resources=resources, instance=instance, raise_on_error=False,
        )
        failed = [f"{e.asset_key.to_user_string()}{f'[{e.partition}]' if e.partition else ''}:{e.check_name}"
                  for e in result.get_asset_check_evaluations() if not e.passed]
        done = {"recomputed": [], "reused": []}
        for ev in result.get_asset_materialization_events():
            mat = ev.event_specific_data.materialization
            name = mat.asset_key.to_user_string() + (f"[{mat.partition}]" if mat.partition else "")
            meta = mat.metadata.get("recomputed")
            done["reused" if meta is not None and meta.value is False else "recomputed"].append(name)
        summary["runs"] += 1
        summary["failed_checks"] += failed
        for k, v in done.items():
            summary[k] += v
        ok = result.success and not failed
        say(f"  {label}: {'ok' if ok else 'FAILED'} in {time.monotonic() - t:.1f}s "
            f"({len(done['recomputed'])} built, {len(done['reused'])} reused){' ' + str(failed) if failed else ''}")
        return ok

    for stage_keys, pdef in _stages(assets, keys):
        if pdef is None:
            ok = run(stage_keys, None, ", ".join(sorted(k.to_user_string() for k in stage_keys))[:100])
        else:
            parts = pdef.get_partition_keys(dynamic_partitions_store=instance)
            say(f"  {len(stage_keys)} partitioned asset(s) x {len(parts)} partitions")
            ok = True
            for i, pk in enumerate(parts, 1):
                ok = run(stage_keys, pk, f"partition {pk} ({i}/{len(parts)})") and ok
        if not ok:
            summary["success"] = False
            say("  stopping: a step or a blocking check failed; nothing downstream runs")
            break
    summary["seconds"] = round(time.monotonic() - t0, 1)
    return summary


def _stages(assets: list, keys: list) -> list[tuple[set, object]]:
    """Order the selection into runs: unpartitioned closures and one stage per partitions definition."""
    by_key = {k: a for a in assets if hasattr(a, "specs_by_key") for k in a.keys}
    parents = {k: {d.asset_key for d in by_key[k].specs_by_key[k].deps} for k in keys}
    pdefs = {k: by_key[k].partitions_def for k in keys}
    remaining, stages = set(keys), []

    def ancestors(k, seen=None) -> set:
        seen = set() if seen is None else seen
        for p in parents.get(k, ()):
            if p in remaining and p not in seen:
                seen.add(p)
                ancestors(p, seen)
        return seen

    while remaining:
        whole = {k for k in remaining if pdefs[k] is None and all(pdefs[a] is None for a in ancestors(k))}
        if whole:
            stages.append((whole, None))
            remaining -= whole
            continue
        ready = [k for k in remaining if not (ancestors(k) & remaining)]
        pdef = pdefs[ready[0]]
        group = {k for k in ready if pdefs[k] == pdef}
        stages.append((group, pdef))
        remaining -= group
    return stages


def _werewolf_selection(settings) -> list:
    try:
        from shardsmith.defs.werewolf.assets import werewolf_selection
    except ImportError:
        return []
    return werewolf_selection(settings)


def print_releases(home: Path) -> None:
    from shardsmith.publish.release import list_versions, read_latest

    root = home / "releases"
    if not root.is_dir():
        click.echo("no releases")
        return
    for coll in sorted(p for p in root.iterdir() if p.is_dir()):
        latest = read_latest(coll)
        for v in list_versions(coll):
            m = json.loads((coll / v / "manifest.json").read_text())
            counts = ", ".join(f"{t}: " + "/".join(f"{s}={n}" for s, n in sp.items())
                               for t, sp in m["row_counts"].items() if sp)
            mark = "*" if v == latest else " "
            click.echo(f"{mark} {coll.name}/{v}  {m['created']}  digest {m['content_digest'][:12]}  {counts}")
            click.echo(f"    {coll / v}")


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None, help="SHARDSMITH_HOME")
def build(home: Path | None) -> None:
    """Materialise everything enabled under HOME/raw/ and publish the releases."""
    home = (home or settings_from_env().home).resolve()
    summary = run_build(home)
    click.echo(json.dumps(summary))
    if not summary["success"]:
        raise SystemExit(1)
    print_releases(home)


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=Path("demo-home"))
@click.option("--fresh/--keep", default=True, help="Start from an empty home")
def demo(home: Path, fresh: bool) -> None:
    """Write sample data for every source in its native layout, build it, print the releases."""
    import shutil

    from shardsmith.demo.generate import write_all

    config.enable_demo()
    home = home.resolve()
    if fresh and home.exists():
        shutil.rmtree(home)
    sources = write_all(home)
    click.echo(f"demo data written for: {', '.join(sources)}", err=True)
    summary = run_build(home)
    click.echo(json.dumps(summary))
    print_releases(home)
    if not summary["success"]:
        raise SystemExit(1)


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None)
def releases(home: Path | None) -> None:
    """List published releases (* marks LATEST)."""
    print_releases((home or settings_from_env().home).resolve())


@main.command()
@click.argument("collection", default="medical")
@click.option("--home", type=click.Path(path_type=Path), default=None)
@click.option("--version", default="latest")
def verify(collection: str, home: Path | None, version: str) -> None:
    """Re-hash every file of a release against its manifest."""
    from shardsmith.loaders import open_release

    home = (home or settings_from_env().home).resolve()
    rel = open_release(home / "releases", collection, version)
    report = rel.verify(raise_on_error=False)
    click.echo(json.dumps({"release": f"{collection}/{rel.version}", "ok": report.ok, "files": report.files,
                           "problems": report.problems}))
    if not report.ok:
        raise SystemExit(1)


@main.command()
@click.argument("source")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def labels(source: str, root: Path, as_json: bool) -> None:
    """Harmonised label statistics from the label files under ROOT (no pixels)."""
    from shardsmith.sources.registry import game_source_names

    if source in game_source_names():
        from shardsmith.staging.games import label_stats as game_stats

        click.echo(json.dumps(game_stats(source, root), indent=2, ensure_ascii=False))
        return
    from shardsmith.sources.medical.stats import label_stats
    from shardsmith.sources.registry import get_source

    stats = label_stats(source, get_source(source).read_labels(root))
    if as_json:
        click.echo(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    click.echo(f"{source}: {stats['images']} images; abnormal {stats['abnormal']}")
    for label, c in stats["findings"].items():
        click.echo(f"  {label:32s} present {c['present']:7d}  absent {c['absent']:7d}  uncertain {c['uncertain']:7d}")
    for label, n in stats["targets"].items():
        click.echo(f"  target {label:25s} {n}")


if __name__ == "__main__":
    main()
