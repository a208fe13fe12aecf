"""The build seam: the one layer that owns a build, below Dagster.

``keys`` names every asset; ``preflight`` checks what must hold before anything runs and chooses
the sources; ``plan`` says which stages and parts are stale and why; ``releases`` is the release
step (partial-release policy, reuse of LATEST, identity -> views -> validation -> publish).
``defs/`` declares assets that call these functions, ``defs/run.py`` drives a whole build through
Dagster, and ``cli.py`` parses arguments and renders what they return. Nothing here imports
Dagster (``tests/test_layers.py``).
"""
