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


def _selection(settings, sources: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(medical sources, werewolf sources) to build: those present under raw/, or ``sources``."""
    from shardsmith.sources.registry import game_source_names, source_names

    if sources:
        unknown = sorted(set(sources) - set(source_names()))
        if unknown:
            raise click.ClickException(f"unknown source(s) {unknown}; known: {', '.join(source_names())}")
        missing = [s for s in sources if not settings.raw_dir(s).is_dir()]
        if missing:
            raise click.ClickException(f"no raw data for {missing} under {settings.raw}")
    medical = [n for n in enabled_medical(settings) if not sources or n in sources]
    games = [n for n in game_source_names() if settings.raw_dir(n).is_dir() and (not sources or n in sources)]
    return medical, games


def run_build(home: Path, echo: bool = True, sources: tuple[str, ...] = (), workers: int | None = None,
              allow_partial: bool = False, progress: bool = False) -> dict:
    """Materialise the selected sources and the releases in-process through Dagster.

    Unpartitioned assets run together; each partitioned stage runs ONCE over its whole partition
    range (a single-run backfill: one pool, one validation per source), and whatever depends on it
    runs after. Steps whose inputs are unchanged reuse their staged output, so a repeated build is
    cheap. A source whose step fails does not stop the others: its later steps are skipped and the
    release is refused, naming it, unless ``allow_partial`` (then the release is built without it).
    With ``DAGSTER_HOME`` set the runs are recorded in that instance (the UI shows them).
    """
    import dagster as dg

    from shardsmith.definitions import graph_parts
    from shardsmith.defs.resources import ShardsmithResource

    config.export_home(home)
    settings = settings_from_env(home, workers=workers, allow_partial=allow_partial or None)
    medical, games = _selection(settings, sources)
    keys: list[dg.AssetKey] = []
    for name in medical:
        keys += [dg.AssetKey(f"{name}_catalog"), dg.AssetKey(f"{name}_records")]
    if medical:
        keys.append(dg.AssetKey("medical_release"))
    if games:
        keys += [dg.AssetKey("werewolf_games"), dg.AssetKey("werewolf_utterances"), dg.AssetKey("werewolf_release")]
    if not keys:
        raise click.ClickException(f"nothing to build: no known source under {settings.raw}")
    say = (lambda msg: click.echo(msg, err=True)) if echo else (lambda msg: None)
    say(f"building {', '.join(medical + games)} under {home}")
    assets, checks = graph_parts(settings)
    instance = dg.DagsterInstance.get() if config.dagster_home() else dg.DagsterInstance.ephemeral()
    resources = {"shardsmith": ShardsmithResource(home=str(home), workers=workers if workers is not None else -1,
                                                  allow_partial=allow_partial)}
    t0 = time.monotonic()
    summary: dict = {"success": True, "runs": 0, "failed_checks": [], "recomputed": [], "reused": [],
                     "failed_steps": [], "failed_sources": [], "steps": []}
    owner = {k: k.to_user_string().rsplit("_", 1)[0] for k in keys}  # <source>_catalog -> source

    def run(selected: set, parts: list[str] | None, label: str) -> set:
        """One run; returns the asset keys whose step or blocking check failed."""
        t = time.monotonic()
        tags = {}
        if parts:
            tags = {"dagster/asset_partition_range_start": parts[0], "dagster/asset_partition_range_end": parts[-1]}
        result = dg.materialize(
            [*assets, *checks], selection=dg.AssetSelection.assets(*selected), resources=resources,
            instance=instance, raise_on_error=False, tags=tags,
        )
        failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
        failed = {e.asset_key for e in failed_checks}
        names = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in failed_checks]
        for ev in result.all_events:
            if ev.is_step_failure and ev.asset_key is not None:
                failed.add(ev.asset_key)
            elif ev.is_step_failure:
                failed |= {k for k in selected if ev.step_key and ev.step_key.startswith(k.to_python_identifier())}
        materialised = set()
        done = {"recomputed": [], "reused": []}
        for ev in result.get_asset_materialization_events():
            mat = ev.event_specific_data.materialization
            materialised.add(mat.asset_key)
            name = mat.asset_key.to_user_string() + (f"[{mat.partition}]" if mat.partition else "")
            meta = mat.metadata
            if "recomputed_parts" in meta:
                kind = "recomputed" if mat.partition in meta["recomputed_parts"].value else "reused"
            else:
                kind = "reused" if meta.get("recomputed") is not None and meta["recomputed"].value is False \
                    else "recomputed"
            done[kind].append(name)
        failed |= {k for k in selected if k not in materialised and not result.success}
        summary["runs"] += 1
        summary["failed_checks"] += names
        for k, v in done.items():
            summary[k] += v
        ok = not failed
        secs = time.monotonic() - t
        summary["steps"].append({"run": label, "ok": ok, "seconds": round(secs, 1),
                                 "built": len(done["recomputed"]), "reused": len(done["reused"]),
                                 "failed": sorted(k.to_user_string() for k in failed)})
        say(f"  {label}: {'ok' if ok else 'FAILED'} in {secs:.1f}s "
            f"({len(done['recomputed'])} built, {len(done['reused'])} reused)"
            f"{' ' + str(sorted(k.to_user_string() for k in failed)) if failed else ''}{' ' + str(names) if names else ''}")
        return failed

    from shardsmith.sources.registry import source_class

    failed_sources: set[str] = set()
    releases = {dg.AssetKey("medical_release"): "medical", dg.AssetKey("werewolf_release"): "werewolf"}
    for stage_keys, pdef in _stages(assets, keys):
        stage_keys = {k for k in stage_keys if owner.get(k) not in failed_sources}
        for rel in [k for k in stage_keys if k in releases]:
            coll = releases[rel]
            bad = sorted(s for s in failed_sources if source_class(s).collection == coll)
            if bad and not allow_partial:
                say(f"  {rel.to_user_string()}: REFUSED: source(s) {bad} failed to stage "
                    "(--allow-partial publishes without them)")
                summary["failed_steps"].append(rel.to_user_string())
                stage_keys.discard(rel)
            elif bad:
                say(f"  {rel.to_user_string()}: publishing without {bad} (--allow-partial)")
        if not stage_keys:
            continue
        if pdef is None:
            failed = run(stage_keys, None, ", ".join(sorted(k.to_user_string() for k in stage_keys))[:100])
        else:
            parts = pdef.get_partition_keys(dynamic_partitions_store=instance)
            if not parts:
                continue
            failed = run(stage_keys, parts, f"{len(stage_keys)} partitioned asset(s) x {len(parts)} partitions")
        for k in failed:
            name = k.to_user_string()
            summary["failed_steps"].append(name)
            if name.endswith(("_catalog", "_records")) and owner.get(k) in medical:
                failed_sources.add(owner[k])
            elif k in releases or name.startswith("werewolf_"):
                summary["success"] = False
    summary["failed_sources"] = sorted(failed_sources)
    tolerated = {f"{s}_{step}" for s in failed_sources for step in ("catalog", "records")} if allow_partial else set()
    if set(summary["failed_steps"]) - tolerated:
        summary["success"] = False
    summary["partial"] = bool(failed_sources) and allow_partial
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


def _summary_table(summary: dict) -> None:
    """The human end of a build: one row per run, then the failures, then the releases."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title="shardsmith build", show_lines=False)
    for col, just in (("run", "left"), ("status", "left"), ("built", "right"), ("reused", "right"),
                      ("seconds", "right")):
        table.add_column(col, justify=just)
    for step in summary["steps"]:
        status = "[green]ok[/]" if step["ok"] else f"[red]FAILED[/] {', '.join(step['failed'])[:60]}"
        table.add_row(step["run"][:60], status, str(step["built"]), str(step["reused"]), str(step["seconds"]))
    console.print(table)
    if summary["failed_sources"]:
        console.print(f"[red]sources that failed to stage:[/] {', '.join(summary['failed_sources'])}"
                      + (" (release built without them: --allow-partial)" if summary.get("partial") else ""))
    if summary["failed_checks"]:
        console.print(f"[red]failed checks:[/] {', '.join(summary['failed_checks'])}")
    verdict = "[green]success[/]" if summary["success"] else "[red]failed[/]"
    console.print(f"{verdict} in {summary['seconds']} s, {summary['runs']} run(s)")


class _RichProgress(logging.Handler):
    """Turns ``shardsmith.progress`` records into rich progress bars (one per source or part)."""

    def __init__(self) -> None:
        super().__init__()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=False)
        self.tasks: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        info = getattr(record, "progress", None)
        if info is None:
            self.progress.console.print(record.getMessage(), highlight=False)
            return
        label, done, total = info
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], completed=done, total=total)


def _build_and_report(home: Path, sources: tuple[str, ...], workers: int | None, allow_partial: bool,
                      as_json: bool) -> dict:
    bars = None
    progress_log = logging.getLogger("shardsmith.progress")
    if not as_json and sys.stderr.isatty():
        bars = _RichProgress()
        progress_log.addHandler(bars)
        progress_log.propagate = False
        bars.progress.start()
    try:
        summary = run_build(home, sources=sources, workers=workers, allow_partial=allow_partial)
    finally:
        if bars is not None:
            bars.progress.stop()
            progress_log.removeHandler(bars)
            progress_log.propagate = True
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _summary_table(summary)
    return summary


_SOURCE = click.option("--source", "sources", multiple=True, metavar="NAME",
                       help="Build only this source (repeatable); default: every source under raw/.")
_WORKERS = click.option("--workers", type=click.IntRange(min=0), default=None,
                        help="Decoding processes (0 = every core, 1 = serial); default SHARDSMITH_WORKERS.")
_PARTIAL = click.option("--allow-partial", is_flag=True,
                        help="Publish a release even if a source failed to stage (the card says which).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (machine form).")


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None, help="SHARDSMITH_HOME")
@_SOURCE
@_WORKERS
@_PARTIAL
@click.option("--dry-run", is_flag=True, help="Say what would be recomputed and why; change nothing.")
@_JSON
def build(home: Path | None, sources: tuple[str, ...], workers: int | None, allow_partial: bool, dry_run: bool,
          as_json: bool) -> None:
    """Materialise everything enabled under HOME/raw/ (or --source ...) and publish the releases."""
    home = (home or settings_from_env().home).resolve()
    if dry_run:
        from shardsmith.staging.plan import plan_build

        settings = settings_from_env(home, workers=workers)
        medical, games = _selection(settings, sources)
        plan = plan_build(settings, medical, games)
        if as_json:
            click.echo(json.dumps(plan, indent=2))
        else:
            _print_plan(plan)
        return
    summary = _build_and_report(home, sources, workers, allow_partial, as_json)
    if not as_json:
        print_releases(home)
    if not summary["success"]:
        raise SystemExit(1)


def _print_plan(plan: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="shardsmith build --dry-run: what would run")
    for col in ("step", "would", "why"):
        table.add_column(col)
    for row in plan["steps"]:
        colour = "yellow" if row["would"] == "recompute" else "green"
        table.add_row(row["step"], f"[{colour}]{row['would']}[/]", row["why"])
    Console().print(table)


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=Path("demo-home"))
@click.option("--fresh/--keep", default=True, help="Start from an empty home")
@_WORKERS
@_JSON
def demo(home: Path, fresh: bool, workers: int | None, as_json: bool) -> None:
    """Write sample data for every source in its native layout, build it, print the releases."""
    import shutil

    from shardsmith.demo.generate import write_all

    config.enable_demo()
    home = home.resolve()
    if fresh and home.exists():
        shutil.rmtree(home)
    sources = write_all(home)
    click.echo(f"demo data written for: {', '.join(sources)}", err=True)
    summary = _build_and_report(home, (), workers, False, as_json)
    print_releases(home)
    if not summary["success"]:
        raise SystemExit(1)


@main.command()
def sources() -> None:
    """List the registered sources (built-in and installed plugins) with their declared facts."""
    from rich.console import Console
    from rich.table import Table

    from shardsmith.sources.registry import facts

    table = Table(title="shardsmith sources")
    for col in ("name", "collection", "partitioned", "licence", "homepage"):
        table.add_column(col)
    for name, f in facts().items():
        table.add_row(name, f["collection"], "yes" if f["partitioned"] else "no",
                      f["licence"] + (" (gated)" if f["gated"] else ""), f["homepage"])
    Console().print(table)


@main.command()
@click.argument("v1")
@click.argument("v2")
@click.option("--collection", default="medical")
@click.option("--home", type=click.Path(path_type=Path), default=None)
@_JSON
def diff(v1: str, v2: str, collection: str, home: Path | None, as_json: bool) -> None:
    """Rows added, removed and changed between two versions of a release (by key and content)."""
    from shardsmith.publish.diff import diff_releases

    root = (home or settings_from_env().home).resolve() / "releases" / collection
    result = diff_releases(root / v1, root / v2)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{collection}: {v1} -> {v2}")
    for col in ("table", "added", "removed", "changed"):
        table.add_column(col, justify="right" if col != "table" else "left")
    for name, d in result.items():
        table.add_row(name, *(str(len(d[k]) if isinstance(d[k], list | tuple | set) else d[k])
                              for k in ("added", "removed", "changed")))
    Console().print(table)


@main.command()
@click.argument("home", type=click.Path(path_type=Path), required=False)
@_JSON
def dupes(home: Path | None, as_json: bool) -> None:
    """Duplicate radiographs across the staged medical sources: groups per source pair (the card's table)."""
    from shardsmith.identity.stage import stage_identity
    from shardsmith.publish.build import enabled_sources, source_fingerprint, staging_files
    from shardsmith.staging.layout import StagingLayout

    settings = settings_from_env(home)
    sources = enabled_sources(settings, "medical")
    if not sources:
        raise click.ClickException(f"no staged medical records under {settings.staging}: run `shardsmith build`")
    identity = stage_identity(StagingLayout(settings.home).identity_dir(), staging_files(settings, sources, "records"),
                              {s: source_fingerprint(settings, s) for s in sources}, settings.split_seed)
    pairs = identity.pair_counts()
    if as_json:
        click.echo(json.dumps({"sources": sources, "pairs": pairs, "stats": identity.stats}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"duplicate groups across {', '.join(sources)}")
    for col in ("source", "source", "groups"):
        table.add_column(col, justify="right" if col == "groups" else "left")
    for p in pairs:
        table.add_row(p["source_a"], p["source_b"], str(p["groups"]))
    console = Console()
    console.print(table if pairs else "no duplicates between or within the staged sources")
    console.print(f"{identity.duplicates.num_rows} records in duplicate groups; "
                  f"{'computed now' if identity.recomputed else 'cached (staging/_identity)'}")


@main.command()
@click.argument("url")
@click.option("--home", type=click.Path(path_type=Path), default=None)
def push(url: str, home: Path | None) -> None:
    """Upload HOME/releases to URL (data first, then manifests, LATEST last)."""
    from shardsmith.publish.object_store import push as push_tree

    root = (home or settings_from_env().home).resolve() / "releases"
    click.echo(json.dumps(push_tree(root, url)))


@main.command()
@click.argument("url")
@click.option("--home", type=click.Path(path_type=Path), default=None)
def pull(url: str, home: Path | None) -> None:
    """Download releases from URL into HOME/releases, verifying every sha256 before LATEST moves."""
    from shardsmith.publish.object_store import PullVerificationError
    from shardsmith.publish.object_store import pull as pull_tree

    root = (home or settings_from_env().home).resolve() / "releases"
    try:
        result = pull_tree(url, root)
    except PullVerificationError as e:
        raise click.ClickException(f"pull refused: {e}") from e
    click.echo(json.dumps(result, default=str))


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
