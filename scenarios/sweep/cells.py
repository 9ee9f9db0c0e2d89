"""A sweep's cells (every combination of its axis values, each a validated scenario) and the rule
for when a cell's run folder is complete."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from renderer.checkpoint_ref import BUNDLED_FOLDERS
from scenarios.sweep.schema import AXES, Sweep, SweepError
from scenarios.schema import Scenario, ScenarioError, parse_scenario

CellState = Literal["new", "complete", "partial", "stale", "foreign"]


@dataclass(frozen=True)
class Cell:
    """One cell of the grid: its folder name, its axis values and the scenario it records."""

    name: str
    axes: dict[str, Any]
    scenario: Scenario


def run_is_complete(run_dir: str | Path) -> bool:
    """True when `carla-neural record` finished the run folder: summary.json counts every frame
    that run.json asked for. An interrupted record writes summary.json too, with fewer frames; a
    killed one writes none."""
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    requested = info.get("frames_requested")
    return isinstance(requested, int) and requested > 0 and summary.get("frames") == requested


def cell_state(cell: Cell, run_dir: Path) -> CellState:
    """new (nothing there yet), complete (a finished run of this cell's scenario), partial (a run
    that did not finish), stale (a finished run of another scenario) or foreign (not a run folder)."""
    if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        return "new"
    if not (run_dir / "run.json").is_file():
        return "foreign"
    if not run_is_complete(run_dir):
        return "partial"
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return "complete" if info.get("scenario_definition") == cell.scenario.model_dump(mode="json") else "stale"


def base_document(sweep: Sweep, sweep_file: Path) -> dict[str, Any]:
    """The base scenario as a document the axes are applied to (frames set from the sweep)."""
    from scenarios.runner import read_scenario

    relative = sweep_file.parent / sweep.scenario
    try:
        base = read_scenario(relative if relative.is_file() else sweep.scenario)
    except ScenarioError as error:
        raise SweepError(f"{sweep_file}: scenario: {error}") from None
    document = base.model_dump(mode="json")
    if sweep.frames is not None:
        document["duration"] = {"frames": sweep.frames}
    return document


def expand_cells(sweep: Sweep, sweep_file: str | Path) -> list[Cell]:
    """Every combination of the axis values, in the file's order (the last axis varies fastest);
    raises SweepError naming `axes.AXIS[i]` for each value the scenario schema refuses."""
    sweep_file = Path(sweep_file)
    document = base_document(sweep, sweep_file)
    axes = {axis: [_resolve(axis, value, sweep_file.parent) for value in values]
            for axis, values in sweep.axes.items()}
    problems = []
    for axis, values in axes.items():
        for index, value in enumerate(values):
            try:
                parse_scenario(_with(document, {axis: value}))
            except ScenarioError as error:
                reasons = "; ".join(line.strip() for line in str(error).splitlines()[1:]) or str(error)
                problems.append(f"  axes.{axis}[{index}] ({sweep.axes[axis][index]!r}): {reasons}")
            if axis == "checkpoint" and value not in BUNDLED_FOLDERS and not Path(value).is_dir():
                problems.append(f"  axes.checkpoint[{index}]: no checkpoint folder {value} "
                                "(paths are relative to the sweep file); give a folder or one of "
                                f"{', '.join(BUNDLED_FOLDERS)}")
    if problems:
        raise SweepError(f"{sweep_file}: {len(problems)} problem(s) in the sweep's axes:\n" + "\n".join(problems))
    cells = []
    for combination in itertools.product(*axes.values()):
        values = dict(zip(axes, combination))
        scenario = parse_scenario(_with(document, values), origin=str(sweep_file))
        cells.append(Cell(_cell_name(values, sweep), values, scenario))
    names: dict[str, Cell] = {}
    for cell in cells:
        if cell.name in names:
            raise SweepError(f"{sweep_file}: axes: cells {names[cell.name].axes} and {cell.axes} get the same "
                             f"folder name {cell.name!r}; give the values distinct names")
        names[cell.name] = cell
    return cells


def _resolve(axis: str, value: Any, base_dir: Path) -> Any:
    """Checkpoint paths relative to the sweep file become absolute (cells run in other folders)."""
    if axis == "checkpoint" and isinstance(value, str) and value not in BUNDLED_FOLDERS:
        return str((base_dir / value).resolve())
    return value


def _with(document: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the scenario document with each axis' field set."""
    result = copy.deepcopy(document)
    for axis, value in values.items():
        *parents, leaf = AXES[axis]
        node = result
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = {"frames": value} if axis == "frames" else value
    return result


def _cell_name(values: dict[str, Any], sweep: Sweep) -> str:
    """A folder name from the axis values, e.g. weather-ClearNoon_seed-3."""
    if not values:
        return _slug(sweep.name)
    return "_".join(f"{axis}-{_value_slug(axis, value)}" for axis, value in values.items())


def _value_slug(axis: str, value: Any) -> str:
    if axis == "checkpoint" and value not in BUNDLED_FOLDERS:
        return _slug(Path(value).name)
    if isinstance(value, (dict, list)):  # custom weather parameters: a short stable digest
        digest = hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]
        return f"custom{digest}"
    return _slug(str(value))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.") or "x"
