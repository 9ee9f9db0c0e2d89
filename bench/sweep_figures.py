"""The sweep figures of docs/sweeps.md: a 12-cell sweep on Ray against the same 12 `record`
commands one after another, and Ray's own overhead per task.

    python bench/sweep_figures.py --out runs/bench/sweep [--json runs/bench/sweep.json]

Steps: (1) an empty Ray task, round trip, on a local 2-CPU instance; (2) `carla-neural sweep
bench/sweep/grid12.yaml --max-parallel 2`; (3) each cell's own record command line, one after
another. Cells are short (10 frames, 128x64), so fixed per-process costs dominate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILE = ROOT / "bench" / "sweep" / "grid12.yaml"


def empty_task_overhead(count: int = 200) -> dict[str, float]:
    """Milliseconds per empty task: one at a time (latency) and all at once (throughput)."""
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="warning")
    init_s = time.perf_counter() - started

    @ray.remote(num_cpus=1)
    def empty() -> None:
        return None

    ray.get([empty.remote() for _ in range(4)])  # start the workers first
    started = time.perf_counter()
    for _ in range(count):
        ray.get(empty.remote())
    serial_ms = (time.perf_counter() - started) / count * 1e3
    started = time.perf_counter()
    ray.get([empty.remote() for _ in range(count)])
    batch_ms = (time.perf_counter() - started) / count * 1e3
    ray.shutdown()
    return {"ray_init_s": round(init_s, 2), "empty_task_round_trip_ms": round(serial_ms, 2),
            "empty_task_throughput_ms": round(batch_ms, 2)}


def run_sweep(out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "carla_neural", "sweep", str(SWEEP_FILE), "--out", str(out),
                             "--max-parallel", "2"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"sweep failed:\n{result.stderr[-3000:]}")
    document = json.loads((out / "sweep.json").read_text())
    cells = document["cells"]
    record = [cell["timing"]["record_s"] for cell in cells]
    in_task = [cell["timing"]["finished_unix"] - cell["timing"]["started_unix"] for cell in cells]
    # Submit -> task running, and task done -> result in the driver: what Ray adds around a task.
    scheduling = [cell["timing"]["started_unix"] - cell["submitted_unix"] for cell in cells]
    collecting = [cell["collected_unix"] - cell["timing"]["finished_unix"] for cell in cells]
    return {
        "wall_s": round(wall, 1),
        "sweep_json_wall_s": document["wall_s"],
        "record_s_median": round(statistics.median(record), 2),
        "record_s_sum": round(sum(record), 1),
        "task_minus_record_s_median": round(statistics.median(t - r for t, r in zip(in_task, record)), 3),
        "submit_to_start_s_median": round(statistics.median(scheduling), 3),
        "finish_to_driver_s_median": round(statistics.median(collecting), 3),
        "cells": len(cells),
    }


def run_sequential(sweep_out: Path, out: Path) -> dict:
    """Each cell's record command as the sweep ran it, one after another (no Ray)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": "1"}
    times = []
    started = time.perf_counter()
    for scenario in sorted((sweep_out / "scenarios").glob("*.yaml")):
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-m", "carla_neural", "record", str(scenario), "--out",
                        str(out / scenario.stem), "--world", "builtin", "--device", "cpu", "--no-cpu-split",
                        "--no-png"], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - begin)
    return {"wall_s": round(time.perf_counter() - started, 1), "record_s_median": round(statistics.median(times), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "sweep")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    figures = {"cpus": os.cpu_count(), "ray": empty_task_overhead()}
    print(json.dumps(figures), flush=True)
    figures["sweep"] = run_sweep(args.out / "sweep")
    print(json.dumps(figures["sweep"]), flush=True)
    figures["sequential"] = run_sequential(args.out / "sweep", args.out / "sequential")
    print(json.dumps(figures["sequential"]), flush=True)
    figures["speedup"] = round(figures["sequential"]["wall_s"] / figures["sweep"]["wall_s"], 2)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
