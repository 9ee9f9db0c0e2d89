"""The render worker: serves a SequentialRenderer per client session over ZeroMQ (protocol v1).

Run it as `python -m renderer.worker --checkpoint CKPT --bind tcp://127.0.0.1:PORT` or
`carla-neural worker ...`. Two threads:

- the I/O thread owns the ROUTER socket. It checks every message (`renderer.protocol.decode`),
  answers PING at once (even while a frame renders, so a heartbeat tells "busy" from "hung"),
  keeps the session table, enforces the caps and queue bounds, and forwards replies;
- the render thread owns the renderer states (one per session) and runs them in arrival order,
  handing replies back over an inproc socket.

Nothing here imports torch at module level, so clients can import the constants cheaply.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

import click
import numpy as np
import zmq

from renderer import protocol
from renderer.cpus import available_cpus, can_pin, format_cpus, parse_cpus, pin_process, set_torch_threads
from renderer.protocol import ErrorCode, Flag, Limits, MsgType, ProtocolError, StyleChoice
from renderer.sizes import WxH

log = logging.getLogger(__name__)

# The supervisor waits for this line on the worker's stdout: "<prefix> endpoint=... pid=...".
READY_PREFIX = "carla-neural worker ready:"
_INPROC = "inproc://render-results"
_LOGGED_REFUSALS = 50  # refused messages logged one by one; later ones only counted


class SessionRenderer(Protocol):
    """What the worker needs of a renderer state: renderer.sequential.SequentialRenderer."""

    def step(self, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> np.ndarray: ...

    def reset(self) -> None: ...

    def apply_style(self, choice: StyleChoice | None) -> None: ...


RendererFactory = Callable[[], SessionRenderer]


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the worker process is told on its command line."""

    checkpoint: str
    bind: str = "tcp://127.0.0.1:5555"
    engine: str = "torch"
    device: str = "auto"
    allow_remote: bool = False
    max_sessions: int = 8
    session_ttl_s: float = 300.0
    max_pending_per_session: int = 4
    max_queue: int = 32
    hwm: int = 64
    limits: Limits = field(default_factory=Limits)
    size: tuple[int, int] | None = None  # working (W, H); None: each session's first frame's size
    parent_pid: int | None = None
    cpus: tuple[int, ...] | None = None  # pin the worker process to these CPUs (Linux)
    threads: int | None = None  # the renderer's CPU threads (torch); None: renderer.cpus.default_threads()


class BindRefused(ValueError):
    """The bind address is not loopback and remote access was not asked for."""


def check_bind(endpoint: str, allow_remote: bool) -> None:
    """Refuse a non-loopback tcp bind unless allow_remote; warn when it is allowed."""
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return
    if parts.scheme != "tcp":
        raise BindRefused(f"cannot bind {endpoint!r}: use tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    host = parts.hostname or ""
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if loopback:
        return
    if not allow_remote:
        raise BindRefused(
            f"refusing to bind {endpoint}: {host or '*'} is not a loopback address. The protocol has "
            "no authentication or encryption; pass --allow-remote to expose the worker anyway, or bind "
            "tcp://127.0.0.1:PORT and reach it through an SSH tunnel")
    log.warning("worker bound to non-loopback %s: anyone who can reach it can use it "
                "(no authentication, no encryption)", endpoint)


@dataclass
class _Session:
    identity: bytes
    last_seen: float
    pending: int = 0


@dataclass
class _Job:
    kind: str  # "render", "reset" or "drop"
    identity: bytes
    session_id: int
    seq: int = 0
    frame_id: int = 0
    flags: int = 0
    label_ids: np.ndarray | None = None
    instance_ids: np.ndarray | None = None
    style: StyleChoice | None = None  # "style" jobs


class Worker:
    """Serves renderer states to many client sessions on one ROUTER socket."""

    def __init__(self, config: WorkerConfig, renderer_factory: RendererFactory, *,
                 facts: dict[str, Any] | None = None, context: zmq.Context | None = None) -> None:
        self.config = config
        self._factory = renderer_factory
        self._facts = dict(facts or {})
        self._label_classes = int(self._facts.get("label_classes", 256))
        self._context = context or zmq.Context.instance()
        self._sessions: dict[int, _Session] = {}
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._outstanding = 0
        self._busy_since: float | None = None
        self._started = time.monotonic()
        self._router: zmq.Socket | None = None
        self._results: zmq.Socket | None = None
        self._render_thread: threading.Thread | None = None
        self.endpoint: str | None = None
        self.counters = {"requests": 0, "errors": 0, "frames": 0, "expired": 0}
        self._reported_errors = 0
        self._last_report = time.monotonic()

    def bind(self) -> str:
        """Bind the ROUTER socket; return the concrete endpoint (a `*` port resolved)."""
        check_bind(self.config.bind, self.config.allow_remote)
        router = self._context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.RCVHWM, self.config.hwm)
        router.setsockopt(zmq.SNDHWM, self.config.hwm)
        # libzmq drops a peer that sends a frame above this, before we allocate for it.
        router.setsockopt(zmq.MAXMSGSIZE, self.config.limits.max_frame_bytes() + 4096)
        ipv6 = protocol.is_ipv6_endpoint(self.config.bind)
        if ipv6:
            router.setsockopt(zmq.IPV6, 1)  # libzmq binds no IPv6 address without it
        try:
            router.bind(self.config.bind)
        except zmq.ZMQError as exc:
            router.close(linger=0)
            if ipv6:
                raise zmq.ZMQError(exc.errno, f"{exc.strerror}: {self.config.bind} is an IPv6 address and this "
                                   "host cannot bind it (it may have no IPv6); bind tcp://127.0.0.1:PORT") from None
            raise
        self._router = router
        self._results = self._context.socket(zmq.PULL)
        self._results.setsockopt(zmq.LINGER, 0)
        self._results.bind(_INPROC + f"-{id(self)}")
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        return self.endpoint

    def serve(self, stop: threading.Event) -> None:
        """Run the I/O loop until `stop` is set (or the parent process goes away)."""
        if self._router is None:
            self.bind()
        assert self._router is not None and self._results is not None
        self._render_thread = threading.Thread(target=self._render_loop, name="render", daemon=True)
        self._render_thread.start()
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._results, zmq.POLLIN)
        next_sweep = time.monotonic() + 1.0
        try:
            while not stop.is_set():
                for sock, _event in poller.poll(200):
                    if sock is self._router:
                        self._drain_router()
                    else:
                        self._drain_results()
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + 1.0
                    self._expire_sessions(now)
                    self._report_refusals(now)
                    if self.config.parent_pid and os.getppid() != self.config.parent_pid:
                        log.warning("parent process %d is gone; worker stops", self.config.parent_pid)
                        break
        finally:
            self._jobs.put(None)
            self._render_thread.join(timeout=2.0)

    def close(self) -> None:
        """Close the sockets."""
        for sock in (self._router, self._results):
            if sock is not None:
                sock.close(linger=0)
        self._router = self._results = None

    # --- I/O thread -------------------------------------------------------------------------

    def _drain_router(self) -> None:
        assert self._router is not None
        for _ in range(self.config.hwm):
            try:
                parts = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = parts[0].bytes
            self.counters["requests"] += 1
            try:
                self._handle(identity, parts[1:])
            except ProtocolError as error:
                self.counters["errors"] += 1
                # A flood of bad messages must not become a flood of log lines: the first ones are
                # logged, the rest counted and summed up once a minute by _report_refusals.
                level = logging.INFO if self.counters["errors"] <= _LOGGED_REFUSALS else logging.DEBUG
                log.log(level, "refused a message from peer %s: %s", identity.hex(), error)
                self._send(identity, protocol.error_reply(error))

    def _send(self, identity: bytes, frames: list[Any]) -> None:
        assert self._router is not None
        try:
            # ROUTER drops (never blocks) when the peer's queue is at its HWM or the peer is gone.
            self._router.send_multipart([identity, *frames], copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            log.debug("reply to peer %s dropped: its queue is full", identity.hex())

    def _handle(self, identity: bytes, frames: list[zmq.Frame]) -> None:
        message = protocol.decode(frames, self.config.limits, expect=protocol.REQUEST_TYPES)
        ids = {"session_id": message.session_id, "seq": message.seq, "frame_id": message.frame_id}
        now = time.monotonic()
        session = self._sessions.get(message.session_id)
        if session is not None:
            session.identity = identity
            session.last_seen = now
        if message.msg_type == MsgType.PING:
            self._send(identity, protocol.encode(MsgType.PONG, session_id=message.session_id,
                                                 seq=message.seq, text=json.dumps(self.facts())))
            return
        if message.session_id == 0:
            raise ProtocolError(ErrorCode.BAD_VALUE, "session id 0 is reserved; pick a random nonzero "
                                "64-bit id", **ids)
        if message.msg_type == MsgType.BYE:
            if self._sessions.pop(message.session_id, None) is not None:
                self._jobs.put(_Job("drop", identity, message.session_id))
            self._send(identity, protocol.encode(MsgType.ACK, session_id=message.session_id, seq=message.seq))
            return
        style = self._checked_style(message, ids) if message.msg_type == MsgType.STYLE else None
        starts_sequence = message.msg_type in (MsgType.RESET, MsgType.STYLE) or bool(message.flags & Flag.RESET)
        label_ids = instance_ids = None
        if message.msg_type == MsgType.RENDER:
            label_ids, instance_ids = protocol.check_render_request(message)
            top = int(label_ids.max())
            if top >= self._label_classes:
                raise ProtocolError(ErrorCode.BAD_VALUE, f"label id {top} is outside the model's "
                                    f"0..{self._label_classes - 1}; send Cityscapes labelIds", **ids)
        if session is None:
            if not starts_sequence:
                raise ProtocolError(ErrorCode.UNKNOWN_SESSION, f"session {message.session_id:#x} is not "
                                    "held here (expired, ended or the worker restarted); start it again "
                                    "with RESET or a RENDER flagged RESET", **ids)
            session = self._open_session(message.session_id, identity, now, ids)
        if session.pending >= self.config.max_pending_per_session:
            raise ProtocolError(ErrorCode.BUSY, f"session already has {session.pending} requests queued "
                                f"(max {self.config.max_pending_per_session}); wait for replies", **ids)
        if self._outstanding >= self.config.max_queue:
            raise ProtocolError(ErrorCode.BUSY, f"worker queue is full ({self._outstanding} requests, max "
                                f"{self.config.max_queue}); retry later", **ids)
        kind = {MsgType.RESET: "reset", MsgType.STYLE: "style"}.get(message.msg_type, "render")
        session.pending += 1
        self._outstanding += 1
        self._jobs.put(_Job(kind, identity, message.session_id, message.seq, message.frame_id,
                            message.flags, label_ids, instance_ids, style))

    def _checked_style(self, message: protocol.Message, ids: dict[str, int]) -> StyleChoice | None:
        """A STYLE's choice, checked against the model (styles present, index, vectors' shape)."""
        choice = protocol.check_style_request(message)
        if choice is None:
            return None
        checkpoint = self._facts.get("checkpoint", "this checkpoint")
        feat_nc = int(self._facts.get("feature_channels", 0))
        styles = int(self._facts.get("styles", 0))
        if feat_nc == 0:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"checkpoint {checkpoint} has no styles (no feature "
                                "encoder): render without --style, or use a checkpoint trained with "
                                "`carla-neural train --feature-channels N`", **ids)
        if choice.index is not None and choice.index >= styles:
            have = f"styles 0..{styles - 1}" if styles else "no style clusters (run `carla-neural styles CKPT --data DIR`)"
            raise ProtocolError(ErrorCode.BAD_VALUE, f"STYLE field aux (style index) = {choice.index}: "
                                f"checkpoint {checkpoint} has {have}", **ids)
        expected = (self._label_classes, feat_nc)
        if choice.vectors is not None and choice.vectors.shape != expected:
            raise ProtocolError(ErrorCode.BAD_SHAPE, f"STYLE field vectors has shape {choice.vectors.shape}; "
                                f"this model takes (label_nc, feat_nc) = {expected}", **ids)
        return choice

    def _open_session(self, session_id: int, identity: bytes, now: float, ids: dict[str, int]) -> _Session:
        if len(self._sessions) >= self.config.max_sessions:
            self._expire_sessions(now)
        if len(self._sessions) >= self.config.max_sessions:
            raise ProtocolError(ErrorCode.TOO_MANY_SESSIONS, f"worker holds {len(self._sessions)} sessions "
                                f"(max {self.config.max_sessions}); end one with BYE or start the worker "
                                "with a larger --max-sessions", **ids)
        session = _Session(identity=identity, last_seen=now)
        self._sessions[session_id] = session
        log.info("session %#x opened (%d held)", session_id, len(self._sessions))
        return session

    def _expire_sessions(self, now: float) -> None:
        ttl = self.config.session_ttl_s
        for session_id, session in list(self._sessions.items()):
            if session.pending == 0 and now - session.last_seen > ttl:
                del self._sessions[session_id]
                self._jobs.put(_Job("drop", session.identity, session_id))
                self.counters["expired"] += 1
                log.info("session %#x expired after %.0f s without a message", session_id, ttl)

    def _report_refusals(self, now: float) -> None:
        if now - self._last_report < 60.0:
            return
        refused = self.counters["errors"] - self._reported_errors
        if refused and self.counters["errors"] > _LOGGED_REFUSALS:
            log.warning("refused %d bad messages in the last %.0f s", refused, now - self._last_report)
        self._reported_errors = self.counters["errors"]
        self._last_report = now

    def _drain_results(self) -> None:
        assert self._results is not None
        while True:
            try:
                parts = self._results.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity, session_frame, *reply = parts
            self._outstanding -= 1
            session = self._sessions.get(int.from_bytes(session_frame.bytes, "little"))
            if session is not None:
                # max(): a session ended and reopened under the same id may see its old replies.
                session.pending = max(0, session.pending - 1)
            self._send(identity.bytes, reply)

    def facts(self) -> dict[str, Any]:
        """What a PONG tells a client: protocol, model facts, load and limits."""
        busy_since = self._busy_since
        return {
            **self._facts,
            "protocol": protocol.VERSION,
            "pid": os.getpid(),
            "endpoint": self.endpoint,
            "engine": self.config.engine,
            "device": self._facts.get("device", self.config.device),
            "sessions": len(self._sessions),
            "max_sessions": self.config.max_sessions,
            "queued": self._outstanding,
            "max_queue": self.config.max_queue,
            "max_pending_per_session": self.config.max_pending_per_session,
            "session_ttl_s": self.config.session_ttl_s,
            "busy_s": 0.0 if busy_since is None else round(time.monotonic() - busy_since, 3),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "frames": self.counters["frames"],
            "limits": asdict(self.config.limits),
        }

    # --- render thread ----------------------------------------------------------------------

    def _render_loop(self) -> None:
        push = self._context.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(_INPROC + f"-{id(self)}")
        states: dict[int, SessionRenderer] = {}
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                if job.kind == "drop":
                    states.pop(job.session_id, None)
                    continue
                self._busy_since = time.monotonic()
                try:
                    reply = self._run_job(job, states)
                finally:
                    self._busy_since = None
                push.send_multipart([job.identity, job.session_id.to_bytes(8, "little"), *reply], copy=False)
        finally:
            push.close(linger=0)

    def _run_job(self, job: _Job, states: dict[int, SessionRenderer]) -> list[Any]:
        ids = {"session_id": job.session_id, "seq": job.seq, "frame_id": job.frame_id}
        try:
            state = states.get(job.session_id)
            if state is None:
                state = states[job.session_id] = self._factory()
            elif job.kind == "reset" or job.flags & Flag.RESET:
                state.reset()
            if job.kind == "style":
                state.apply_style(job.style)  # also starts a new sequence
            if job.kind in ("reset", "style"):
                return protocol.encode(MsgType.ACK, session_id=job.session_id, seq=job.seq)
            started = time.perf_counter()
            rgb = state.step(job.label_ids, job.instance_ids)
            render_us = int((time.perf_counter() - started) * 1e6)
            assert job.label_ids is not None
            if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.shape == (*job.label_ids.shape, 3)):
                raise RuntimeError(f"renderer returned {getattr(rgb, 'shape', type(rgb))} "
                                   f"{getattr(rgb, 'dtype', '')}, expected {(*job.label_ids.shape, 3)} uint8")
            self.counters["frames"] += 1
            no_image = bool(job.flags & Flag.NO_IMAGE)
            return protocol.encode(MsgType.RENDER_REPLY, session_id=job.session_id, seq=job.seq,
                                   frame_id=job.frame_id, flags=int(Flag.NO_IMAGE) if no_image else 0,
                                   aux=min(render_us, 0xFFFFFFFF), arrays=() if no_image else [rgb])
        except Exception as exc:  # the renderer failing on one frame must not take the worker down
            log.error("render failed for session %#x frame %d:\n%s", job.session_id, job.frame_id,
                      traceback.format_exc())
            return protocol.error_reply(ProtocolError(ErrorCode.RENDER_FAILED,
                                                      f"{type(exc).__name__}: {exc}", **ids))


def model_renderer_factory(checkpoint: str, engine: str, device: str,
                           size: tuple[int, int] | None = None) -> tuple[RendererFactory, dict[str, Any]]:
    """Load the checkpoint once and return a factory of per-session renderer states and model facts."""
    # torch is imported here, not at module level
    from renderer.loading import load_renderer
    from renderer.sequential import SequentialRenderer

    first = load_renderer(checkpoint, engine=engine, device=device, size=size)
    working_size = first.size
    spare: list[SessionRenderer] = [first]

    def factory() -> SessionRenderer:
        if spare:
            return spare.pop()
        # Sessions share the weights and the engine; only the temporal state is per session.
        state = SequentialRenderer(first.generator, first.device, working_size, engine=first.engine,
                                   start=first.start)
        state.style_bank = first.style_bank
        state.apply_style(None)  # the default style, as the first state has it
        return state

    config = first.config
    facts = {
        "checkpoint": str(checkpoint),
        "device": str(first.device),
        "label_classes": int(config.label_nc),
        # What a client resends to rebuild a session: the n_frames - 1 previous frames.
        "history_frames": int(config.n_frames) - 1,
        "working_size": None if working_size is None else list(working_size),
        # Styles (docs/styles.md): the feature channels the model takes (0: none) and its clusters.
        "feature_channels": int(config.feat_nc),
        "styles": 0 if first.style_bank is None else first.style_bank.k,
    }
    return factory, facts


def apply_cpu_limits(cpus: tuple[int, ...] | None, threads: int | None) -> dict[str, Any]:
    """Pin every thread of this process to `cpus` and set torch's thread count; return what holds now.

    Call before the model loads, so that the threads torch and ZeroMQ start later inherit the pinning.
    """
    if cpus:
        if can_pin():
            pin_process(cpus)
        else:
            log.warning("--cpus is ignored: this system cannot pin processes to CPUs")
    # After the pinning: the default is half of the CPUs left to us.
    threads = set_torch_threads(threads)
    return {"cpus": format_cpus(available_cpus()), "threads": threads}


def run(config: WorkerConfig, *, factory: tuple[RendererFactory, dict[str, Any]] | None = None) -> int:
    """Load the model, bind, print the ready line and serve until SIGTERM/SIGINT; return an exit code."""
    try:
        check_bind(config.bind, config.allow_remote)
    except BindRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        cpu_facts = apply_cpu_limits(config.cpus, config.threads)
    except (ValueError, OSError) as exc:
        print(f"error: cannot apply --cpus/--threads: {exc}", file=sys.stderr)
        return 2
    if factory is None:
        from renderer.checkpoint import CheckpointError
        from renderer.checkpoint_ref import CheckpointMissing, resolve_checkpoint

        try:
            resolve_checkpoint(config.checkpoint)
        except CheckpointMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

        from renderer.engines import pick_engine
        from renderer.loading import resolve_device

        # "auto" becomes the engine it picks here, so PONG and the ready line name what really runs.
        config = replace(config, engine=pick_engine(config.engine, resolve_device(config.device)))
        try:
            factory = model_renderer_factory(config.checkpoint, config.engine, config.device, config.size)
        except CheckpointError as exc:  # names the file, the field and what to do
            print(f"error: {exc}", file=sys.stderr)
            return 4
        except Exception as exc:
            log.debug("load failed", exc_info=True)
            print(f"error: cannot load checkpoint {config.checkpoint}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 4
    worker = Worker(config, factory[0], facts={**factory[1], **cpu_facts})
    try:
        endpoint = worker.bind()
    except zmq.ZMQError as exc:
        print(f"error: cannot bind {config.bind}: {exc}", file=sys.stderr)
        worker.close()
        return 3
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    facts = worker.facts()
    print(f"{READY_PREFIX} endpoint={endpoint} pid={os.getpid()} protocol={protocol.VERSION} "
          f"engine={config.engine} device={facts['device']}", flush=True)
    try:
        worker.serve(stop)
    finally:
        worker.close()
    log.info("worker stopped after %d frames", worker.counters["frames"])
    return 0


class _Cpus(click.ParamType):
    name = "CPUS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_cpus(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


_DEFAULTS = WorkerConfig(checkpoint="")


@click.command(name="worker")
@click.option("--checkpoint", required=True, help="Checkpoint folder (config.json + model.safetensors), "
              "an NVIDIA checkpoint folder, or 'bundled'.")
@click.option("--bind", default=_DEFAULTS.bind, show_default=True,
              help="ZeroMQ endpoint to listen on; port * picks a free one.")
@click.option("--engine", default=_DEFAULTS.engine, show_default=True, help="Renderer engine.")
@click.option("--device", default=_DEFAULTS.device, show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback bind (no authentication!).")
@click.option("--max-sessions", type=int, default=_DEFAULTS.max_sessions, show_default=True,
              help="Client sessions held at once.")
@click.option("--session-ttl", type=float, default=_DEFAULTS.session_ttl_s, show_default=True,
              help="Seconds of silence that end a session.")
@click.option("--max-pending", type=int, default=_DEFAULTS.max_pending_per_session, show_default=True,
              help="Queued requests per session.")
@click.option("--max-queue", type=int, default=_DEFAULTS.max_queue, show_default=True, help="Queued requests in all.")
@click.option("--hwm", type=int, default=_DEFAULTS.hwm, show_default=True,
              help="ZeroMQ high-water mark, messages each way.")
@click.option("--max-side", type=int, default=Limits.max_side, show_default=True, help="Largest accepted image side.")
@click.option("--max-pixels", type=int, default=Limits.max_pixels, show_default=True, help="Largest accepted H*W.")
@click.option("--size", type=WxH(), default=None, help="Working size WxH the model renders at, e.g. 512x256 "
              "(inputs are resized to it).")
@click.option("--cpus", type=_Cpus(), default=None, help="Pin the worker to these CPUs, e.g. 1, 2-7 or 0,2 "
              "(Linux), so that it does not compete with a simulator or pipeline on the same machine.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of the renderer (torch). Default: half the CPUs the worker may use, at least 1.")
@click.option("--parent-pid", type=int, default=None, hidden=True, help="Exit when this process is gone.")
@click.option("--log-level", default="INFO", show_default=True, hidden=True)
def command(checkpoint: str, bind: str, engine: str, device: str, allow_remote: bool, max_sessions: int,
            session_ttl: float, max_pending: int, max_queue: int, hwm: int, max_side: int, max_pixels: int,
            size: tuple[int, int] | None, cpus: tuple[int, ...] | None, threads: int | None,
            parent_pid: int | None, log_level: str) -> None:
    """Serve the renderer over ZeroMQ: one renderer state per client session."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = WorkerConfig(checkpoint=checkpoint, bind=bind, engine=engine, device=device,
                          allow_remote=allow_remote, max_sessions=max_sessions, session_ttl_s=session_ttl,
                          max_pending_per_session=max_pending, max_queue=max_queue, hwm=hwm,
                          limits=Limits(max_side=max_side, max_pixels=max_pixels), size=size,
                          parent_pid=parent_pid, cpus=cpus, threads=threads)
    code = run(config)
    if code:
        raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m renderer.worker` (the same command as `carla-neural worker`)."""
    try:
        command.main(args=argv, prog_name="python -m renderer.worker", standalone_mode=False)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Abort:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
