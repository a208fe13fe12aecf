"""The one resource every asset uses: where data lives and how images are stored."""


import dagster as dg

from shardsmith.config import ImageOptions, Settings, settings_from_env


class ShardsmithResource(dg.ConfigurableResource):
    """Points the graph at a SHARDSMITH_HOME; empty ``home`` means the environment's default."""

    home: str = ""
    image_max_side: int = 1024
    image_bit_depth: int = 8

    def settings(self) -> Settings:
        base = settings_from_env(self.home or None)
        return Settings(home=base.home, image=ImageOptions(self.image_max_side, self.image_bit_depth))
