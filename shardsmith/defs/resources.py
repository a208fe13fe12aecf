"""The one resource every asset uses: the run's :class:`Settings`.

Fields left empty come from the environment (``config.ENV`` lists every variable), so
``dagster dev`` and a deployed code location are configured the usual Dagster way; the CLI sets
the fields it was given on the command line.
"""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from shardsmith.config import Settings, settings_from_env


class ShardsmithResource(dg.ConfigurableResource):
    """Points the graph at a SHARDSMITH_HOME; empty/zero fields mean "the environment's value"."""

    home: str = ""
    image_max_side: int = -1
    image_bit_depth: int = 0
    workers: int = -1
    allow_partial: bool = False
    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Made once per run and handed to every step of it (settings are frozen)."""
        self._settings = self._make()

    def settings(self) -> Settings:
        """The run's settings (made at resource setup; made now outside a run, e.g. in a sensor)."""
        return self._settings if self._settings is not None else self._make()

    def _make(self) -> Settings:
        base = settings_from_env(self.home or None)
        image = base.image
        if self.image_max_side >= 0 or self.image_bit_depth:
            from shardsmith.config import ImageOptions

            image = ImageOptions(self.image_max_side if self.image_max_side >= 0 else image.max_side,
                                 self.image_bit_depth or image.bit_depth)
        return base.with_overrides(image=image, workers=self.workers if self.workers >= 0 else None,
                                   allow_partial=True if self.allow_partial else None)
