"""RenderClient: sends label maps to a render worker over ZeroMQ and gets RGB frames back.

Two modes, one per client (switch with `reset()`):

- lock-step: `render(frame_id, label_ids, instance_ids) -> rgb` renders every frame, in order,
  and blocks until it is done; for recording. Pipelined, `send(...)` up to `max_in_flight` frames
  and `receive()` them in the order sent, so that the worker starts the next frame as soon as one
  is done instead of waiting for the round trip.
- latest-wins: `submit(...)` then `latest()`; at most `max_in_flight` (2) frames are in flight,
  a newer submission replaces one not yet sent, and replies older than the newest shown are
  dropped; for interactive driving.

Failures (Lazy/Paranoid Pirate from the ZeroMQ guide): while it waits, the client pings the worker
every `heartbeat_s`; `liveness` missed heartbeats, an exited worker process, or a frame that takes
more than `render_timeout_s` means the worker is lost. With a `WorkerSupervisor` the worker is then
restarted; either way the client reconnects on a fresh socket and re-primes its session: it resends
its last few frames (`history_frames`, rendered without images coming back) from a RESET, so that
the sequential renderer has a history again, then resends the frames it was waiting for. See
docs/protocol.md ("Recovery") for what that means for temporal state.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from renderer import protocol
from renderer.protocol import DEFAULT_LIMITS, ErrorCode, Flag, Limits, Message, MsgType
from carla_neural.worker_supervisor import WorkerStartError, WorkerSupervisor, WorkerUnavailable

log = logging.getLogger(__name__)

__all__ = ["RenderClient", "RenderResult", "WorkerError", "WorkerStartError", "WorkerSupervisor",
           "WorkerUnavailable"]

DEFAULT_HISTORY_FRAMES = 2  # vid2vid's n_frames_G - 1: the previous outputs the generator sees


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


class _WorkerLost(Exception):
    """Internal: the worker died, hung or cannot be reached; recover and resend."""


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
class _Input:
    frame_id: int
    label_ids: np.ndarray
    instance_ids: np.ndarray | None


@dataclass
class _InFlight:
    frame_id: int
    shape: tuple[int, int]
    sent_at: float


@dataclass
class _Sent:
    """A lock-step frame sent and not yet received."""

    frame: _Input
    owned: bool  # the client's own copy (send) or the caller's buffers (render)
    seq: int = 0
    sent_at: float = 0.0


class RenderClient:
    """A session on a render worker, in lock-step or latest-wins mode, with recovery."""

    def __init__(self, endpoint: str | None = None, *, supervisor: WorkerSupervisor | None = None,
                 session_id: int | None = None, connect_timeout_s: float = 10.0,
                 heartbeat_s: float = 1.0, liveness: int = 3, render_timeout_s: float = 120.0,
                 retries: int = 3, history_frames: int | None = None, max_in_flight: int = 2,
                 zero_copy: bool = True, limits: Limits = DEFAULT_LIMITS,
                 context: zmq.Context | None = None) -> None:
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
        self._history: deque[_Input] = deque(maxlen=history_frames if history_frames is not None
                                             else DEFAULT_HISTORY_FRAMES)
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._generation: int | None = None
        self._seq = 0
        self._started = False  # whether the worker holds our sequence (else the next RENDER resets)
        self._mode: str | None = None
        self._in_flight: dict[int, _InFlight] = {}
        self._lockstep: deque[_Sent] = deque()
        self._early: dict[int, Message] = {}  # replies to lock-step frames behind the oldest, by seq
        self._last_reply_at = 0.0
        self._next: _Input | None = None
        self._newest: RenderResult | None = None
        self._last_heard = 0.0
        self._last_ping = 0.0
        self._failures = 0
        self.last_result: RenderResult | None = None
        self.facts: dict[str, Any] = {}
        self.state = "disconnected"
        self.stats = {"recoveries": 0, "reprimed_frames": 0, "stale_dropped": 0, "superseded": 0,
                      "busy_dropped": 0, "busy_resent": 0}

    # --- connection -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str | None:
        """The worker's current endpoint (the supervisor's, when supervised)."""
        return self.supervisor.endpoint if self.supervisor is not None else self._endpoint

    def connect(self) -> "RenderClient":
        """Open the socket and check that a worker answers (starting it when supervised)."""
        if self.supervisor is not None:
            self.supervisor.start()
        self._open_socket()
        try:
            self._handshake()
        except _WorkerLost as lost:
            if self.supervisor is None:
                self.close()
                raise WorkerUnavailable(
                    f"no worker answered at {self._endpoint} within {self.connect_timeout_s:.0f} s ({lost}). "
                    f"Start one with `carla-neural worker --checkpoint CKPT --bind {self._endpoint}` "
                    "or check the address.") from None
            self._recover(str(lost))
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
            sock.setsockopt(zmq.IPV6, 1)
        sock.connect(endpoint)
        self._socket = sock
        self._generation = self.supervisor.generation if self.supervisor is not None else None
        # Lock-step frames stay queued in self._lockstep: _prime resends them to the new socket.
        self._in_flight.clear()
        self._early.clear()
        self._started = False
        self.state = "connecting"

    def _handshake(self) -> None:
        seq = self._send(protocol.encode(MsgType.PING, session_id=self.session_id, seq=self._next_seq()))
        deadline = time.monotonic() + self.connect_timeout_s
        while time.monotonic() < deadline:
            message = self._poll_message(0.05)
            if message is not None and message.msg_type == MsgType.PONG and message.seq == seq:
                if message.text is not None:
                    self._take_facts(message.text)
                self.state = "ok"
                return
            self._check_process()
        raise _WorkerLost(f"no answer to a ping within {self.connect_timeout_s:.0f} s")

    def _take_facts(self, text: str) -> None:
        try:
            self.facts = json.loads(text)
        except json.JSONDecodeError:
            log.warning("worker sent facts that are not JSON: %.80r", text)
            return
        if self._fixed_history is None:
            history = int(self.facts.get("history_frames", DEFAULT_HISTORY_FRAMES))
            if history != self._history.maxlen:
                self._history = deque(self._history, maxlen=max(0, history))

    def close(self) -> None:
        """End the session (BYE, best effort) and close the socket; the worker is not stopped."""
        sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.send_multipart(protocol.encode(MsgType.BYE, session_id=self.session_id,
                                                    seq=self._next_seq()), flags=zmq.NOBLOCK)
                sock.poll(200)
            except zmq.ZMQError:
                pass
            sock.close(linger=0)
        self.state = "closed"

    def __enter__(self) -> "RenderClient":
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- lock-step mode ---------------------------------------------------------------------

    def render(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> np.ndarray:
        """Render one frame and wait for it: label_ids (H, W) uint8, instance_ids (H, W) int -> (H, W, 3) uint8.

        Call with frames in order; after a worker failure the frame is rendered by the new worker.
        """
        if self._lockstep:
            raise RuntimeError(f"{len(self._lockstep)} frames sent with send() are not received yet; "
                               "receive() them before calling render()")
        # The caller's buffers are only read while render() runs: no copy unless kept as history.
        self._send_lockstep(self._checked_input(frame_id, label_ids, instance_ids, copy=False), owned=False)
        return self.receive().rgb

    def send(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> None:
        """Lock-step, pipelined: send label_ids (H, W) uint8 (+ instance_ids) without waiting.

        `receive()` returns the frames in the order sent. At most `max_in_flight` frames may be
        outstanding; the worker queues them, so it goes from one frame to the next without waiting
        for a round trip. The client keeps copies, so the caller may reuse its buffers.
        """
        frame = self._checked_input(frame_id, label_ids, instance_ids, copy=True)
        if len(self._lockstep) >= self.max_in_flight:
            raise RuntimeError(f"{len(self._lockstep)} frames are in flight (max_in_flight="
                               f"{self.max_in_flight}); receive() one before sending another")
        self._send_lockstep(frame, owned=True)

    def receive(self) -> RenderResult:
        """The oldest frame sent and not yet received, rendered; waits for it.

        A lost worker is restarted (when supervised) or reconnected; the session is re-primed and
        every frame in flight is sent again, so none is missing from a lock-step run.
        """
        if not self._lockstep:
            raise RuntimeError("no frame in flight: send() one first")
        busy_retries = 0
        while True:
            head = self._lockstep[0]
            # Whether the reply is still to come: only then is its arrival time known.
            waited = head.seq not in self._early and not (self._socket is not None and self._socket.poll(0))
            try:
                message = self._await_lockstep(head)
            except _WorkerLost as lost:
                self._recover(str(lost))
                continue
            if message.msg_type == MsgType.ERROR:
                if message.code == ErrorCode.UNKNOWN_SESSION:
                    self._resync(message.text or "session unknown to the worker")
                    continue
                if message.code == ErrorCode.BUSY and busy_retries < self.retries:
                    busy_retries += 1
                    self.stats["busy_resent"] += 1
                    time.sleep(0.05 * 2**busy_retries)
                    self._resend_refused()
                    continue
                self._lockstep.popleft()
                raise WorkerError(message.code, message.text or "", head.frame.frame_id)
            rgb = protocol.check_render_reply(message, head.frame.label_ids.shape)
            self._lockstep.popleft()
            if rgb is None:
                raise WorkerError(ErrorCode.BAD_FRAME_COUNT, "reply without an image", head.frame.frame_id)
            now = time.monotonic()
            # The worker starts a frame once the one before is done: time before that was queueing.
            queued_ms = max(0.0, min(self._last_reply_at, now) - head.sent_at) * 1000
            latency_ms = (now - head.sent_at) * 1000
            render_ms = message.aux / 1000
            self._last_reply_at = now
            self._failures = 0
            self.last_result = RenderResult(head.frame.frame_id, rgb, latency_ms, render_ms, queued_ms,
                                            max(0.0, latency_ms - queued_ms - render_ms) if waited else None)
            self._history.append(head.frame if head.owned else self._copied(head.frame))
            return self.last_result

    def _send_lockstep(self, frame: _Input, owned: bool) -> None:
        self._use_mode("lockstep")
        while True:  # bounded: _recover raises WorkerUnavailable after `retries` failures in a row
            try:
                self._ensure_ready()
                break
            except _WorkerLost as lost:
                self._recover(str(lost))
        sent = _Sent(frame, owned)
        self._lockstep.append(sent)
        try:
            self._transmit(sent)
        except _WorkerLost as lost:
            self._recover(str(lost))  # re-primes and resends every frame in flight, this one too

    def _transmit(self, sent: _Sent) -> None:
        sent.sent_at = time.monotonic()
        sent.seq = self._send_render(sent.frame, 0)

    def _await_lockstep(self, head: _Sent) -> Message:
        """The reply to `head`; replies to later frames that come first are kept for later."""
        while True:
            message = self._early.pop(head.seq, None)
            if message is not None:
                return message
            message = self._poll_message(min(0.1, self.heartbeat_s))
            if message is None:
                self._check_alive(head.sent_at)
            elif message.msg_type == MsgType.PONG:
                continue
            elif any(sent.seq == message.seq for sent in self._lockstep):
                self._early[message.seq] = message
            else:
                self.stats["stale_dropped"] += 1

    def _resend_refused(self) -> None:
        """The worker refused the oldest frame in flight (BUSY): send it and those after it again."""
        if len(self._lockstep) == 1:
            # Nothing was sent after it, so the worker's sequence is still at the frame before.
            try:
                self._transmit(self._lockstep[0])
            except _WorkerLost as lost:
                self._recover(str(lost))
            return
        # Frames sent after it may have been rendered on the wrong history: start the sequence again.
        self._started = False
        try:
            self._prime()
        except _WorkerLost as lost:
            self._recover(str(lost))

    # --- latest-wins mode -------------------------------------------------------------------

    def submit(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> None:
        """Offer a frame for rendering without waiting; a newer submit replaces it if not yet sent."""
        frame = self._checked_input(frame_id, label_ids, instance_ids, copy=True)
        self._use_mode("latest")
        if self._next is not None:
            self.stats["superseded"] += 1
        self._next = frame
        self._pump(0.0)

    def latest(self, wait_s: float = 0.0) -> RenderResult | None:
        """The newest rendered frame so far (None before the first), waiting up to wait_s for a newer one."""
        self._use_mode("latest")
        self._pump(wait_s)
        return self._newest

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet answered (either mode)."""
        return len(self._in_flight) + len(self._lockstep)

    def _pump(self, wait_s: float) -> None:
        while True:  # bounded: _recover raises WorkerUnavailable after `retries` failures in a row
            try:
                self._pump_once(wait_s)
                return
            except _WorkerLost as lost:
                self._recover(str(lost))

    def _pump_once(self, wait_s: float) -> None:
        self._ensure_ready()
        self._send_pending()
        deadline = time.monotonic() + wait_s
        newer = False
        while True:
            remaining = 0.0 if newer else deadline - time.monotonic()
            message = self._poll_message(min(max(remaining, 0.0), 0.1))
            if message is None:
                if self._in_flight:
                    self._check_alive(min(f.sent_at for f in self._in_flight.values()))
                if newer or time.monotonic() >= deadline:
                    return
                continue
            newer |= self._take_reply(message)
            self._send_pending()

    def _send_pending(self) -> None:
        while self._next is not None and len(self._in_flight) < self.max_in_flight:
            frame, self._next = self._next, None
            sent_at = time.monotonic()
            seq = self._send_render(frame, 0)
            self._in_flight[seq] = _InFlight(frame.frame_id, frame.label_ids.shape, sent_at)
            self._history.append(frame)

    def _take_reply(self, message: Message) -> bool:
        if message.msg_type == MsgType.PONG:
            return False
        flight = self._in_flight.pop(message.seq, None)
        if flight is None:
            self.stats["stale_dropped"] += 1
            return False
        if message.msg_type == MsgType.ERROR:
            if message.code == ErrorCode.UNKNOWN_SESSION:
                self._resync(message.text or "session unknown to the worker")
                return False
            if message.code == ErrorCode.BUSY:
                self.stats["busy_dropped"] += 1
                return False
            raise WorkerError(message.code, message.text or "", flight.frame_id)
        rgb = protocol.check_render_reply(message, flight.shape)
        self._failures = 0
        if rgb is None or (self._newest is not None and flight.frame_id <= self._newest.frame_id):
            self.stats["stale_dropped"] += 1
            return False
        self._newest = RenderResult(flight.frame_id, rgb, (time.monotonic() - flight.sent_at) * 1000,
                                    message.aux / 1000)
        self.last_result = self._newest
        return True

    # --- both modes -------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new sequence: the next frame is rendered without history; modes may switch."""
        self._history.clear()
        self._in_flight.clear()
        self._lockstep.clear()
        self._early.clear()
        self._next = None
        self._newest = None
        self._mode = None
        self._started = False

    def _use_mode(self, mode: str) -> None:
        if self._mode is None:
            self._mode = mode
        elif self._mode != mode:
            raise RuntimeError(f"this client is in {self._mode} mode; call reset() before using {mode} mode")

    def _checked_input(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None,
                       copy: bool) -> _Input:
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
        frame = _Input(int(frame_id), np.ascontiguousarray(label_ids),
                       None if instance_ids is None else np.ascontiguousarray(instance_ids))
        return self._copied(frame) if copy else frame

    @staticmethod
    def _copied(frame: _Input) -> _Input:
        # The caller may reuse its buffers; history and queued frames keep their own copies.
        return _Input(frame.frame_id, frame.label_ids.copy(),
                      None if frame.instance_ids is None else frame.instance_ids.copy())

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFFFFFFFFFF
        return self._seq

    def _send(self, frames: list[Any]) -> int:
        """Send a message; return its seq (read back from the header)."""
        assert self._socket is not None
        try:
            self._socket.send_multipart(frames, copy=not self.zero_copy)
        except zmq.Again:
            raise _WorkerLost("cannot send: no connection to the worker") from None
        return self._seq

    def _send_render(self, frame: _Input, flags: int) -> int:
        if not self._started:
            flags |= Flag.RESET
        seq = self._next_seq()
        self._send(protocol.render_request(self.session_id, seq, frame.frame_id, frame.label_ids,
                                           frame.instance_ids, flags=int(flags)))
        self._started = True
        return seq

    def _poll_message(self, timeout_s: float) -> Message | None:
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
            message = self._poll_message(min(0.1, self.heartbeat_s))
            if message is None:
                self._check_alive(sent_at)
            elif message.seq == seq and message.msg_type != MsgType.PONG:
                return message
            elif message.msg_type != MsgType.PONG:
                self.stats["stale_dropped"] += 1

    def _check_process(self) -> None:
        supervisor = self.supervisor
        if supervisor is None:
            return
        if supervisor.generation != self._generation:
            raise _WorkerLost("the worker was restarted by another client")
        code = supervisor.exit_code()
        if code is not None:
            raise _WorkerLost(f"worker process exited with code {code}")

    def _check_alive(self, waiting_since: float) -> None:
        """Raise _WorkerLost when the worker is dead, silent for `liveness` heartbeats, or stuck."""
        self._check_process()
        now = time.monotonic()
        silent_s = now - max(self._last_heard, waiting_since)
        if silent_s > self.heartbeat_s * self.liveness:
            raise _WorkerLost(f"no reply or heartbeat for {silent_s:.1f} s (worker hung or unreachable)")
        if now - waiting_since > self.render_timeout_s:
            raise _WorkerLost(f"no frame back after {self.render_timeout_s:.0f} s although the worker "
                              "answers heartbeats (render stuck)")
        if now - max(self._last_ping, waiting_since) >= self.heartbeat_s:
            self._last_ping = now
            self._send(protocol.encode(MsgType.PING, session_id=self.session_id, seq=self._next_seq()))

    def _ensure_ready(self) -> None:
        if self._socket is None:
            self.connect()
        elif self.supervisor is not None and self.supervisor.generation != self._generation:
            self._recover("the worker was restarted")

    def _recover(self, reason: str) -> None:
        """Restart (when supervised) or reconnect, then re-prime; WorkerUnavailable after `retries`."""
        while True:
            self._failures += 1
            if self._failures > self.retries:
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
                self._prime()
                return
            except _WorkerLost as lost:
                reason = str(lost)

    def _resync(self, reason: str) -> None:
        """The worker is alive but lost our session (expired): re-prime it without a restart."""
        self._failures += 1
        if self._failures > self.retries:
            raise WorkerUnavailable(f"worker keeps losing session {self.session_id:#x}: {reason}")
        log.warning("render session lost (%s); re-priming", reason)
        self._in_flight.clear()
        self._started = False
        try:
            self._prime()
        except _WorkerLost as lost:
            self._recover(str(lost))

    def _prime(self) -> None:
        """Rebuild the worker's history: resend the last frames from a RESET, images not sent back;
        then resend the lock-step frames in flight."""
        self.state = "priming"
        self._started = False
        for frame in list(self._history):
            sent_at = time.monotonic()
            seq = self._send_render(frame, Flag.NO_IMAGE)
            message = self._wait_reply(seq, sent_at)
            if message.msg_type == MsgType.ERROR:
                raise WorkerError(message.code, f"while re-priming: {message.text}", frame.frame_id)
            self.stats["reprimed_frames"] += 1
        self._early.clear()
        self._last_reply_at = 0.0
        for sent in self._lockstep:
            self._transmit(sent)
        self.state = "ok"
