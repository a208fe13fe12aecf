"""One error base for everything that becomes a quarantine row or a refused input.

Each error carries a machine-readable ``reason`` (the quarantine reason, a stable snake_case
word) beside its human ``detail``, and pickles with both, so an error raised in a worker process
arrives in the parent as the same class with the same reason.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type, reason: str, detail: str, state: dict) -> ShardsmithError:
    err = cls.__new__(cls)
    Exception.__init__(err, detail)
    err.__dict__.update(state)
    err.reason, err.detail = reason, detail
    return err


class ShardsmithError(Exception):
    """Base class: ``reason`` for machines, ``detail`` for people.

    ``str()`` is the detail; classes whose detail reads poorly without its code set
    ``reason_in_str`` so that ``str()`` is ``"<reason>: <detail>"``.
    """

    default_reason = "error"
    reason_in_str = False

    def __init__(self, reason: str | None = None, detail: str = "") -> None:
        super().__init__(detail)
        self.reason = reason or self.default_reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("reason", "detail")}
        return (_rebuild, (type(self), self.reason, self.detail, state))

    def __str__(self) -> str:
        if self.reason_in_str and self.detail:
            return f"{self.reason}: {self.detail}"
        return self.detail or self.reason


class RecordError(ShardsmithError):
    """An item that cannot become a record; becomes a quarantine row with ``reason``."""


class LabelFileError(ShardsmithError, ValueError):
    """A whole label file is unusable (wrong columns, unreadable, wrong encoding); the message
    names the file and line."""

    default_reason = "label_file_invalid"

    def __init__(self, detail: str, reason: str | None = None) -> None:
        super().__init__(reason, detail)


class SourceFailedError(ShardsmithError):
    """A whole source could not be staged (its label file is broken, say); other sources go on."""

    default_reason = "source_failed"
