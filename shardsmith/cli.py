"""``shardsmith``: build, demo, releases, verify, labels."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click

from shardsmith import config
from shardsmith.config import settings_from_env


class UserError(click.ClickException):
    """A user's mistake: one ``Error:`` line on stderr and exit code 2, never a traceback."""

    exit_code = 2


def _errors(problems: list[str]) -> None:
    """Several ``Error:`` lines (every precondition that failed), then exit 2."""
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    raise SystemExit(2)


class _Plain(logging.Formatter):
    """Quiet mode: ``warning: message`` lines, no timestamps or logger names."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if record.levelno < logging.WARNING or text.startswith("warning:") \
            else f"{record.levelname.lower()}: {text}"


def _setup_logging(verbose: bool) -> None:
    """Quiet by default (warnings that matter, one line each); ``--verbose`` brings back INFO and
    DEBUG of shardsmith, Dagster's events, GX and alembic, with timestamps and logger names."""
    handler = logging.StreamHandler(sys.stderr)
    if verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_Plain())
        handler.setLevel(logging.WARNING)  # GX pins some of its loggers at INFO; the handler decides
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    quiet = ("great_expectations", "dagster", "alembic", "urllib3", "filelock", "numba", "matplotlib", "PIL")
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show every log line (Dagster events, GX, alembic).")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Build research datasets from public medical images and Werewolf games."""
    ctx.obj = {"verbose": verbose}
    _setup_logging(verbose)


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("verbose"))


def _home(home: Path | None) -> Path:
    return (home or settings_from_env().home).resolve()


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


def failure_lines(summary: dict) -> list[str]:
    """Why a build failed, one line per cause: the step's error, then each failed expectation with
    its table, column and failing-row count, then where the Data Docs are."""
    lines = []
    for e in summary.get("errors", []):
        lines += [f"error: {e['step']}: {e['message']}", *(f"  {d.strip()}" for d in e.get("details", []))]
    for c in summary.get("check_failures", []):
        head = f"check failed: {c['asset']}:{c['check']}"
        for f in c["failures"][:10]:
            lines.append(f"{head}: {f.get('suite')} {f.get('expectation')} column={f.get('column')} "
                         f"failing_rows={f.get('unexpected_count')}")
        lines += [f"{head}: {name}: {detail}" for name, detail in c["integrity"].items()]
        lines += [f"{head}: {name}: {detail}" for name, detail in c["detail"].items()]
        if not (c["failures"] or c["integrity"] or c["detail"]):
            lines.append(head)
        if c.get("data_docs"):
            lines.append(f"{head}: Data Docs: {c['data_docs']}")
    return lines


def _summary_table(summary: dict) -> None:
    """The human end of a build: one row per run, then the failures, then the releases."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    if not summary["steps"] and summary["success"]:  # the plan found nothing stale: no run started
        console.print(f"[green]success[/] in {summary['seconds']} s: nothing to do, "
                      f"{len(summary['reused'])} steps reused")
        return
    table = Table(title="shardsmith build", show_lines=False)
    for col, just in (("run", "left"), ("status", "left"), ("built", "right"), ("reused", "right"),
                      ("seconds", "right")):
        table.add_column(col, justify=just)
    for step in summary["steps"]:
        status = "[green]ok[/]" if step["ok"] else f"[red]FAILED[/] {', '.join(step['failed'])}"
        table.add_row(step["label"], status, str(step["built"]), str(step["reused"]), str(step["seconds"]))
    console.print(table)
    if summary["failed_sources"]:
        console.print(f"[red]sources that failed to stage:[/] {', '.join(summary['failed_sources'])}"
                      + (" (release built without them: --allow-partial)" if summary.get("partial") else ""))
    for line in failure_lines(summary):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    verdict = "[green]success[/]" if summary["success"] else "[red]failed[/]"
    console.print(f"{verdict} in {summary['seconds']} s, {summary['runs']} run(s)")


class _RichProgress(logging.Handler):
    """Turns ``shardsmith.progress`` records into rich progress bars (one per source or part)."""

    def __init__(self, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=False)
        self.tasks: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        info = getattr(record, "progress", None)
        if info is None:
            if self.verbose:
                self.progress.console.print(record.getMessage(), highlight=False)
            return
        label, done, total = info
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], completed=done, total=total)


def _build_and_report(home: Path, sources: tuple[str, ...], workers: int | None, allow_partial: bool,
                      as_json: bool) -> dict:
    from shardsmith.defs.run import run_build
    from shardsmith.pipeline.preflight import PreflightError

    verbose = _verbose()
    bars = None
    progress_log = logging.getLogger("shardsmith.progress")
    if not as_json and sys.stderr.isatty():
        bars = _RichProgress(verbose)
        progress_log.addHandler(bars)
        progress_log.propagate = False
        progress_log.setLevel(logging.INFO)  # the bars' records are INFO; the root stays at WARNING
        bars.progress.start()
    if as_json:
        say = lambda msg: None  # noqa: E731
    elif bars is not None:  # through the live display, which would otherwise draw over the line
        say = lambda msg: bars.progress.console.print(msg, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    else:
        say = lambda msg: click.echo(msg, err=True)  # noqa: E731
    try:
        summary = run_build(home, sources=sources, workers=workers, allow_partial=allow_partial,
                            verbose=verbose, say=say)
    except PreflightError as e:
        _errors(e.problems)
    finally:
        if bars is not None:
            bars.progress.stop()
            progress_log.removeHandler(bars)
            progress_log.propagate = True
            progress_log.setLevel(logging.NOTSET)
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
    home = _home(home)
    if dry_run:
        from shardsmith.pipeline.plan import plan_build
        from shardsmith.pipeline.preflight import PreflightError, build_settings, select

        settings = build_settings(home, workers)
        try:
            chosen = select(settings, sources, allow_partial=allow_partial)
        except PreflightError as e:
            _errors(e.problems)
        plan = plan_build(settings, chosen.medical, chosen.games)
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
@_JSON
def sources(as_json: bool) -> None:
    """List the registered sources (built-in and installed plugins) with their declared facts."""
    from rich.console import Console
    from rich.table import Table

    from shardsmith.sources.registry import facts

    if as_json:
        click.echo(json.dumps(facts(), indent=2, ensure_ascii=False))
        return
    table = Table(title="shardsmith sources")
    for col in ("name", "collection", "partitioned", "licence", "homepage"):
        table.add_column(col)
    for name, f in facts().items():
        table.add_row(name, f["collection"], "yes" if f["partitioned"] else "no",
                      f["licence"] + (" (gated)" if f["gated"] else ""), f["homepage"])
    Console().print(table)


def _release_path(root: Path, collection: str, version: str) -> Path:
    """``root/version`` of a published release, or a UserError naming what exists."""
    from shardsmith.publish.release import list_versions

    versions = list_versions(root) if root.is_dir() else []
    if not versions:
        raise UserError(f"no {collection} release under {root.parent}: run `shardsmith build` first")
    if version != "latest" and version not in versions:
        raise UserError(f"{collection} has no version {version!r}; published: {', '.join(versions)}")
    return root / version


@main.command()
@click.argument("v1")
@click.argument("v2")
@click.option("--collection", default="medical")
@click.option("--home", type=click.Path(path_type=Path), default=None)
@_JSON
def diff(v1: str, v2: str, collection: str, home: Path | None, as_json: bool) -> None:
    """Rows added, removed and changed between two versions of a release (by key and content)."""
    from shardsmith.publish.diff import diff_releases

    root = _home(home) / "releases" / collection
    for version in (v1, v2):
        _release_path(root, collection, version)
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
    from shardsmith.pipeline.releases import enabled_sources, source_fingerprint, staging_files

    settings = settings_from_env(home)
    sources = enabled_sources(settings, "medical")
    if not sources:
        raise UserError(f"no staged medical records under {settings.staging}: run `shardsmith build`")
    identity = stage_identity(settings.layout.identity_dir(), staging_files(settings, sources, "records"),
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


def _mirror(verb: str, run: Callable[[], dict]) -> None:
    """Run a push or pull: a URL with no usable remote is a usage error (exit 2), a refusal one
    ``Error:`` line (exit 1), the summary JSON otherwise."""
    from shardsmith.publish.object_store import ObjectStoreError, RemoteURLError

    try:
        result = run()
    except RemoteURLError as e:
        raise UserError(str(e)) from None
    except ObjectStoreError as e:
        raise click.ClickException(f"{verb} refused: {e}") from e
    click.echo(json.dumps(result))


@main.command()
@click.argument("url")
@click.option("--home", type=click.Path(path_type=Path), default=None)
def push(url: str, home: Path | None) -> None:
    """Upload HOME/releases to URL: files whose remote sha256 differs, then manifests, LATEST last."""
    from shardsmith.publish.object_store import push as push_tree

    root = _home(home) / "releases"
    _mirror("push", lambda: push_tree(root, url))


@main.command()
@click.argument("url")
@click.option("--home", type=click.Path(path_type=Path), default=None)
def pull(url: str, home: Path | None) -> None:
    """Download releases from URL into HOME/releases: all verified before any is renamed into place."""
    from shardsmith.publish.object_store import pull as pull_tree

    root = _home(home) / "releases"
    _mirror("pull", lambda: pull_tree(url, root))


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None)
def releases(home: Path | None) -> None:
    """List published releases (* marks LATEST)."""
    print_releases(_home(home))


@main.command()
@click.argument("collection", default="medical")
@click.option("--home", type=click.Path(path_type=Path), default=None)
@click.option("--version", default="latest")
def verify(collection: str, home: Path | None, version: str) -> None:
    """Re-hash every file of a release against its manifest."""
    from shardsmith.loaders import open_release

    root = _home(home) / "releases"
    _release_path(root / collection, collection, version)
    try:
        rel = open_release(root, collection, version)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    report = rel.verify(raise_on_error=False)
    click.echo(json.dumps({"release": f"{collection}/{rel.version}", "ok": report.ok, "files": report.files,
                           "problems": report.problems}))
    if not report.ok:
        raise SystemExit(1)


@main.command("export-eval")
@click.argument("table", type=click.Choice(["speech_items"]))
@click.option("--format", "fmt", type=click.Choice(["lm-eval"]), default="lm-eval", show_default=True,
              help="the evaluation harness the task is written for")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--collection", default="werewolf", show_default=True)
@click.option("--home", type=click.Path(path_type=Path), default=None)
@click.option("--version", default="latest")
def export_eval_cmd(table: str, fmt: str, out: Path, collection: str, home: Path | None, version: str) -> None:
    """Write TABLE of a release as a task an LLM evaluation harness loads (no model is run)."""
    from shardsmith.loaders import open_release
    from shardsmith.publish.eval_export import export_eval

    root = _home(home) / "releases"
    _release_path(root / collection, collection, version)
    try:
        written = export_eval(open_release(root, collection, version), table, fmt, out)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    click.echo(json.dumps({k: str(v) for k, v in written.items()}))


@main.command()
@click.argument("source")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def labels(source: str, root: Path, as_json: bool) -> None:
    """Harmonised label statistics from the label files under ROOT (no pixels)."""
    from shardsmith.pipeline.preflight import unknown_source_problem
    from shardsmith.sources.registry import game_source_names, get_source, source_class, source_names

    if source not in source_names():
        raise UserError(unknown_source_problem(source))
    if not get_source(source).detect(root):
        raise UserError(f"{root} holds no label files of {source} (expected: {'; '.join(source_class(source).layouts)})")
    if source in game_source_names():
        from shardsmith.staging.games import label_stats as game_stats

        click.echo(json.dumps(game_stats(source, root), indent=2, ensure_ascii=False))
        return
    from shardsmith.sources.medical.stats import label_stats

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
