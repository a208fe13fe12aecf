"""The one outcome of a blocking check, whoever runs it (a release's integrity checks, a staged
part's suites and counts, a task view's references).

Kept free of pandas and GX so the staging steps and the Dagster layer can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckOutcome:
    """``name`` says which check; ``detail`` and ``examples`` say why it failed; ``metadata`` carries
    what a caller attaches to an asset check (counts, suite results, the Data Docs page)."""

    name: str
    passed: bool
    detail: str = ""
    examples: list = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The outcome as a release's validation summary lists it (no metadata when there is none)."""
        out = {"name": self.name, "passed": self.passed, "detail": self.detail, "examples": list(self.examples)}
        if self.metadata:
            out["metadata"] = self.metadata
        return out
