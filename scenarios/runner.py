"""Run scenarios: find and read them, open their source (CARLA, the built-in world or a replayed
run) and record them in lock-step mode."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carla_neural.sources.base import Source
from scenarios.mapping import carla_config, describe_builtin, world_config
from scenarios.schema import Scenario, ScenarioError, load_scenario

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


def builtin_scenarios() -> dict[str, Path]:
    """Names of the scenarios shipped in scenarios/builtin/ and their files."""
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.yaml"))}


def resolve_scenario(name_or_path: str | Path) -> Path:
    """A scenario file path from a path or a built-in scenario's name (e.g. "urban_day")."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = builtin_scenarios()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise ScenarioError(
        f"no scenario file {str(name_or_path)!r} and no built-in scenario of that name; "
        f"built-in: {', '.join(shipped)}"
    )


def read_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario given by path or built-in name."""
    return load_scenario(resolve_scenario(name_or_path))


def open_builtin(scenario: Scenario) -> Source:
    """The built-in world set up as `scenario`'s counterpart."""
    from carla_neural.sources.world import BuiltinWorld

    return BuiltinWorld(world_config(scenario))


def step_seconds(scenario: Scenario, source: Source) -> float:
    """Simulated seconds per frame of `source` running `scenario` (the built-in world's is fixed)."""
    from carla_neural.sources.replay import ReplaySource
    from carla_neural.sources.world import builtin

    if isinstance(source, ReplaySource):
        return 1.0 / source.fps
    if isinstance(source, builtin.BuiltinWorld):
        if abs(scenario.fixed_delta_s - builtin.FIXED_DELTA_S) > 1e-9:
            log.warning("the built-in world steps %.3f s per frame, not the scenario's %.3f s",
                        builtin.FIXED_DELTA_S, scenario.fixed_delta_s)
        return builtin.FIXED_DELTA_S
    return scenario.fixed_delta_s


def drive_scenario(scenario_ref: str | Path | None = None, *, map_name: str | None = None,
                   size: tuple[int, int] | None = None, fov: float | None = None,
                   vehicles: int | None = None, walkers: int | None = None,
                   autopilot: bool = False) -> Scenario:
    """The scenario `drive` sets the world up from: a file or built-in name, or a plain drive,
    with command-line overrides applied (and validated like a file)."""
    from scenarios.schema import parse_scenario

    if scenario_ref is not None:
        document = read_scenario(scenario_ref).model_dump(mode="json", exclude_none=True)
    else:
        document = {"name": "drive", "description": "interactive drive",
                    "traffic": {"vehicles": 20, "walkers": 20, "seed": 0}}
    document.setdefault("cameras", {})
    document.setdefault("traffic", {})
    if map_name is not None:
        document["map"] = map_name
    if size is not None:
        document["cameras"]["width"], document["cameras"]["height"] = size
    if fov is not None:
        document["cameras"]["fov"] = fov
    if vehicles is not None:
        document["traffic"]["vehicles"] = vehicles
    if walkers is not None:
        document["traffic"]["walkers"] = walkers
    document["route"] = {"autopilot": autopilot}
    document["duration"] = {"frames": 1}  # drive runs until Esc or --frames
    return parse_scenario(document, origin="drive options")


def check_carla(host: str, port: int, timeout_s: float = 10.0) -> str:
    """Fail fast, changing nothing, when no CARLA server answers; return the server version."""
    from carla_neural.sources.carla_session import connect, import_carla

    _, _, server_version = connect(import_carla(), host, port, timeout_s)
    return server_version


def open_carla(scenario: Scenario, host: str, port: int, timeout_s: float = 10.0) -> Source:
    """Connect to CARLA and set the scenario up there (see CarlaSource)."""
    from carla_neural.sources.carla_source import CarlaSource

    return CarlaSource(carla_config(scenario, host, port, timeout_s))


@contextlib.contextmanager
def open_source(scenario: Scenario, world: str = "carla", host: str = "127.0.0.1", port: int = 2000,
                timeout_s: float = 10.0) -> Iterator[tuple[Source, str]]:
    """The scenario's source, closed on exit: live CARLA ("carla") or the built-in world ("builtin").

    Yields (source, a one-line description for logs and run.json).
    """
    if world == "carla":
        source = open_carla(scenario, host, port, timeout_s)
        text = (f"carla {host}:{port} (client {source.client_version}, server {source.server_version}, "
                f"map {source.map_name.rsplit('/', 1)[-1]})")
    elif world == "builtin":
        source = open_builtin(scenario)
        text = f"builtin world ({describe_builtin(source)})"
    else:
        raise ValueError(f"world={world!r}: choose 'carla' or 'builtin'")
    with source:
        yield source, text


def scenario_of_run(run_dir: str | Path) -> Scenario:
    """The scenario a run folder was recorded from (run.json's `scenario_definition`)."""
    from scenarios.schema import parse_scenario

    run_json = Path(run_dir) / "run.json"
    if not run_json.is_file():
        raise ScenarioError(f"{run_json} is missing: {run_dir} is not a run folder written by "
                            "`carla-neural record`")
    info = json.loads(run_json.read_text(encoding="utf-8"))
    if "scenario_definition" not in info:
        raise ScenarioError(f"{run_json} does not hold the scenario it was recorded from; "
                            "name one: carla-neural record SCENARIO --replay RUN ...")
    return parse_scenario(info["scenario_definition"], origin=str(run_json))


@contextlib.contextmanager
def open_replay(run_dir: str | Path) -> Iterator[tuple[Source, str]]:
    """A recorded run folder as a source (its label maps, instances, RGB and flow), closed on exit."""
    from carla_neural.sources.replay import ReplaySource

    with ReplaySource(run_dir) as source:
        yield source, f"replay of {run_dir} ({len(source)} frames)"


@dataclass
class RecordResult:
    """What a recording produced: the recorder's summary (with the pipeline's under 'pipeline')."""

    out_dir: Path
    summary: dict[str, Any]


def record_run(scenario: Scenario, source: Source, backend: Any, out_dir: str | Path,
               frames: int | None = None, png: bool = True,
               progress: Callable[[int], Any] | None = None,
               run_info: dict[str, Any] | None = None) -> RecordResult:
    """Run `scenario` in lock-step mode on an open source and backend and record every stream.

    Writes the run folder of docs/contracts.md: videos (raw, labels, neural, side by side),
    PNG frames (raw, neural, label_ids, instance_ids, flow) unless `png` is False, frames.jsonl,
    run.json and summary.json.
    """
    from carla_neural.pipeline import Pipeline, PipelineConfig
    from carla_neural.recorder import Recorder, RecorderConfig
    from carla_neural.sources.replay import ReplaySource

    sensors = set(getattr(source, "sensors", None) or scenario.cameras.sensors)
    videos = ("raw", "labels", "neural") if "rgb" in sensors else ("labels", "neural")
    png_kinds: tuple[str, ...] = ()
    if png:
        wanted = {"raw": "rgb", "neural": None, "label_ids": None, "instance_ids": "instance", "flow": "flow"}
        png_kinds = tuple(kind for kind, sensor in wanted.items() if sensor is None or sensor in sensors)
    total = frames or scenario.duration.frame_count(step_seconds(scenario, source))
    if isinstance(source, ReplaySource):  # it holds so many frames and no more
        total = min(frames or len(source), len(source))
    info = {
        "scenario": scenario.name,
        "scenario_definition": scenario.model_dump(mode="json"),
        "size": [scenario.cameras.width, scenario.cameras.height],
        "tag_scheme": "0.9.14",
        "mode": "lockstep",
        "frames_requested": total,
        **(run_info or {}),
    }
    recorder_config = RecorderConfig(fps=1.0 / step_seconds(scenario, source), videos=videos, png=png_kinds)
    with Recorder(out_dir, recorder_config, run_info=info) as recorder:
        pipeline = Pipeline(source, backend, recorder=recorder,
                            config=PipelineConfig(mode="lockstep", record_flow="flow" in sensors))
        bar = progress(total) if progress is not None else None
        try:
            pipeline_summary = pipeline.run(
                max_frames=total, on_frame=(lambda _: bar.update(1)) if bar is not None else None
            )
        finally:
            if bar is not None:
                bar.close()
        summary = recorder.close(summary_extra={"scenario": scenario.name, "pipeline": pipeline_summary})
    return RecordResult(Path(out_dir), summary)
