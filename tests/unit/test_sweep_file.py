"""Sweep files: good ones expand into their grid of scenarios, bad ones are refused naming the field;
a run folder counts as complete only when record finished it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from carla_neural.recorder import FrameRecord, Recorder, RecorderConfig
from scenarios.sweep.cells import cell_state, expand_cells, run_is_complete
from scenarios.sweep.runner import check_out_dir
from scenarios.sweep.schema import SweepError, load_sweep

GOOD = """
name: weather_by_seed
scenario: base.yaml
frames: 4
axes:
  weather: [ClearNoon, HardRainNight, {cloudiness: 90, sun_altitude_angle: -10}]
  seed: [1, 2]
  mount: [hood, chase]
"""

BASE = """
name: base
traffic: {vehicles: 3, walkers: 1, seed: 0}
duration: {seconds: 10}
cameras: {width: 64, height: 32}
"""


def write(folder: Path, text: str, base: str = BASE) -> Path:
    (folder / "base.yaml").write_text(base)
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path


def test_good_sweep_expands_into_every_combination_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    cells = expand_cells(load_sweep(path), path)
    assert len(cells) == 3 * 2 * 2
    first, second = cells[0], cells[1]
    assert first.name == "weather-ClearNoon_seed-1_mount-hood"
    assert second.name == "weather-ClearNoon_seed-1_mount-chase"  # the last axis varies fastest
    assert first.scenario.traffic.seed == 1 and first.scenario.traffic.vehicles == 3
    assert second.scenario.cameras.mount == "chase" and second.scenario.cameras.width == 64
    assert all(cell.scenario.frame_count == 4 for cell in cells)  # the sweep's frames replace 10 s
    custom = [cell for cell in cells if isinstance(cell.axes["weather"], dict)]
    assert len(custom) == 4 and custom[0].scenario.is_night
    assert custom[0].name.startswith("weather-custom") and len({cell.name for cell in cells}) == 12


def test_frames_axis_and_builtin_scenario_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nscenario: highway\naxes: {frames: [2, 5], layout: [urban, highway]}\n")
    cells = expand_cells(load_sweep(path), path)
    assert [cell.scenario.frame_count for cell in cells] == [2, 2, 5, 5]
    assert cells[0].scenario.builtin["layout"] == "urban" and cells[0].scenario.name == "highway"


@pytest.mark.parametrize(("text", "field", "hint"), [
    ("name: s\nscenario: base.yaml\naxes: {wether: [ClearNoon]}\n", "axes", "allowed: weather, seed"),
    ("name: s\nscenario: base.yaml\naxes: {seed: []}\n", "axes", "has no values"),
    ("name: s\nscenario: base.yaml\nretries: 20\n", "retries", "0..10"),
    ("name: s\nscenario: base.yaml\nworld: moon\n", "world", "'builtin' or 'carla'"),
    ("name: s\nscenario: base.yaml\ndevice: cpu\naxes: {engine: [torch, tensorrt]}\n", "tensorrt", "device: cuda"),
    ("name: s\nscenario: base.yaml\naxes: {weather: [ClearNoon, Sunny]}\n", "axes.weather[1]",
     "unknown weather preset 'Sunny'"),
    ("name: s\nscenario: base.yaml\naxes: {mount: [dashboard]}\n", "axes.mount[0]", "'hood'"),
    ("name: s\nscenario: base.yaml\naxes: {checkpoint: [bundled, nowhere]}\n", "axes.checkpoint[1]",
     "no checkpoint folder"),
    ("name: s\nscenario: nothing_like_it\n", "scenario", "built-in: dense_traffic"),
    ("name: s\nscenario: base.yaml\nframs: 3\n", "unknown field(s) frams", "allowed: name, scenario"),
], ids=["axis-name", "empty-axis", "retries", "world", "tensorrt-on-cpu", "weather-value", "mount-value",
        "checkpoint-path", "scenario", "typo"])
def test_bad_sweep_names_the_field(tmp_path: Path, text: str, field: str, hint: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SweepError) as raised:
        expand_cells(load_sweep(path), path)
    message = str(raised.value)
    assert str(path) in message and field in message and hint in message


def record_run(run_dir: Path, frames: int, requested: int) -> None:
    """A real run folder as `record` writes it: `frames` of the `requested` frames recorded."""
    rgb = np.zeros((32, 64, 3), np.uint8)
    with Recorder(run_dir, RecorderConfig(videos=("neural",), side_by_side=False),
                  run_info={"frames_requested": requested, "scenario_definition": {}}) as recorder:
        for index in range(frames):
            recorder.write(FrameRecord(frame_id=index, sim_time=0.05 * index, neural=rgb))


def test_only_a_finished_run_is_complete(tmp_path: Path) -> None:
    record_run(tmp_path / "finished", frames=3, requested=3)
    record_run(tmp_path / "interrupted", frames=2, requested=3)  # Ctrl-C still writes summary.json
    killed = tmp_path / "killed"
    record_run(killed, frames=3, requested=3)
    (killed / "summary.json").unlink()  # a SIGKILL leaves no summary
    assert run_is_complete(tmp_path / "finished")
    assert not run_is_complete(tmp_path / "interrupted")
    assert not run_is_complete(killed)
    assert not run_is_complete(tmp_path / "missing")


def test_out_dir_states_and_refusals(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\nscenario: base.yaml\nframes: 3\naxes: {seed: [1, 2, 3, 4]}\n")
    cells = expand_cells(load_sweep(path), path)
    out = tmp_path / "out"
    record_run(out / cells[0].name, frames=3, requested=3)
    info = json.loads((out / cells[0].name / "run.json").read_text())
    info["scenario_definition"] = cells[0].scenario.model_dump(mode="json")
    (out / cells[0].name / "run.json").write_text(json.dumps(info))
    record_run(out / cells[1].name, frames=3, requested=3)  # finished, but of another scenario
    record_run(out / cells[2].name, frames=1, requested=3)
    assert [cell_state(cell, out / cell.name) for cell in cells] == ["complete", "stale", "partial", "new"]
    with pytest.raises(SweepError, match="another scenario.*--overwrite"):
        check_out_dir(cells, out, overwrite=False)
    assert check_out_dir(cells, out, overwrite=True)[cells[1].name] == "stale"
    (out / cells[3].name).mkdir()
    (out / cells[3].name / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="not run folders"):
        check_out_dir(cells, out, overwrite=True)
