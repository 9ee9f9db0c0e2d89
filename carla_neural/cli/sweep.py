"""`carla-neural sweep SWEEP.yaml --out DIR`: record a grid of scenario variations on Ray."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from carla_neural.cli._live import terminate_as_interrupt


@click.command(name="sweep")
@click.argument("sweep_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Sweep folder: one run folder per cell, logs/, scenarios/, sweep.json, index.html. "
                   "On a cluster, a path every node mounts.")
@click.option("--ray-address", envvar="RAY_ADDRESS", default=None, metavar="ADDR",
              help="A running Ray cluster (e.g. 10.0.0.5:6379); default: start Ray on this machine.")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None,
              help="Cells in flight at once (default: as many as the cluster's resources allow).")
@click.option("--compare", "compare", is_flag=True,
              help="Run `carla-neural compare` on each finished cell; the index shows its headline figures.")
@click.option("--compare-metrics", default="warp,tof", show_default=True,
              help="Metrics for --compare (see `carla-neural compare --metrics`); fid is slow on CPUs.")
@click.option("--overwrite", is_flag=True, help="Record again cells whose folders hold another scenario's run.")
def command(sweep_file: Path, out_dir: Path, ray_address: str | None, max_parallel: int | None, compare: bool,
            compare_metrics: str, overwrite: bool) -> None:
    """Record every cell of SWEEP_FILE's grid (base scenario x axes) as a run folder under --out.

    Cells whose run folders are complete are skipped, so a stopped sweep resumes where it was;
    cells that die are retried (`retries` in the file) and then reported with their log.
    """
    from carla_neural.cli.compare import _parse_metrics
    from scenarios.sweep.cells import expand_cells
    from scenarios.sweep.index import write_summary
    from scenarios.sweep.runner import run_sweep
    from scenarios.sweep.schema import SweepError, load_sweep

    try:
        sweep = load_sweep(sweep_file)
        cells = expand_cells(sweep, sweep_file)
        metrics = ",".join(_parse_metrics(compare_metrics)) if compare else None
        if metrics and not sweep.png and {"warp", "color"} & set(metrics.split(",")):
            raise SweepError(f"{sweep_file}: png: false, but --compare-metrics {metrics} needs PNG frames "
                             "(warp, color); set png: true or use --compare-metrics tof")
        with terminate_as_interrupt():
            outcome = run_sweep(sweep, cells, out_dir, ray_address=ray_address, max_parallel=max_parallel,
                                compare_metrics=metrics, overwrite=overwrite, progress=_progress(sweep.name))
    except SweepError as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:  # before any cell was submitted (Ray starting): nothing to keep
        click.echo(f"\ninterrupted before {sweep_file} started; nothing recorded", err=True)
        sys.exit(130)
    sweep_json, index_html = write_summary(sweep, sweep_file, outcome, out_dir)
    for result in outcome.results:
        if result.status == "failed":
            click.echo(f"failed: {result.error}", err=True)
    counts = ", ".join(f"{outcome.count(status)} {status}" for status in ("done", "skipped", "failed",
                                                                          "interrupted", "pending")
                       if outcome.count(status))
    click.echo(f"{'interrupted: ' if outcome.interrupted else ''}sweep {sweep.name}: {len(cells)} cells "
               f"({counts}) in {outcome.wall_s:.1f} s; wrote {sweep_json}, {index_html}")
    if outcome.interrupted:
        sys.exit(130)
    if outcome.count("failed"):
        sys.exit(1)


def _progress(name: str):
    """A tqdm bar over cells, on stderr."""
    def bar(total: int):
        from tqdm import tqdm

        return tqdm(total=total, unit="cell", desc=name, file=sys.stderr, dynamic_ncols=True)
    return bar
