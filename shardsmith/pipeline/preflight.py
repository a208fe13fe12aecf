"""What must hold before a build runs, checked before anything runs.

Each problem is one sentence a user can act on; the CLI prints each as one ``Error:`` line and
exits 2. Warnings are facts that do not stop the build but change what it publishes (a missing
optional extra: the affected games are quarantined with ``needs_extra_<name>``, as the README
promises, so it is not an error).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from shardsmith import config
from shardsmith.config import Settings, settings_from_env


class PreflightError(Exception):
    """The build cannot start; ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class Selection:
    """The sources a build covers, by collection, and the warnings found choosing them."""

    medical: list[str] = field(default_factory=list)
    games: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return self.medical + self.games


def build_settings(home: Path, workers: int | None = None, allow_partial: bool = False) -> Settings:
    """The settings of one build (or dry run: the plan must judge what a build would do), made
    once and handed down; child processes see ``home`` through the environment."""
    config.export_home(home)
    return settings_from_env(home, workers=workers, allow_partial=allow_partial or None)


def did_you_mean(name: str, known: list[str]) -> str:
    """`` (did you mean x?)`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_source_problem(name: str) -> str:
    """The sentence for a source name nobody registered."""
    from shardsmith.sources.registry import source_names

    known = source_names()
    return f"unknown source {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"


def select(settings: Settings, sources: tuple[str, ...] = (), allow_partial: bool = False) -> Selection:
    """The sources to build (those under ``raw/``, or ``sources``), or :class:`PreflightError`.

    Checks, all reported at once: the pseudonym key; that ``raw/`` exists and holds something;
    named sources are registered and have a raw folder; a raw folder of a registered source is in
    one of the source's layouts (otherwise it would be skipped and missing from the release
    without a word); every source module and plugin imported (a broken one would vanish from the
    release) unless ``allow_partial``.
    """
    from shardsmith.sources.registry import load_failures, source_class, source_names

    problems: list[str] = []
    warnings: list[str] = []
    if config.pseudonym_key() is None:
        problems.append(f"{config.KEY_ENV} is not set: patient ids are pseudonymised with a keyed hash, so "
                        f"set a secret key (or {config.DEMO_ENV}=1 for demo data only)")
    for failure in load_failures():
        text = f"source {failure.origin} could not be loaded ({failure.error})"
        if allow_partial:
            warnings.append(text + "; building without it (--allow-partial)")
        else:
            problems.append(text + "; fix or uninstall it, or pass --allow-partial to build without it")
    known = source_names()
    unknown = [s for s in sources if s not in known]
    problems += [unknown_source_problem(s) for s in unknown]
    if not settings.raw.is_dir():
        problems.append(f"{settings.raw} does not exist: put each dataset in raw/<source>/ in its native "
                        "layout (`shardsmith sources` lists them)")
        raise PreflightError(problems)
    present = sorted(p.name for p in settings.raw.iterdir() if p.is_dir() and not p.name.startswith("."))
    wanted = [s for s in sources if s in known] if sources else [s for s in present if s in known]
    for name in wanted:
        root = settings.raw_dir(name)
        if not root.is_dir():
            problems.append(f"no raw data for {name}: {root} does not exist")
            continue
        from shardsmith.sources.registry import get_source

        if not get_source(name, settings).detect(root):
            layouts = "; ".join(source_class(name).layouts)
            problems.append(f"{root} is not in a layout of {name} (expected: {layouts})")
    strays = [p for p in present if p not in known]
    warnings += [f"raw/{p} is not a known source{did_you_mean(p, known)}; ignored" for p in strays if not sources]
    if not wanted and not problems:
        problems.append(f"nothing to build: no known source under {settings.raw}")
    if problems:
        raise PreflightError(problems)
    selection = Selection(
        medical=[n for n in wanted if source_class(n).collection == "medical"],
        games=[n for n in wanted if source_class(n).collection == "werewolf"],
        warnings=warnings,
    )
    selection.warnings += extras_warnings(settings, selection)
    return selection


def extras_warnings(settings: Settings, selection: Selection) -> list[str]:
    """Optional extras the selected sources would use that are not installed."""
    from shardsmith.sources.registry import source_class

    asr = [s for s in selection.games if source_class(s).needs_asr]
    if not asr:
        return []
    from shardsmith.speech.select import absent_modules

    absent = absent_modules(settings.speech)
    extras = sorted({extra for _, extra in absent})
    return [f"{', '.join(asr)}: games that need transcription are quarantined needs_extra_{extra} (missing "
            f"{', '.join(m for m, e in absent if e == extra)}; pip install 'shardsmith[{extra}]')"
            for extra in extras]
