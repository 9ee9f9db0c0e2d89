"""What one Ray task does for one cell: run `carla-neural record` (and `compare`) as child
processes, exactly as a user would, with their output in the cell's log file.

A child process per cell gives every cell its own render worker and its own memory, and turns a
killed cell into a failed process that Ray retries. This module uses only the record and compare
command lines and the run folder they write, not their internals.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scenarios.sweep.cells import run_is_complete

# Exit status of `carla-neural` for bad input (click): the same input fails again, so no retry.
_USAGE_ERROR_CODES = (1, 2)
# How often a running cell looks for the sweep's stop file.
_STOP_POLL_S = 0.5


class CellDied(RuntimeError):
    """The cell's process died (a signal, an interrupt, an unexpected exit status): worth a retry."""


class CellFailed(RuntimeError):
    """The cell's record or compare refused its input (exit status 1 or 2): retrying cannot help."""


class CellStopped(RuntimeError):
    """The sweep was stopped (Ctrl-C) and the cell's record stopped cleanly with it."""


@dataclass
class CellSpec:
    """Everything a task needs to run one cell; plain data, so that it travels to any node."""

    name: str
    scenario_file: str
    run_dir: str
    log: str
    pid_file: str
    # The sweep creates this file to stop its cells (on the shared folder, so it reaches every node).
    stop_file: str
    sweep_id: str
    world: str
    device: str
    png: bool
    threads: int
    compare_metrics: str | None = None
    # Record even over a complete run (one of another scenario, with --overwrite).
    record_again: bool = False


@dataclass
class CellTiming:
    """What a task reports back: the attempt it was and where its time went (Unix seconds)."""

    attempt: int
    node: str
    started_unix: float
    finished_unix: float
    record_s: float | None
    compare_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready dict."""
        return asdict(self)


def carla_address() -> tuple[str, str]:
    """The CARLA server next to this node: CARLA_HOST and CARLA_PORT (default 127.0.0.1:2000)."""
    return os.environ.get("CARLA_HOST", "127.0.0.1"), os.environ.get("CARLA_PORT", "2000")


def record_command(spec: CellSpec) -> list[str]:
    """The `carla-neural record` command line of a cell."""
    command = [sys.executable, "-m", "carla_neural", "record", spec.scenario_file, "--out", spec.run_dir,
               "--overwrite", "--world", spec.world, "--device", spec.device,
               # Cells share the node's CPUs: pinning every cell's worker to the same half would
               # stack them up, so the operating system spreads them instead.
               "--no-cpu-split", "--png" if spec.png else "--no-png"]
    if spec.world == "carla":
        host, port = carla_address()
        command += ["--host", host, "--port", port]
    return command


def compare_command(spec: CellSpec) -> list[str]:
    """The `carla-neural compare` command line of a finished cell."""
    return [sys.executable, "-m", "carla_neural", "compare", spec.run_dir, "--metrics", spec.compare_metrics or ""]


def run_cell(spec: CellSpec) -> dict[str, Any]:
    """Record the cell (unless its run folder is complete) and compare it when asked; returns
    CellTiming as a dict. Raises CellDied or CellFailed naming the exit status and the log."""
    started = time.time()
    if Path(spec.stop_file).exists():  # queued until after Ctrl-C: start nothing
        raise CellStopped(f"cell {spec.name}: stopped with the sweep before it started")
    log_path = Path(spec.log)
    attempt = attempts_made(log_path, spec.sweep_id) + 1
    record_s = compare_s = None
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"--- attempt {attempt} of sweep {spec.sweep_id} on {socket.gethostname()} ---\n")
        log.flush()
        run_dir = Path(spec.run_dir)
        if spec.record_again or not run_is_complete(run_dir):
            if run_dir.exists():  # a partial or stale run of this cell: record it again from the start
                shutil.rmtree(run_dir)
            record_s = _run_child(record_command(spec), spec, log, attempt)
        if spec.compare_metrics and not (run_dir / "metrics.json").is_file():
            compare_s = _run_child(compare_command(spec), spec, log, attempt)
    return CellTiming(attempt, socket.gethostname(), started, time.time(), record_s, compare_s).to_dict()


def attempts_made(log_path: str | Path, sweep_id: str) -> int:
    """The attempts sweep `sweep_id` made at a cell so far (one header line each in its log)."""
    try:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return 0
    return text.count(f" of sweep {sweep_id} ")


def _run_child(command: list[str], spec: CellSpec, log: Any, attempt: int) -> float:
    """Run one child with its output in the log; its pid (and attempt) in the pid file meanwhile."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": str(spec.threads)}
    log.write("$ " + " ".join(command) + "\n")
    log.flush()
    started = time.perf_counter()
    # A session of its own: a Ctrl-C at the terminal reaches the sweep, which stops its cells
    # in order, rather than every child at once.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True, preexec_fn=_die_with_parent)
    pid_file = Path(spec.pid_file)
    pid_file.write_text(f"{process.pid} {attempt} {spec.sweep_id}\n", encoding="utf-8")
    stop_file = Path(spec.stop_file)
    try:
        while True:
            try:
                status = process.wait(timeout=_STOP_POLL_S)
                break
            except subprocess.TimeoutExpired:
                if stop_file.exists():
                    raise CellStopped(f"cell {spec.name}: stopped with the sweep; log: {spec.log}") from None
    except BaseException as error:  # ray.cancel raises KeyboardInterrupt here: stop the child cleanly
        log.write(f"stopping {command[3]} ({type(error).__name__})\n")
        log.flush()
        process.terminate()  # record stops as on Ctrl-C: its files are closed, summary.json written
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        log.write(f"stopped: exit status {status}\n")
        log.flush()
        raise
    finally:
        pid_file.unlink(missing_ok=True)
    elapsed = time.perf_counter() - started
    log.write(f"exit status {status} after {elapsed:.1f} s\n")
    log.flush()
    if status == 0:
        return elapsed
    what = "killed by signal " + signal.Signals(-status).name if status < 0 else f"exit status {status}"
    message = f"cell {spec.name}: {command[3]} failed ({what}) on attempt {attempt}; log: {spec.log}"
    if status in _USAGE_ERROR_CODES:
        raise CellFailed(message)
    raise CellDied(message)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the task's process dies (a killed Ray worker),
    so that no orphaned record keeps writing while the retry starts (Linux only)."""
    if sys.platform.startswith("linux"):
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
