"""Scenario sweeps on Ray: a sweep file names a base scenario and axes; every cell of the grid is
one `carla-neural record` run folder, written by its own Ray task in its own process.

schema.py (the sweep file), cells.py (expanding the grid, the run-folder completeness rule),
tasks.py (the Ray task that runs one cell), runner.py (submitting, retrying, Ctrl-C),
index.py (sweep.json and index.html). Ray is the optional extra `sweep`.
"""
