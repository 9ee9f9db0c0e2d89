"""`carla-neural record SCENARIO --out RUN`: run a scenario in lock-step mode and record every stream."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from carla_neural.cli._live import (
    adapt_options,
    backend_spec,
    render_options,
    source_options,
    terminate_as_interrupt,
    user_errors,
)

log = logging.getLogger(__name__)


@click.command(name="record")
@click.argument("scenario_ref", metavar="[SCENARIO]", required=False)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder to write (videos, PNG frames, frames.jsonl, run.json, summary.json).")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Frames to record (default: the scenario's duration).")
@click.option("--png/--no-png", default=True, show_default=True,
              help="Also write every frame as PNG (raw, neural, label_ids, instance_ids, flow).")
@click.option("--overwrite", is_flag=True, help="Write into --out even if it already holds a run.")
@click.option("--replay", "replay_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Re-render an earlier run folder (its label maps; no simulator) instead "
                                 "of simulating; SCENARIO defaults to the one it was recorded from.")
@source_options
@render_options
@adapt_options
def command(scenario_ref: str | None, out_dir: Path, frames: int | None, png: bool, overwrite: bool,
            replay_dir: Path | None, world: str, host: str, port: int, timeout_s: float, checkpoint: str | None,
            engine: str | None, device: str, worker_endpoint: str | None, cpu_split: bool,
            threads: int | None, adapt_labels: bool | None, transform_config: Path | None) -> None:
    """Run SCENARIO (a YAML file or a built-in name such as urban_day) and record it.

    Every frame is rendered, in order (lock-step). Built-in scenarios: urban_day, rain_night,
    highway, dense_traffic. With --replay RUN, the label maps of an earlier run are rendered
    again (e.g. with another --checkpoint), so that `compare` can set the two side by side.
    """
    from carla_neural.runs import open_run
    from scenarios.runner import check_carla, read_scenario, record_spec, scenario_of_run

    if scenario_ref is None and replay_dir is None:
        raise click.UsageError("name a SCENARIO (a YAML file or urban_day, rain_night, highway, "
                               "dense_traffic), or --replay RUN")
    if replay_dir is not None and out_dir.resolve() == replay_dir.resolve():
        raise click.UsageError("--out must differ from --replay: the replayed run is read while recording")
    if (out_dir / "run.json").exists() and not overwrite:
        raise click.ClickException(f"{out_dir} already holds a run; choose another --out or pass --overwrite")
    try:
        scenario = read_scenario(scenario_ref) if scenario_ref else scenario_of_run(replay_dir)
        backend = backend_spec(checkpoint or scenario.rendering.checkpoint, engine or scenario.rendering.engine,
                               device, worker_endpoint, cpu_split, threads)
        if world == "carla" and replay_dir is None:
            check_carla(host, port, timeout_s)  # fail fast, before starting the worker
        spec = record_spec(scenario, backend, out_dir, world=world, host=host, port=port, timeout_s=timeout_s,
                           replay_dir=replay_dir, frames=frames, png=png, adapt_labels=adapt_labels,
                           transform_config=transform_config)
        with terminate_as_interrupt(), open_run(spec, summary_extra={"scenario": scenario.name}) as run:
            bar = _progress(run.total_frames or 0)
            try:
                run.run(on_frame=lambda _: bar.update(1))
            finally:
                bar.close()
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the frames recorded so far are in {out_dir}", err=True)
        sys.exit(130)
    except user_errors() as error:
        log.debug("record failed", exc_info=True)
        raise click.ClickException(str(error)) from None
    summary = run.summary or {}
    files = ", ".join(summary.get("files", []))
    click.echo(
        f"recorded {summary['frames']} frames of {scenario.name} ({run.source_text}) "
        f"at {summary['pipeline']['fps']} fps to {out_dir}: {files}"
    )
    if summary.get("pipeline", {}).get("unknown_tags_px"):
        click.echo("unknown tags mapped to unlabeled: " + json.dumps(summary["pipeline"]["unknown_tags_px"]),
                   err=True)


def _progress(total: int):
    """A tqdm bar on stderr for `total` frames."""
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="record", file=sys.stderr, leave=False)
