"""`carla-neural demo` as a user runs it: a short headless run with a tiny random checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from carla_neural.cpu_split import plan_split
from renderer.checkpoint_ref import bundled_checkpoint, is_our_checkpoint
from renderer.cpus import format_cpus
from renderer.engines import pick_engine


def carla_neural_command() -> list[str]:
    """The installed console script next to this interpreter, else the click group itself."""
    script = Path(sys.executable).parent / "carla-neural"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from carla_neural.cli import main; main()"]


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The default engine (auto) may be openvino, whose compiled bodies go to a cache: keep it in cwd.
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "OMP_NUM_THREADS": "1",
           "CARLA_NEURAL_CACHE": str(cwd / "cache")}
    return subprocess.run([*carla_neural_command(), "demo", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_demo_writes_a_complete_run_folder(tmp_path: Path, tiny_checkpoint: Path) -> None:
    checkpoint = tiny_checkpoint
    out = tmp_path / "runs" / "demo"
    result = run_demo("--frames", "8", "--size", "128x64", "--checkpoint", str(checkpoint), "--headless",
                      "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    closing = result.stdout.strip().splitlines()[-1]
    assert closing.startswith("demo: 8 frames at 128x64") and str(out) in closing and "neural.mp4" in closing
    assert "worker.log" in closing and (out / "worker.log").stat().st_size > 0

    for name in ("raw", "labels", "neural", "side_by_side"):
        with av.open(str(out / f"{name}.mp4")) as container:
            frames = [frame for frame in container.decode(video=0)]
        assert len(frames) == 8, name
        assert (frames[0].width, frames[0].height) == ((384 if name == "side_by_side" else 128), 64)

    lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(lines) == 8
    assert [line["frame_id"] for line in lines] == sorted(line["frame_id"] for line in lines)

    run = json.loads((out / "run.json").read_text())
    assert run["source"] == "builtin" and run["size"] == [128, 64] and run["checkpoint"] == str(checkpoint)
    assert run["mount"] == "cityscapes"  # the viewpoint of the real video (docs/domain_adapt.md)
    # The default engine is auto, and the run names the engine it became (openvino where installed).
    assert run["engine"] == pick_engine("auto", "cpu")
    assert run["label_transform"] == {"enabled": False}  # on by default only for bundled-adapted
    split = plan_split()  # on 2 CPUs or more: the worker on its own CPUs, one renderer thread each
    assert run["cpu_split"] == (split.describe() if split else None)
    if split is not None:
        assert run["worker"]["cpus"] == format_cpus(split.worker) and run["worker"]["threads"] == len(split.worker)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 8
    for stage in ("world", "remap", "render", "wait", "display", "record"):
        assert summary["timings_ms"][stage]["count"] >= 7, stage
    assert summary["pipeline"]["frames"] == 8 and "pipeline_overhead_pct" in summary["pipeline"]
    assert summary["worker"]["restarts"] == 0


@pytest.mark.skipif(not is_our_checkpoint(bundled_checkpoint("bundled-adapted")),
                    reason="needs the shipped adapted model in renderer/weights/lite-adapted")
def test_demo_defaults_to_the_adapted_model_with_the_label_transform(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_demo("--frames", "3", "--size", "128x64", "--headless", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["checkpoint"] == str(bundled_checkpoint("bundled-adapted"))
    assert run["label_transform"]["enabled"] is True and run["label_transform"]["config_file"].endswith(
        "label_transform.json")
    assert json.loads((out / "summary.json").read_text())["timings_ms"]["adapt"]["count"] == 3


def test_demo_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    result = run_demo("--frames", "2", "--checkpoint", str(tmp_path / "missing"), "--headless",
                      "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode != 0
    assert "does not exist" in result.stderr


def test_every_entry_point_names_a_missing_checkpoint_in_the_same_line(tmp_path: Path) -> None:
    """The demo, the worker supervisor and the worker share one check (renderer.checkpoint_ref)."""
    from carla_neural.worker_supervisor import WorkerSupervisor
    from renderer.checkpoint_ref import CheckpointMissing

    missing = tmp_path / "missing"
    with pytest.raises(CheckpointMissing) as supervisor_error:
        WorkerSupervisor(missing).start()
    message = str(supervisor_error.value)
    assert "\n" not in message and str(missing) in message and "does not exist" in message
    demo = run_demo("--frames", "2", "--checkpoint", str(missing), "--headless", "--out", str(tmp_path / "out"),
                    cwd=tmp_path)
    assert demo.returncode == 1 and demo.stderr == f"Error: {message}\n"
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked
    worker = subprocess.run([sys.executable, "-m", "renderer.worker", "--checkpoint", str(missing),
                             "--bind", "tcp://127.0.0.1:*"], capture_output=True, text=True, timeout=60)
    assert worker.returncode == 2 and worker.stderr == f"error: {message}\n"


def test_demo_rejects_a_bad_size(tmp_path: Path) -> None:
    result = run_demo("--size", "512by256", "--headless", cwd=tmp_path)
    assert result.returncode == 2 and "WIDTHxHEIGHT" in result.stderr


def test_demo_names_a_bad_mount_and_the_choices(tmp_path: Path) -> None:
    result = run_demo("--mount", "bonnet", "--headless", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1 and "--mount bonnet" in result.stderr and "cityscapes" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
