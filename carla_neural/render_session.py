"""The session core a render client stands on: one ZeroMQ socket to a worker, heartbeats,
recovery and re-priming, whatever the mode (carla_neural.render_client holds the two modes).

Failures (Lazy/Paranoid Pirate from the ZeroMQ guide): while it waits, the session pings the
worker every `heartbeat_s`; `liveness` missed heartbeats, an exited worker process, or a frame
that takes more than `render_timeout_s` means the worker is lost. Given a `WorkerHandle` (the
supervisor that owns the process) the worker is then restarted; either way the session
reconnects on a fresh socket and re-primes: it resends its last few frames (`history_frames`,
rendered without images coming back) from a RESET, so that the sequential renderer has a history
again, then lets its mode resend the frames it was waiting for. See docs/protocol.md
("Recovery") for what that means for temporal state.

The session knows the worker process only through `WorkerHandle` (endpoint, generation, exit
code, restart): it never imports the supervisor, which owns the process and its restarts.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import zmq

from renderer import protocol
from renderer.protocol import DEFAULT_LIMITS, ErrorCode, Flag, Limits, Message, MsgType, StyleChoice

log = logging.getLogger(__name__)

DEFAULT_HISTORY_FRAMES = 2  # vid2vid's n_frames_G - 1: the previous outputs the generator sees


class WorkerUnavailable(RuntimeError):
    """No worker answers, and none could be (re)started."""


class WorkerError(RuntimeError):
    """The worker refused a request; `code` is a protocol.ErrorCode."""

    def __init__(self, code: int, message: str, frame_id: int) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"code {code}"
        super().__init__(f"worker refused frame {frame_id}: {name}: {message}")
        self.code = code
        self.frame_id = frame_id


class WorkerHandle(Protocol):
    """What a session needs of whoever owns the worker process (e.g. WorkerSupervisor)."""

    endpoint: str | None
    generation: int  # +1 on every start; a session reconnects when it changes

    def start(self) -> str:
        """Start the worker if it is not running; return its endpoint."""

    def exit_code(self) -> int | None:
        """The process's exit status, or None while it runs."""

    def restart(self, reason: str, generation: int | None = None) -> str:
        """Replace the worker of `generation` (unless someone did already); return the endpoint."""


class WorkerLost(Exception):
    """The worker died, hung or cannot be reached; the session recovers and resends."""


@dataclass(frozen=True)
class RenderResult:
    """One rendered frame: rgb (H, W, 3) uint8 (read-only view on the received buffer)."""

    frame_id: int
    rgb: np.ndarray
    latency_ms: float  # submit/send to reply, as seen by the client
    render_ms: float  # the renderer's own time in the worker
    # Lock-step, pipelined: the part of latency_ms spent queued behind the previous frame.
    queued_ms: float = 0.0
    # latency_ms - queued_ms - render_ms: the round trip's own cost. None when the reply was in
    # before receive() asked for it, as then its arrival time, and so the transport, is unknown.
    transport_ms: float | None = None


@dataclass
class FrameInput:
    """A frame as sent: label_ids (H, W) uint8, instance_ids (H, W) int32 or None."""

    frame_id: int
    label_ids: np.ndarray
    instance_ids: np.ndarray | None

    def copied(self) -> "FrameInput":
        """A copy that owns its buffers (the caller may reuse its own)."""
        return FrameInput(self.frame_id, self.label_ids.copy(),
                          None if self.instance_ids is None else self.instance_ids.copy())


class ModeHooks(Protocol):
    """What the session asks of the mode in use when the connection changes."""

    def on_new_socket(self) -> None:
        """A fresh socket: replies on the old one never come."""

    def resend(self) -> None:
        """After re-priming: send again what the mode was waiting for."""


class RenderSession:
    """A session on a render worker: socket, handshake, heartbeats, recovery and re-priming."""

    def __init__(self, endpoint: str | None = None, *, supervisor: WorkerHandle | None = None,
                 session_id: int | None = None, connect_timeout_s: float = 10.0,
                 heartbeat_s: float = 1.0, liveness: int = 3, render_timeout_s: float = 120.0,
                 retries: int = 3, history_frames: int | None = None, max_in_flight: int = 2,
                 zero_copy: bool = True, limits: Limits = DEFAULT_LIMITS,
                 context: zmq.Context | None = None, style: StyleChoice | None = None) -> None:
        if (endpoint is None) == (supervisor is None):
            raise ValueError("give a worker endpoint or a WorkerSupervisor, not both or neither")
        if not 1 <= max_in_flight <= 8:
            raise ValueError(f"max_in_flight must be 1..8, got {max_in_flight}")
        self.supervisor = supervisor
        self._endpoint = endpoint
        self.session_id = session_id if session_id else secrets.randbits(64) | 1
        self.connect_timeout_s = connect_timeout_s
        self.heartbeat_s = heartbeat_s
        self.liveness = liveness
        self.render_timeout_s = render_timeout_s
        self.retries = retries
        self.max_in_flight = max_in_flight
        self.zero_copy = zero_copy
        self.limits = limits
        self._fixed_history = history_frames
        self.history: deque[FrameInput] = deque(maxlen=history_frames if history_frames is not None
                                                else DEFAULT_HISTORY_FRAMES)
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._generation: int | None = None
        self._seq = 0
        self.started = False  # whether the worker holds our sequence (else the next RENDER resets)
        # The session's style (docs/styles.md): sent as STYLE before each sequence starts, so a
        # restarted worker or a re-primed session renders in it too. None: no STYLE is ever sent.
        self.style = style
        self.hooks: ModeHooks | None = None
        self._last_heard = 0.0
        self._last_ping = 0.0
        self.failures = 0
        self.last_result: RenderResult | None = None
        self.facts: dict[str, Any] = {}
        self.state = "disconnected"
        # recoveries: the worker was lost and restarted or reconnected; resyncs: a live worker had
        # lost our session (e.g. a restarted one that ZeroMQ reconnected to by itself) and was re-primed.
        self.stats = {"recoveries": 0, "resyncs": 0, "reprimed_frames": 0, "stale_dropped": 0,
                      "superseded": 0, "busy_dropped": 0, "busy_resent": 0}

    # --- connection -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str | None:
        """The worker's current endpoint (the supervisor's, when supervised)."""
        return self.supervisor.endpoint if self.supervisor is not None else self._endpoint

    def connect(self) -> "RenderSession":
        """Open the socket and check that a worker answers (starting it when supervised)."""
        if self.supervisor is not None:
            self.supervisor.start()
        self._open_socket()
        try:
            self._handshake()
        except WorkerLost as lost:
            if self.supervisor is None:
                self.close()
                raise WorkerUnavailable(
                    f"no worker answered at {self._endpoint} within {self.connect_timeout_s:.0f} s ({lost}). "
                    f"Start one with `carla-neural worker --checkpoint CKPT --bind {self._endpoint}` "
                    "or check the address.") from None
            self.recover(str(lost))
        return self

    def _open_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)  # drops whatever was queued for a dead worker
        endpoint = self.endpoint
        assert endpoint is not None
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection, never for a dead peer
        sock.setsockopt(zmq.SNDTIMEO, int(self.heartbeat_s * self.liveness * 1000))
        sock.setsockopt(zmq.SNDHWM, 16)
        sock.setsockopt(zmq.RCVHWM, 16)
        sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_frame_bytes() + 4096)
        if protocol.is_ipv6_endpoint(endpoint):
            sock.setsockopt(zmq.IPV6, 1)  # ZeroMQ connects to [::1] only with this set
        sock.connect(endpoint)
        self._socket = sock
        self._generation = self.supervisor.generation if self.supervisor is not None else None
        if self.hooks is not None:
            self.hooks.on_new_socket()
        self.started = False
        self.state = "connecting"

    def _handshake(self) -> None:
        seq = self.send_message(protocol.encode(MsgType.PING, session_id=self.session_id, seq=self.next_seq()))
        deadline = time.monotonic() + self.connect_timeout_s
        while time.monotonic() < deadline:
            message = self.poll_message(0.05)
            if message is not None and message.msg_type == MsgType.PONG and message.seq == seq:
                if message.text is not None:
                    self._take_facts(message.text)
                self.state = "ok"
                return
            self._check_process()
        raise WorkerLost(f"no answer to a ping within {self.connect_timeout_s:.0f} s")

    def _take_facts(self, text: str) -> None:
        try:
            self.facts = json.loads(text)
        except json.JSONDecodeError:
            log.warning("worker sent facts that are not JSON: %.80r", text)
            return
        if self._fixed_history is None:
            history = int(self.facts.get("history_frames", DEFAULT_HISTORY_FRAMES))
            if history != self.history.maxlen:
                self.history = deque(self.history, maxlen=max(0, history))

    def close(self) -> None:
        """End the session (BYE, best effort) and close the socket; the worker is not stopped."""
        sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.send_multipart(protocol.encode(MsgType.BYE, session_id=self.session_id,
                                                    seq=self.next_seq()), flags=zmq.NOBLOCK)
                sock.poll(200)
            except zmq.ZMQError:
                pass
            sock.close(linger=0)
        self.state = "closed"

    def __enter__(self) -> "RenderSession":
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- messages ---------------------------------------------------------------------------

    def checked_input(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None,
                      copy: bool) -> FrameInput:
        """A frame checked against the protocol's limits before anything is sent."""
        label_ids = np.asarray(label_ids)
        if label_ids.dtype != np.uint8 or label_ids.ndim != 2:
            raise ValueError(f"label_ids must be (H, W) uint8 Cityscapes labelIds, got {label_ids.shape} "
                             f"{label_ids.dtype}")
        height, width = label_ids.shape
        if max(height, width) > self.limits.max_side or height * width > self.limits.max_pixels:
            raise ValueError(f"label_ids of {width}x{height} exceed the limits (side <= "
                             f"{self.limits.max_side}, pixels <= {self.limits.max_pixels})")
        if instance_ids is not None:
            instance_ids = np.asarray(instance_ids)
            if instance_ids.shape != label_ids.shape:
                raise ValueError(f"instance_ids shape {instance_ids.shape} differs from label_ids "
                                 f"shape {label_ids.shape}")
            if instance_ids.dtype != np.int32:
                if instance_ids.dtype.kind not in "iu":
                    raise ValueError(f"instance_ids must be integers, got {instance_ids.dtype}")
                info = np.iinfo(np.int32)
                if instance_ids.dtype.itemsize >= 4 and instance_ids.size and (
                        instance_ids.min() < info.min or instance_ids.max() > info.max):
                    raise ValueError("instance_ids do not fit in int32")
                instance_ids = instance_ids.astype(np.int32)
        frame = FrameInput(int(frame_id), np.ascontiguousarray(label_ids),
                           None if instance_ids is None else np.ascontiguousarray(instance_ids))
        return frame.copied() if copy else frame

    def next_seq(self) -> int:
        """The next message sequence number."""
        self._seq = (self._seq + 1) & 0xFFFFFFFFFFFFFFFF
        return self._seq

    def send_message(self, frames: list[Any]) -> int:
        """Send a message; return its seq (read back from the header)."""
        assert self._socket is not None
        try:
            self._socket.send_multipart(frames, copy=not self.zero_copy)
        except zmq.Again:
            raise WorkerLost("cannot send: no connection to the worker") from None
        return self._seq

    def send_render(self, frame: FrameInput, flags: int = 0) -> int:
        """Send one RENDER (with RESET when the worker holds no sequence of ours); return its seq."""
        if not self.started:
            flags |= Flag.RESET
            if self.style is not None:
                self._send_style(frame.frame_id)
        seq = self.next_seq()
        self.send_message(protocol.render_request(self.session_id, seq, frame.frame_id, frame.label_ids,
                                          frame.instance_ids, flags=int(flags)))
        self.started = True
        return seq

    def _send_style(self, frame_id: int) -> None:
        """STYLE, waiting for its ACK (once per sequence); WorkerError when the worker refuses it."""
        seq = self.next_seq()
        sent_at = time.monotonic()
        self.send_message(protocol.style_request(self.session_id, seq, self.style))
        message = self._wait_reply(seq, sent_at)
        if message.msg_type == MsgType.ERROR:
            raise WorkerError(message.code, f"style refused: {message.text}", frame_id)

    def reply_waiting(self) -> bool:
        """Whether a reply has arrived and not been read."""
        return self._socket is not None and bool(self._socket.poll(0))

    def poll_message(self, timeout_s: float) -> Message | None:
        """The next reply within timeout_s, checked; None when none came."""
        assert self._socket is not None
        if not self._socket.poll(int(timeout_s * 1000)):
            return None
        parts = self._socket.recv_multipart(copy=not self.zero_copy)
        message = protocol.decode(parts, self.limits, expect=protocol.REPLY_TYPES)
        self._last_heard = time.monotonic()
        if message.msg_type == MsgType.PONG and message.text is not None:
            self._take_facts(message.text)
        return message

    def _wait_reply(self, seq: int, sent_at: float) -> Message:
        while True:
            message = self.poll_message(min(0.1, self.heartbeat_s))
            if message is None:
                self.check_alive(sent_at)
            elif message.seq == seq and message.msg_type != MsgType.PONG:
                return message
            elif message.msg_type != MsgType.PONG:
                self.stats["stale_dropped"] += 1

    # --- liveness and recovery --------------------------------------------------------------

    def _check_process(self) -> None:
        supervisor = self.supervisor
        if supervisor is None:
            return
        if supervisor.generation != self._generation:
            raise WorkerLost("the worker was restarted by another client")
        code = supervisor.exit_code()
        if code is not None:
            raise WorkerLost(f"worker process exited with code {code}")

    def check_alive(self, waiting_since: float) -> None:
        """Raise WorkerLost when the worker is dead, silent for `liveness` heartbeats, or stuck."""
        self._check_process()
        now = time.monotonic()
        silent_s = now - max(self._last_heard, waiting_since)
        if silent_s > self.heartbeat_s * self.liveness:
            raise WorkerLost(f"no reply or heartbeat for {silent_s:.1f} s (worker hung or unreachable)")
        if now - waiting_since > self.render_timeout_s:
            raise WorkerLost(f"no frame back after {self.render_timeout_s:.0f} s although the worker "
                             "answers heartbeats (render stuck)")
        if now - max(self._last_ping, waiting_since) >= self.heartbeat_s:
            self._last_ping = now
            self.send_message(protocol.encode(MsgType.PING, session_id=self.session_id, seq=self.next_seq()))

    def ensure_ready(self) -> None:
        """Connect on first use; reconnect when the supervisor restarted the worker meanwhile."""
        if self._socket is None:
            self.connect()
        elif self.supervisor is not None and self.supervisor.generation != self._generation:
            self.recover("the worker was restarted")

    def recover(self, reason: str) -> None:
        """Restart (when supervised) or reconnect, then re-prime; WorkerUnavailable after `retries`."""
        while True:
            self.failures += 1
            if self.failures > self.retries:
                self.state = "failed"
                raise WorkerUnavailable(f"the worker at {self.endpoint} did not come back after "
                                        f"{self.retries} retries; last problem: {reason}")
            self.stats["recoveries"] += 1
            self.state = "restarting"
            log.warning("render worker lost (%s); %s", reason,
                        "restarting it" if self.supervisor is not None else "reconnecting")
            try:
                if self.supervisor is not None:
                    self.supervisor.restart(reason, generation=self._generation)
                self._open_socket()
                self._handshake()
                self.prime()
                return
            except WorkerLost as lost:
                reason = str(lost)

    def resync(self, reason: str) -> None:
        """The worker is alive but lost our session (expired): re-prime it without a restart."""
        self.failures += 1
        if self.failures > self.retries:
            raise WorkerUnavailable(f"worker keeps losing session {self.session_id:#x}: {reason}")
        self.stats["resyncs"] += 1
        log.warning("render session lost (%s); re-priming", reason)
        if self.hooks is not None:
            self.hooks.on_new_socket()
        self.started = False
        try:
            self.prime()
        except WorkerLost as lost:
            self.recover(str(lost))

    def prime(self) -> None:
        """Rebuild the worker's history: resend the last frames from a RESET, images not sent back;
        then let the mode resend the frames it waits for."""
        self.state = "priming"
        self.started = False
        for frame in list(self.history):
            sent_at = time.monotonic()
            seq = self.send_render(frame, Flag.NO_IMAGE)
            message = self._wait_reply(seq, sent_at)
            if message.msg_type == MsgType.ERROR:
                raise WorkerError(message.code, f"while re-priming: {message.text}", frame.frame_id)
            self.stats["reprimed_frames"] += 1
        if self.hooks is not None:
            self.hooks.resend()
        self.state = "ok"

    def retrying(self, step: Any) -> Any:
        """Run step() until it gets through, recovering from each lost worker in between
        (bounded: recover raises WorkerUnavailable after `retries` failures in a row)."""
        while True:
            try:
                return step()
            except WorkerLost as lost:
                self.recover(str(lost))
