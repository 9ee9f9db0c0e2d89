"""Run a sweep's cells on Ray: check everything first, then submit one task per cell (bounded
retries for cells that die), show progress, and stop cleanly on Ctrl-C."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from scenarios.sweep.cells import Cell, CellState, cell_state, run_is_complete
from scenarios.sweep.schema import Sweep, SweepError
from scenarios.sweep.tasks import CellDied, CellFailed, CellSpec, CellStopped, attempts_made, run_cell

log = logging.getLogger(__name__)

Status = Literal["done", "skipped", "failed", "interrupted", "pending"]
CARLA_RESOURCE = "carla_server"
_CONNECT_TIMEOUT_S = 5.0
# Seconds that cancelled cells get to close their run folders after Ctrl-C.
_STOP_GRACE_S = 60.0


@dataclass
class CellResult:
    """What became of one cell in this sweep."""

    cell: Cell
    run_dir: Path
    log: Path
    status: Status = "pending"
    # Its folder holds a finished run of another scenario, to be recorded again (--overwrite).
    stale: bool = False
    attempts: int = 0
    error: str | None = None
    timing: dict[str, Any] | None = None
    submitted_unix: float | None = None
    collected_unix: float | None = None


@dataclass
class SweepOutcome:
    """The whole sweep: every cell's result, the wall time and where it ran."""

    sweep_id: str
    results: list[CellResult]
    wall_s: float
    interrupted: bool
    ray: dict[str, Any] = field(default_factory=dict)

    def count(self, *statuses: Status) -> int:
        """Cells with any of these statuses."""
        return sum(result.status in statuses for result in self.results)


def check_out_dir(cells: list[Cell], out_dir: Path, overwrite: bool) -> dict[str, CellState]:
    """Each cell's state under `out_dir`; raises SweepError (writing nothing) when a cell's folder
    holds something that is not a run, or, without `overwrite`, a finished run of another scenario."""
    states = {cell.name: cell_state(cell, out_dir / cell.name) for cell in cells}
    foreign = [name for name, state in states.items() if state == "foreign"]
    if foreign:
        raise SweepError(f"{out_dir}: {', '.join(foreign)} exist but are not run folders (no run.json); "
                         "choose another --out")
    stale = [name for name, state in states.items() if state == "stale"]
    if stale and not overwrite:
        raise SweepError(f"{out_dir}: {', '.join(stale)} hold finished runs of another scenario than this "
                         "sweep's cells; choose another --out or pass --overwrite to record them again")
    return states


def run_sweep(sweep: Sweep, cells: list[Cell], out_dir: Path, *, ray_address: str | None = None,
              max_parallel: int | None = None, compare_metrics: str | None = None, overwrite: bool = False,
              progress: Callable[[int], Any] | None = None) -> SweepOutcome:
    """Record every cell not yet complete under `out_dir` (one Ray task each) and return the outcome.

    Connects to `ray_address`, or reuses this process's Ray session, or starts a local one (stopped
    at the end). On KeyboardInterrupt the running cells stop cleanly (their partial folders are not
    counted) and it returns with `interrupted` set; finished runs are never touched.
    """
    try:
        import ray
    except ImportError:
        raise SweepError("carla-neural sweep runs its cells on Ray, which is not installed: "
                         "pip install 'carla-neural[sweep]'") from None

    started = time.time()
    states = check_out_dir(cells, out_dir, overwrite)
    owns_ray = not ray.is_initialized()
    if owns_ray:
        _connect(ray, sweep, ray_address)
    try:
        ray_info = _check_resources(ray, sweep)
        sweep_id = uuid.uuid4().hex[:12]
        results = [CellResult(cell, out_dir / cell.name, out_dir / "logs" / f"{cell.name}.log")
                   for cell in cells]
        queue: deque[CellResult] = deque()
        for result in results:
            complete = states[result.cell.name] == "complete"
            result.stale = states[result.cell.name] == "stale"
            if complete and not (compare_metrics and not (result.run_dir / "metrics.json").is_file()):
                result.status = "skipped"
            else:
                queue.append(result)
        _write_inputs(out_dir, [result.cell for result in queue])
        interrupted = _drive(ray, sweep, out_dir, sweep_id, queue, results, max_parallel, compare_metrics,
                             progress)
    finally:
        if owns_ray:
            ray.shutdown()
    return SweepOutcome(sweep_id, results, round(time.time() - started, 3), interrupted, ray_info)


def _connect(ray: Any, sweep: Sweep, address: str | None) -> None:
    if address:
        _check_reachable(address)
    try:
        if address:  # its nodes and drivers share RAY_AUTH_MODE/RAY_AUTH_TOKEN (docs/sweeps.md)
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            return
        # Token authentication, Ray 2.60's default for a local instance, said here to spare its
        # warning: the GCS port listens on every interface even with the node on loopback.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        # A local CARLA server (CARLA_HOST/PORT) is the one carla_server.
        resources = {CARLA_RESOURCE: 1} if sweep.world == "carla" else None
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 resources=resources, _node_ip_address="127.0.0.1")
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SweepError(f"cannot start or reach {where}: {first_line}") from None


def _check_reachable(address: str) -> None:
    """Fail in seconds when nothing listens at a HOST:PORT address (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or "://" in address or not port.isdigit():
        return  # "auto", ray:// client addresses: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise SweepError(f"no Ray cluster answers at --ray-address {address} ({error.strerror or error}); "
                         "start one with `ray start --head` or leave --ray-address out to run locally") from None


def _check_resources(ray: Any, sweep: Sweep) -> dict[str, Any]:
    """What the cluster offers; SweepError when no node could ever run a cell (it would wait forever)."""
    total = ray.cluster_resources()
    problems = []
    if total.get("CPU", 0) < sweep.cpus_per_cell:
        problems.append(f"cpus_per_cell is {sweep.cpus_per_cell} but the cluster has {total.get('CPU', 0)} CPUs")
    if sweep.needs_gpu and total.get("GPU", 0) < 1:
        problems.append("device is cuda but no Ray node offers a GPU; use device: cpu or add GPU nodes")
    if sweep.world == "carla" and total.get(CARLA_RESOURCE, 0) < 1:
        problems.append(f"world is carla but no Ray node offers the {CARLA_RESOURCE} resource; start one "
                        f"next to each CARLA server with ray start --resources '{{\"{CARLA_RESOURCE}\": 1}}' "
                        "(CARLA_HOST/CARLA_PORT in its environment)")
    if problems:
        raise SweepError("cannot run the sweep on this Ray cluster: " + "; ".join(problems))
    return {"address": ray.get_runtime_context().gcs_address,
            "resources": {key: value for key, value in total.items() if not key.startswith(("node:", "memory",
                                                                                             "object_store"))}}


def _write_inputs(out_dir: Path, cells: list[Cell]) -> None:
    """Each cell's scenario file, which its `record` reads (cells run where this folder is mounted)."""
    (out_dir / "scenarios").mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    for cell in cells:
        document = cell.scenario.model_dump(mode="json")
        (out_dir / "scenarios" / f"{cell.name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False),
                                                                 encoding="utf-8")


def _drive(ray: Any, sweep: Sweep, out_dir: Path, sweep_id: str, queue: deque[CellResult],
           results: list[CellResult], max_parallel: int | None, compare_metrics: str | None,
           progress: Callable[[int], Any] | None) -> bool:
    """Submit, collect and show progress until every cell is settled; True when interrupted."""
    remote = ray.remote(run_cell)
    options = {"num_cpus": sweep.cpus_per_cell, "num_gpus": 1 if sweep.needs_gpu else 0,
               "max_retries": sweep.retries, "retry_exceptions": [CellDied]}
    if sweep.world == "carla":
        options["resources"] = {CARLA_RESOURCE: 1}
    in_flight: dict[Any, CellResult] = {}
    bar = progress(len(results)) if progress is not None else None
    if bar is not None:
        bar.update(sum(result.status == "skipped" for result in results))
    try:
        while queue or in_flight:
            while queue and (max_parallel is None or len(in_flight) < max_parallel):
                result = queue.popleft()
                spec = CellSpec(name=result.cell.name,
                                scenario_file=str(out_dir / "scenarios" / f"{result.cell.name}.yaml"),
                                run_dir=str(result.run_dir), log=str(result.log),
                                pid_file=str(result.log.with_suffix(".pid")),
                                stop_file=str(_stop_file(out_dir, sweep_id)), sweep_id=sweep_id,
                                world=sweep.world, device=sweep.device, png=sweep.png,
                                threads=max(1, int(sweep.cpus_per_cell)), compare_metrics=compare_metrics,
                                record_again=result.stale)
                result.submitted_unix = time.time()
                in_flight[remote.options(**options).remote(spec)] = result
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                _collect(ray, ref, in_flight.pop(ref), sweep_id)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.set_postfix_str(_counts(results, in_flight.values(), sweep_id), refresh=True)
    except KeyboardInterrupt:
        _stop(ray, out_dir, in_flight, sweep_id)
        return True
    finally:
        if bar is not None:
            bar.close()
    return False


def _collect(ray: Any, ref: Any, result: CellResult, sweep_id: str) -> None:
    result.collected_unix = time.time()
    result.attempts = attempts_made(result.log, sweep_id)
    try:
        result.timing = ray.get(ref)
        result.status = "done"
        result.attempts = result.timing["attempt"]
    except CellStopped:
        result.status = "interrupted"
    except (CellDied, CellFailed) as error:
        # Ray wraps the task's exception; its cause carries our one-line message.
        result.status, result.error = "failed", str(getattr(error, "cause", None) or error).strip()
    except ray.exceptions.TaskCancelledError:
        result.status = "interrupted"
    except ray.exceptions.RayError as error:  # a lost worker or node, after its retries
        first_line = str(error).strip().splitlines()[0]
        result.status, result.error = "failed", f"cell {result.cell.name}: {first_line}; log: {result.log}"


def _stop(ray: Any, out_dir: Path, in_flight: dict[Any, CellResult], sweep_id: str) -> None:
    """Stop the running cells through the stop file (each stops its record, which closes its run
    folder), wait for them, then cancel what is left; settle each cell's status."""
    stop_file = _stop_file(out_dir, sweep_id)
    stop_file.write_text("stop\n", encoding="utf-8")
    unsettled = list(in_flight)
    try:
        _, unsettled = ray.wait(unsettled, num_returns=len(unsettled), timeout=_STOP_GRACE_S)
    except KeyboardInterrupt:  # a second Ctrl-C: do not wait for them
        pass
    for ref in unsettled:  # only these: cancelling a finished task trips an assertion in Ray 2.60
        ray.cancel(ref)
    stop_file.unlink(missing_ok=True)
    for result in in_flight.values():
        result.attempts = attempts_made(result.log, sweep_id)
        # A cell that finished in the meantime counts; a partial one never does.
        result.status = "done" if run_is_complete(result.run_dir) else "interrupted"


def _stop_file(out_dir: Path, sweep_id: str) -> Path:
    return out_dir / "logs" / f"stop-{sweep_id}"


def _counts(results: list[CellResult], in_flight: Any, sweep_id: str) -> str:
    running = sum(_is_running(result, sweep_id) for result in in_flight)
    done = sum(result.status in ("done", "skipped") for result in results)
    failed = sum(result.status == "failed" for result in results)
    return f"done {done} running {running} failed {failed}"


def _is_running(result: CellResult, sweep_id: str) -> bool:
    """The cell's child process has started (its pid file names this sweep)."""
    try:
        return sweep_id in (result.log.with_suffix(".pid")).read_text(encoding="utf-8")
    except OSError:
        return False
