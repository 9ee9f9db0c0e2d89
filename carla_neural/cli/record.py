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
from carla_neural.cli.style_options import resolve_style, style_options

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
@click.option("--styles", "style_list", default=None, metavar="K,K,...",
              help="A style sweep: one run per style, OUT/style_K, all of the same label video (the first "
                   "is simulated, the others replay its label maps); 'default' adds the run without a "
                   "style, the reference of `compare OUT`; writes OUT/styles.json. Checkpoints with styles "
                   "only (docs/styles.md).")
@style_options
@source_options
@render_options
@adapt_options
def command(scenario_ref: str | None, out_dir: Path, frames: int | None, png: bool, overwrite: bool,
            replay_dir: Path | None, style_list: str | None, style_index: int | None, style_photo: Path | None,
            style_labels: Path | None, world: str, host: str, port: int, timeout_s: float, checkpoint: str | None,
            engine: str | None, device: str, worker_endpoint: str | None, cpu_split: bool,
            threads: int | None, adapt_labels: bool | None, transform_config: Path | None) -> None:
    """Run SCENARIO (a YAML file or a built-in name such as urban_day) and record it.

    Every frame is rendered, in order (lock-step). Built-in scenarios: urban_day, rain_night,
    highway, dense_traffic. With --replay RUN, the label maps of an earlier run are rendered
    again (e.g. with another --checkpoint), so that `compare` can set the two side by side.
    With --styles 0,1,2 the same label video is recorded once per style.
    """
    from carla_neural.runs import default_checkpoint
    from scenarios.runner import check_carla, read_scenario, scenario_of_run

    if scenario_ref is None and replay_dir is None:
        raise click.UsageError("name a SCENARIO (a YAML file or urban_day, rain_night, highway, "
                               "dense_traffic), or --replay RUN")
    if replay_dir is not None and out_dir.resolve() == replay_dir.resolve():
        raise click.UsageError("--out must differ from --replay: the replayed run is read while recording")
    styles = _parse_styles(style_list)
    if styles and (style_index is not None or style_photo is not None):
        raise click.UsageError("give --styles K,K,... or one --style / --style-from, not both")
    targets = [out_dir / f"style_{k}" for k in styles] if styles else [out_dir]
    for target in targets:
        if (target / "run.json").exists() and not overwrite:
            raise click.ClickException(f"{target} already holds a run; choose another --out or pass --overwrite")
    try:
        scenario = read_scenario(scenario_ref) if scenario_ref else scenario_of_run(replay_dir)
        chosen = checkpoint or scenario.rendering.checkpoint or default_checkpoint(world)
        # Every style is checked against the checkpoint before anything is simulated or written.
        choices = ([resolve_style(chosen, None if k == "default" else k, None, None) for k in styles] if styles
                   else [resolve_style(chosen, style_index, style_photo, style_labels)])
        backends = [backend_spec(chosen, engine or scenario.rendering.engine, device, worker_endpoint, cpu_split,
                                 threads, style=choice) for choice in choices]
        if world == "carla" and replay_dir is None:
            check_carla(host, port, timeout_s)  # fail fast, before starting the worker
        for index, (backend, target) in enumerate(zip(backends, targets)):
            # The sweep's later styles replay the first one's label maps: identical label video.
            source_run = replay_dir if index == 0 else targets[0]
            _record_one(scenario, backend, target, world, host, port, timeout_s, source_run, frames,
                        png or (bool(styles) and index == 0), adapt_labels, transform_config)
    except user_errors() as error:
        log.debug("record failed", exc_info=True)
        raise click.ClickException(str(error)) from None
    if styles:
        index_path = out_dir / "styles.json"
        index_path.write_text(json.dumps({
            "scenario": scenario.name, "checkpoint": chosen, "styles": styles,
            "runs": [target.name for target in targets], "label_video_from": targets[0].name}, indent=2) + "\n")
        click.echo(f"style sweep: {len(styles)} runs of {scenario.name} (styles {style_list}) -> "
                   f"{', '.join(str(t) for t in targets)}; {index_path}; set them side by side with "
                   f"`carla-neural compare {out_dir}`")


def _parse_styles(value: str | None) -> list[int | str]:
    """'default,0,1,2' -> ['default', 0, 1, 2]: distinct style indices 0..63, and 'default' for
    the rendering without --style (the sweep's reference); UsageError naming --styles otherwise."""
    if value is None:
        return []
    try:
        styles: list[int | str] = [part.strip() if part.strip() == "default" else int(part)
                                   for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.UsageError(f"--styles {value!r}: give style indices separated by commas, e.g. "
                               "default,0,1,2") from None
    if not styles or len(set(styles)) != len(styles) or not all(
            k == "default" or 0 <= int(k) <= 63 for k in styles):
        raise click.UsageError(f"--styles {value!r}: give distinct style indices 0..63 (or 'default'), "
                               "e.g. default,0,1,2")
    return styles


def _record_one(scenario, backend, out_dir: Path, world: str, host: str, port: int, timeout_s: float,
                replay_dir: Path | None, frames: int | None, png: bool, adapt_labels: bool | None,
                transform_config: Path | None) -> None:
    """Record one run of ``scenario`` into ``out_dir`` and print its closing line."""
    from carla_neural.runs import open_run
    from scenarios.runner import record_spec

    spec = record_spec(scenario, backend, out_dir, world=world, host=host, port=port, timeout_s=timeout_s,
                       replay_dir=replay_dir, frames=frames, png=png, adapt_labels=adapt_labels,
                       transform_config=transform_config)
    try:
        with terminate_as_interrupt(), open_run(spec, summary_extra={"scenario": scenario.name}) as run:
            bar = _progress(run.total_frames or 0)
            try:
                run.run(on_frame=lambda _: bar.update(1))
            finally:
                bar.close()
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the frames recorded so far are in {out_dir}", err=True)
        sys.exit(130)
    summary = run.summary or {}
    files = ", ".join(summary.get("files", []))
    style = f" in {backend.style.label}" if backend.style is not None else ""
    click.echo(
        f"recorded {summary['frames']} frames of {scenario.name} ({run.source_text}){style} "
        f"at {summary['pipeline']['fps']} fps to {out_dir}: {files}"
    )
    if summary.get("pipeline", {}).get("unknown_tags_px"):
        click.echo("unknown tags mapped to unlabeled: " + json.dumps(summary["pipeline"]["unknown_tags_px"]),
                   err=True)


def _progress(total: int):
    """A tqdm bar on stderr for `total` frames."""
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="record", file=sys.stderr, leave=False)
