"""Scenarios as runs: find and read them, and map them onto a RunSpec (carla_neural.runs), whose
source is CARLA, the built-in world or a replayed run."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from carla_neural import runs
from carla_neural.runs import (
    AdaptSpec,
    BackendSpec,
    RecordSpec,
    RunSpec,
    SourceSpec,
    adapt_spec,
    transform_by_default,
)
from carla_neural.sources.base import Source
from carla_neural.sources.world.builtin import FIXED_DELTA_S
from scenarios.mapping import carla_config, world_config
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


def source_spec(scenario: Scenario, world: str = "carla", host: str = "127.0.0.1", port: int = 2000,
                timeout_s: float = 10.0, replay_dir: str | Path | None = None) -> SourceSpec:
    """Where `scenario`'s frames come from: live CARLA ("carla"), its built-in world counterpart
    ("builtin"), or a recorded run folder replayed (`replay_dir`)."""
    if replay_dir is not None:
        return SourceSpec("replay", replay_dir=Path(replay_dir))
    if world == "carla":
        return SourceSpec("carla", carla=carla_config(scenario, host, port, timeout_s))
    if world == "builtin":
        return SourceSpec("builtin", world=world_config(scenario))
    raise ValueError(f"world={world!r}: choose 'carla' or 'builtin'")


def open_source(scenario: Scenario, world: str = "carla", host: str = "127.0.0.1", port: int = 2000,
                timeout_s: float = 10.0) -> contextlib.AbstractContextManager[tuple[Source, str]]:
    """The scenario's source, closed on exit: live CARLA ("carla") or the built-in world ("builtin").

    Yields (source, a one-line description for logs and run.json).
    """
    return runs.open_source(source_spec(scenario, world, host, port, timeout_s))


def scenario_adapt(scenario: Scenario, adapt_labels: bool | None = None, transform_config: str | Path | None = None,
                   keep_off: bool = False, checkpoint: str | Path = "bundled") -> AdaptSpec | None:
    """The label transform of a run of `scenario` rendered by `checkpoint`: `adapt_labels` and
    `transform_config` (the command line) over its rendering.adapt_labels and
    rendering.transform_config, over the checkpoint's default (`transform_by_default`); a config
    file on the command line alone turns it on. None when off, unless `keep_off` (drive's key). A
    bad config file raises TransformConfigError naming the file and the field."""
    if transform_config is not None:  # the command line's file, and its flag if any (else on)
        return adapt_spec(adapt_labels, transform_config, keep_off=keep_off)
    enabled = adapt_labels if adapt_labels is not None else scenario.rendering.adapt_labels
    if enabled is None:
        enabled = transform_by_default(checkpoint)
    return adapt_spec(enabled, scenario.rendering.transform_config, keep_off=keep_off)


def record_spec(scenario: Scenario, backend: BackendSpec, out_dir: str | Path, *, world: str = "carla",
                host: str = "127.0.0.1", port: int = 2000, timeout_s: float = 10.0,
                replay_dir: str | Path | None = None, frames: int | None = None,
                png: bool = True, adapt_labels: bool | None = None,
                transform_config: str | Path | None = None) -> RunSpec:
    """The run that records `scenario` in lock-step mode into `out_dir`: videos (raw, labels,
    neural, side by side), PNG frames (raw, neural, label_ids, instance_ids, flow; those its
    sensors give) unless `png` is False, frames.jsonl, run.json and summary.json; the label
    transform as `scenario_adapt` decides."""
    adapt = scenario_adapt(scenario, adapt_labels, transform_config, checkpoint=backend.checkpoint)
    source = source_spec(scenario, world, host, port, timeout_s, replay_dir)
    if frames is None and source.kind != "replay":  # a replay runs to its last frame
        step_s = FIXED_DELTA_S if source.kind == "builtin" else scenario.fixed_delta_s
        frames = scenario.duration.frame_count(step_s)
    return RunSpec(
        command="record", source=source, backend=backend,
        size=(scenario.cameras.width, scenario.cameras.height), mode="lockstep", frames=frames,
        record=RecordSpec(Path(out_dir), png=png), step_s=scenario.fixed_delta_s, adapt=adapt,
        run_info={"scenario": scenario.name, "scenario_definition": scenario.model_dump(mode="json")},
    )


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
