"""WorkerSupervisor: starts the render worker process, waits for it, restarts it when it fails.

The supervisor owns the process and its restarts; a render session (carla_neural.render_session)
takes it as a `WorkerHandle` (endpoint, generation, exit code, restart), notices a dead worker
(process exit) or a hung one (no heartbeat), asks for a `restart`, and re-primes. The session
never imports the supervisor; `client()` builds one, as jupyter_client's KernelManager does. The worker is always stopped by `stop()`, the context manager, or at interpreter exit.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import zmq

from renderer import protocol
from renderer.checkpoint_ref import resolve_checkpoint
from renderer.cpus import format_cpus
from renderer.protocol import MsgType
from renderer.worker import READY_PREFIX
from carla_neural.render_session import WorkerUnavailable

if TYPE_CHECKING:
    from carla_neural.render_client import RenderClient

log = logging.getLogger(__name__)

_READY_RE = re.compile(re.escape(READY_PREFIX) + r" endpoint=(\S+)")
_EXIT_BIND_FAILED = 3


class WorkerStartError(WorkerUnavailable):
    """The worker process exited or stayed silent before it was ready; the text has its output tail."""


def _kill_process(process: subprocess.Popen) -> None:
    """SIGKILL a child (stopped or not) and reap it; used at interpreter exit as a last resort."""
    if process.poll() is None:
        try:
            process.kill()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass


class WorkerSupervisor:
    """Starts `python -m renderer.worker` as a child process and restarts it on request."""

    def __init__(self, checkpoint: str | Path, *, engine: str = "torch", device: str = "auto",
                 bind: str = "tcp://127.0.0.1:*", ready_timeout_s: float = 120.0,
                 log_path: str | Path | None = None, worker_args: Sequence[str] = (),
                 max_restarts: int = 10, env: dict[str, str] | None = None,
                 cpus: Sequence[int] | None = None, threads: int | None = None) -> None:
        self.checkpoint = str(checkpoint)
        self.engine = engine
        self.device = device
        self.bind = bind
        self.ready_timeout_s = ready_timeout_s
        self.worker_args = list(worker_args)
        # Pinning (see carla_neural.cpu_split): the worker's CPUs and its renderer's threads.
        if cpus:
            self.worker_args += ["--cpus", format_cpus(cpus)]
        if threads is not None:
            self.worker_args += ["--threads", str(threads)]
        self.max_restarts = max_restarts
        self._env = env
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path else None
        self.endpoint: str | None = None
        self.restarts = 0
        self.generation = 0  # +1 on every successful start; clients reconnect when it changes
        self.last_restart_reason: str | None = None
        self._process: subprocess.Popen | None = None
        self._log_offset = 0
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.RLock()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> str:
        """Start the worker and wait until it is ready; return its endpoint."""
        with self._lock:
            if self.running:
                assert self.endpoint is not None
                return self.endpoint
            resolve_checkpoint(self.checkpoint)  # CheckpointMissing (a FileNotFoundError) before spawning
            bind = self.endpoint or self.bind
            try:
                self.endpoint = self._spawn(bind)
            except WorkerStartError:
                # The old port may have been taken meanwhile: fall back to the configured bind.
                if bind == self.bind or self.exit_code() != _EXIT_BIND_FAILED:
                    raise
                self.endpoint = self._spawn(self.bind)
            self.generation += 1
            return self.endpoint

    def _spawn(self, bind: str) -> str:
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="carla-neural-worker-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [sys.executable, "-m", "renderer.worker", "--checkpoint", self.checkpoint,
                   "--bind", bind, "--engine", self.engine, "--device", self.device,
                   "--parent-pid", str(os.getpid()), *self.worker_args]
        env = dict(os.environ if self._env is None else self._env)
        env["PYTHONUNBUFFERED"] = "1"
        # The worker needs only renderer/: make sure the child finds the same package we use.
        package_root = str(Path(protocol.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        log.info("starting worker: %s", " ".join(command))
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self._finalizer = weakref.finalize(self, _kill_process, self._process)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            match = _READY_RE.search(self._new_output())
            if match:
                log.info("worker pid %d ready on %s", self._process.pid, match.group(1))
                return match.group(1)
            code = self._process.poll()
            if code is not None:
                raise WorkerStartError(f"worker exited with code {code} before it was ready. "
                                       f"Its output ends with:\n{self.output_tail()}")
            time.sleep(0.05)
        _kill_process(self._process)
        raise WorkerStartError(f"worker not ready after {self.ready_timeout_s:.0f} s (killed). "
                               f"Its output ends with:\n{self.output_tail()}")

    def _new_output(self) -> str:
        assert self.log_path is not None
        with open(self.log_path, "rb") as log_file:
            log_file.seek(self._log_offset)
            return log_file.read().decode("utf-8", "replace")

    def output_tail(self, lines: int = 30) -> str:
        """The last lines the current worker wrote (stdout and stderr together)."""
        if self.log_path is None or not self.log_path.exists():
            return "(no output)"
        text = self._new_output().rstrip()
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def restart(self, reason: str, generation: int | None = None) -> str:
        """Kill the worker (whatever state it is in) and start a new one; return its endpoint.

        `generation` is the one the caller saw fail: if another caller restarted meanwhile,
        nothing is done.
        """
        with self._lock:
            if generation is not None and generation != self.generation and self.running:
                assert self.endpoint is not None
                return self.endpoint
            if self.restarts >= self.max_restarts:
                raise WorkerUnavailable(f"worker failed again ({reason}) after {self.restarts} restarts; "
                                        f"giving up. Its output ends with:\n{self.output_tail()}")
            code = self.exit_code()
            if code is not None and code < 0:
                reason = f"{reason}; it was killed by {signal.Signals(-code).name}"
            log.warning("restarting worker pid %s: %s", self.pid, reason)
            self._terminate(grace_s=0.0)
            self.restarts += 1
            self.last_restart_reason = reason
            return self.start()

    def stop(self, grace_s: float = 3.0) -> None:
        """Stop the worker: SIGTERM, then SIGKILL after `grace_s`; remove the temporary log."""
        with self._lock:
            self._terminate(grace_s)
            if self._own_log and self.log_path is not None:
                self.log_path.unlink(missing_ok=True)
                self.log_path = None

    def _terminate(self, grace_s: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None and grace_s > 0:
            try:
                process.send_signal(signal.SIGTERM)
                process.send_signal(signal.SIGCONT)  # a stopped process handles SIGTERM only when resumed
                process.wait(timeout=grace_s)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill_process(process)
        if self._finalizer is not None:
            self._finalizer.detach()

    def __enter__(self) -> "WorkerSupervisor":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # --- state ------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The worker's process id, or None before the first start."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """Whether the worker process exists and has not exited (it may still be hung)."""
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        """The worker's exit status (negative: killed by that signal), or None while it runs."""
        return None if self._process is None else self._process.poll()

    def ping(self, timeout_s: float = 2.0) -> dict[str, Any] | None:
        """Ask the worker for its facts on a fresh socket; None when it does not answer in time."""
        if self.endpoint is None:
            return None
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            socket.connect(self.endpoint)
            socket.send_multipart(protocol.encode(MsgType.PING))
            if socket.poll(int(timeout_s * 1000)):
                message = protocol.decode(socket.recv_multipart(), expect=frozenset({MsgType.PONG}))
                return json.loads(message.text or "{}")
            return None
        finally:
            socket.close(linger=0)

    def client(self, **options: Any) -> "RenderClient":
        """A RenderClient on this worker that restarts it when it dies or hangs."""
        from carla_neural.render_client import RenderClient

        return RenderClient(supervisor=self, **options)
