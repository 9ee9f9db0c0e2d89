"""`carla-neural bench` as a user runs it, and the NVIDIA-reference harness (when a checkout of
NVIDIA/vid2vid is at hand)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = [str(Path(sys.executable).parent / "carla-neural")]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy"}
VID2VID = ROOT / "external" / "vid2vid"


def run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=timeout)


def test_bench_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run(["bench", "--configs", "lite", "--sizes", "64x32", "--engines", "torch,torch-bf16,tensorrt",
                "--frames", "3", "--warmup", "1", "--json", str(out)])
    assert done.returncode == 0, done.stderr
    assert "ms/frame" in done.stdout and "GMAC" in done.stdout
    assert "nvidia_2048 at 2048x1024" in done.stdout
    payload = json.loads(out.read_text())
    assert payload["machine"]["cpu_count"] >= 1
    rows = {row["engine"]: row for row in payload["results"]}
    timed = rows["torch"]
    assert timed["status"] == "ok" and timed["frames"] == 3
    assert timed["ms_median"] > 0 and timed["fps"] == pytest.approx(1000 / timed["ms_median"])
    assert timed["peak_mib"] > 0 and timed["cpu_ms_median"] > 0
    assert 0 < timed["gmac_executed"] <= timed["gmac_dense"]
    assert (timed["width"], timed["height"]) == (64, 32)
    # One more frame compares the engine's step with the PyTorch fp32 generator's, same history.
    assert "diff/255" in done.stdout and 0 <= timed["diff_255"] < 0.5
    # Engines this machine cannot run are reported with what they need, not dropped.
    assert rows["tensorrt"]["status"] == "skipped" and "CUDA" in rows["tensorrt"]["reason"]
    assert rows["torch-bf16"]["status"] in ("ok", "skipped")
    paper = {row["config"]: row for row in payload["paper"]}
    # NVIDIA's 2048 model: about 2.5 T multiply-adds per 2048x1024 frame.
    assert 2400 < paper["nvidia_2048"]["gmac_dense"] < 2700
    assert 780 < paper["nvidia_1024_g1"]["gmac_dense"] < 860


def test_bench_rejects_bad_options_with_the_allowed_values() -> None:
    done = run(["bench", "--engines", "torch,warp-drive"])
    assert done.returncode != 0 and "warp-drive" in done.stderr and "onnx" in done.stderr
    done = run(["bench", "--sizes", "512"])
    assert done.returncode != 0 and "WIDTHxHEIGHT" in done.stderr
    done = run(["bench", "--configs", "huge"])
    assert done.returncode != 0 and "lite" in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not (VID2VID / "models" / "vid2vid_model_G.py").is_file(),
                    reason="needs a checkout of NVIDIA/vid2vid at external/vid2vid")
def test_nvidia_reference_runs_nvidias_code_on_the_same_weights(tmp_path: Path) -> None:
    out = tmp_path / "nvidia.json"
    done = subprocess.run(
        [sys.executable, "bench/nvidia_reference.py", "--vid2vid", str(VID2VID), "--size", "64x32",
         "--steps", "2", "--engines", "torch", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["side"] == "nvidia" and rows[0]["ms_median"] > 0
    ours = rows[1]
    assert ours["engine"] == "torch" and ours["speedup_vs_nvidia"] > 0
    # Same weights, same history: our step is NVIDIA's step to well within 2/255.
    assert ours["max_abs_diff_255_same_history"] < 2.0


def test_world_transport_and_metrics_benches_run_as_subcommands_and_modules(tmp_path: Path) -> None:
    world = run(["bench-world", "--layouts", "urban", "--sizes", "64x32", "--frames", "2", "--warmup", "0"])
    assert world.returncode == 0, world.stderr
    header, row = world.stdout.strip().splitlines()
    assert header.split()[:3] == ["layout", "size", "wall"] and row.split()[:2] == ["urban", "64x32"]
    as_module = subprocess.run([sys.executable, "-m", "carla_neural.sources.world.bench", "--sizes", "64x32,bad"],
                               capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert as_module.returncode == 2 and "'bad' is not WIDTHxHEIGHT" in as_module.stderr
    out = tmp_path / "transport.json"
    transport = run(["bench-transport", "--frames", "3", "--sizes", "64x32", "--json", str(out)])
    assert transport.returncode == 0, transport.stderr
    rows = json.loads(out.read_text())["transport"]
    assert [(row["size"], row["mode"]) for row in rows] == [("64x32", "zero-copy"), ("64x32", "copy")]
    assert all(row["median_ms"] > 0 for row in rows) and f"wrote {out}" in transport.stdout
    metrics = subprocess.run([sys.executable, "-m", "renderer.metrics.bench", "--size", "64x32", "--frames", "2",
                              "--no-inception", "--threads", "1"],
                             capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert metrics.returncode == 0, metrics.stderr
    figures = json.loads(metrics.stdout)
    assert figures["size"] == [64, 32] and figures["ms_per_frame"]["warping_error"] > 0
    assert "inception_features" not in figures["ms_per_frame"]


@pytest.mark.slow
def test_stage_bench_times_every_stage_and_the_run_end_to_end(tiny_style_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "stages.json"
    done = run(["bench-stages", "--checkpoint", str(tiny_style_checkpoint), "--device", "cpu", "--sizes", "64x32",
                "--frames", "2", "--render-frames", "2", "--e2e-frames", "3", "--no-cpu-split", "--threads", "1",
                "--json", str(out)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("size | world | remap | adapt | transport | render")
    figures = json.loads(out.read_text())["sizes"][0]
    assert figures["size"] == "64x32" and figures["cpu_split"] is None
    for key in ("world_ms", "remap_ms", "adapt_ms", "transport_ms", "render_ms", "render_style_0_ms", "display_ms",
                "record_ms", "e2e_fps", "worker_alone_fps"):
        assert figures[key] > 0, key
