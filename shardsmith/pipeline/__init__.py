"""The build seam: the one layer that owns a build.

``keys`` names every asset; ``plan`` says which stages and parts are stale and why; ``releases``
is the release step (partial-release policy, reuse of LATEST, identity -> views -> validation ->
publish); ``preflight`` checks what must hold before anything runs; ``run`` drives a whole build
through Dagster. ``defs/`` declares assets that call these functions and ``cli.py`` parses
arguments and renders what they return. Nothing here imports Dagster except ``run``, which
materialises the graph in-process.
"""
