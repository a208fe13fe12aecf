"""shardsmith: research datasets from public medical images and Werewolf games."""

__version__ = "0.1.0"
