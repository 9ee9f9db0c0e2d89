"""`record --worker ENDPOINT` renders on a worker that is already running (the docker compose set-up)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from renderer.worker import READY_PREFIX

CLI = str(Path(sys.executable).with_name("carla-neural"))


@pytest.mark.slow
def test_record_on_a_running_worker(tmp_path: Path, tiny_checkpoint: Path) -> None:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "renderer.worker", "--checkpoint", str(tiny_checkpoint),
         "--bind", "tcp://127.0.0.1:*"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        endpoint = None
        for line in worker.stdout:
            if line.startswith(READY_PREFIX):
                endpoint = re.search(r"endpoint=(\S+)", line).group(1)
                break
        assert endpoint is not None, "the worker never said it was ready"
        scenario = tmp_path / "tiny.yaml"
        scenario.write_text("name: tiny\ntraffic: {vehicles: 2, walkers: 2}\ncameras: {width: 64, height: 32}\n")
        run = tmp_path / "run"
        result = subprocess.run(
            [CLI, "record", str(scenario), "--out", str(run), "--world", "builtin", "--frames", "3",
             "--worker", endpoint, "--no-png"],
            capture_output=True, text=True, timeout=120, env=env,
        )
        assert result.returncode == 0, result.stderr
        info = json.loads((run / "run.json").read_text())
        assert info["renderer"] == f"worker at {endpoint}"
        # What the worker really serves, not the scenario's default ("bundled").
        assert info["checkpoint"] == str(tiny_checkpoint) and info["engine"] == "torch"
        assert json.loads((run / "summary.json").read_text())["frames"] == 3
        assert worker.poll() is None  # the client leaves a worker it did not start running
    finally:
        worker.terminate()
        worker.wait(timeout=30)
