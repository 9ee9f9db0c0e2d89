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
