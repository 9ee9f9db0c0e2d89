"""Render clients: send label maps to a render worker over ZeroMQ and get RGB frames back.

Two modes, two small classes over one `RenderSession` (carla_neural.render_session: socket,
heartbeats, recovery, re-priming):

- `Lockstep`: `render(frame_id, label_ids, instance_ids) -> rgb` renders every frame, in order,
  and blocks until it is done; for recording. Pipelined, `send(...)` up to `max_in_flight` frames
  and `receive()` them in the order sent, so that the worker starts the next frame as soon as one
  is done instead of waiting for the round trip.
- `LatestWins`: `submit(...)` then `latest()`; at most `max_in_flight` (2) frames are in flight,
  a newer submission replaces one not yet sent, and replies older than the newest shown are
  dropped; for interactive driving.

`RenderClient` is a session that takes its mode from the first call (`render`/`send`/`receive`
or `submit`/`latest`); `reset()` starts a new sequence, in either mode.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from renderer import protocol
from renderer.protocol import ErrorCode, Message, MsgType, StyleChoice
from carla_neural.render_session import (
    FrameInput,
    RenderResult,
    RenderSession,
    WorkerError,
    WorkerHandle,
    WorkerLost,
    WorkerUnavailable,
)

__all__ = ["LatestWins", "Lockstep", "RenderClient", "RenderResult", "WorkerError", "WorkerHandle",
           "WorkerUnavailable"]


@dataclass
class _Sent:
    """A lock-step frame sent and not yet received."""

    frame: FrameInput
    owned: bool  # the client's own copy (send) or the caller's buffers (render)
    seq: int = 0
    sent_at: float = 0.0


@dataclass
class _InFlight:
    frame_id: int
    shape: tuple[int, int]
    sent_at: float


class Lockstep:
    """Every frame rendered, in order, on a session; up to `max_in_flight` frames sent ahead."""

    def __init__(self, session: RenderSession) -> None:
        self.session = session
        self._sent: deque[_Sent] = deque()
        self._early: dict[int, Message] = {}  # replies to frames behind the oldest, by seq
        self._last_reply_at = 0.0

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet received."""
        return len(self._sent)

    def render(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> np.ndarray:
        """Render one frame and wait for it: label_ids (H, W) uint8, instance_ids (H, W) int -> (H, W, 3) uint8."""
        return self.render_result(frame_id, label_ids, instance_ids).rgb

    def render_result(self, frame_id: int, label_ids: np.ndarray,
                      instance_ids: np.ndarray | None = None) -> RenderResult:
        """Like render(), with what the frame cost (RenderResult)."""
        if self._sent:
            raise RuntimeError(f"{len(self._sent)} frames sent with send() are not received yet; "
                               "receive() them before calling render()")
        # The caller's buffers are only read while render() runs: no copy unless kept as history.
        self._send(self.session.checked_input(frame_id, label_ids, instance_ids, copy=False), owned=False)
        return self.receive()

    def send(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> None:
        """Send label_ids (H, W) uint8 (+ instance_ids) without waiting; `receive()` returns frames
        in the order sent. The client keeps copies, so the caller may reuse its buffers."""
        frame = self.session.checked_input(frame_id, label_ids, instance_ids, copy=True)
        if len(self._sent) >= self.session.max_in_flight:
            raise RuntimeError(f"{len(self._sent)} frames are in flight (max_in_flight="
                               f"{self.session.max_in_flight}); receive() one before sending another")
        self._send(frame, owned=True)

    def receive(self) -> RenderResult:
        """The oldest frame sent and not yet received, rendered; waits for it.

        A lost worker is restarted (when supervised) or reconnected; the session is re-primed and
        every frame in flight is sent again, so none is missing from a lock-step run.
        """
        if not self._sent:
            raise RuntimeError("no frame in flight: send() one first")
        session = self.session
        busy_retries = 0
        while True:
            head = self._sent[0]
            # Whether the reply is still to come: only then is its arrival time known.
            waited = head.seq not in self._early and not session.reply_waiting()
            try:
                message = self._await(head)
            except WorkerLost as lost:
                session.recover(str(lost))
                continue
            if message.msg_type == MsgType.ERROR:
                if message.code == ErrorCode.UNKNOWN_SESSION:
                    session.resync(message.text or "session unknown to the worker")
                    continue
                if message.code == ErrorCode.BUSY and busy_retries < session.retries:
                    busy_retries += 1
                    session.stats["busy_resent"] += 1
                    time.sleep(0.05 * 2**busy_retries)
                    self._resend_refused()
                    continue
                self._sent.popleft()
                raise WorkerError(message.code, message.text or "", head.frame.frame_id)
            rgb = protocol.check_render_reply(message, head.frame.label_ids.shape)
            self._sent.popleft()
            if rgb is None:
                raise WorkerError(ErrorCode.BAD_FRAME_COUNT, "reply without an image", head.frame.frame_id)
            now = time.monotonic()
            # The worker starts a frame once the one before is done: time before that was queueing.
            queued_ms = max(0.0, min(self._last_reply_at, now) - head.sent_at) * 1000
            latency_ms = (now - head.sent_at) * 1000
            render_ms = message.aux / 1000
            self._last_reply_at = now
            session.failures = 0
            session.last_result = RenderResult(head.frame.frame_id, rgb, latency_ms, render_ms, queued_ms,
                                               max(0.0, latency_ms - queued_ms - render_ms) if waited else None)
            session.history.append(head.frame if head.owned else head.frame.copied())
            return session.last_result

    def _send(self, frame: FrameInput, owned: bool) -> None:
        session = self.session
        session.retrying(session.ensure_ready)
        sent = _Sent(frame, owned)
        self._sent.append(sent)
        try:
            self._transmit(sent)
        except WorkerLost as lost:
            session.recover(str(lost))  # re-primes and resends every frame in flight, this one too

    def _transmit(self, sent: _Sent) -> None:
        sent.sent_at = time.monotonic()
        sent.seq = self.session.send_render(sent.frame)

    def _await(self, head: _Sent) -> Message:
        """The reply to `head`; replies to later frames that come first are kept for later."""
        session = self.session
        while True:
            message = self._early.pop(head.seq, None)
            if message is not None:
                return message
            message = session.poll_message(min(0.1, session.heartbeat_s))
            if message is None:
                session.check_alive(head.sent_at)
            elif message.msg_type == MsgType.PONG:
                continue
            elif any(sent.seq == message.seq for sent in self._sent):
                self._early[message.seq] = message
            else:
                session.stats["stale_dropped"] += 1

    def _resend_refused(self) -> None:
        """The worker refused the oldest frame in flight (BUSY): send it and those after it again."""
        session = self.session
        if len(self._sent) == 1:
            # Nothing was sent after it, so the worker's sequence is still at the frame before.
            try:
                self._transmit(self._sent[0])
            except WorkerLost as lost:
                session.recover(str(lost))
            return
        # Frames sent after it may have been rendered on the wrong history: start the sequence again.
        session.started = False
        try:
            session.prime()
        except WorkerLost as lost:
            session.recover(str(lost))

    # ModeHooks: lock-step frames stay queued across a new socket; prime resends them in order.
    def on_new_socket(self) -> None:
        self._early.clear()

    def resend(self) -> None:
        self._early.clear()
        self._last_reply_at = 0.0
        for sent in self._sent:
            self._transmit(sent)


class LatestWins:
    """Interactive: the newest frame submitted is rendered next, the newest rendered is shown."""

    def __init__(self, session: RenderSession) -> None:
        self.session = session
        self._in_flight: dict[int, _InFlight] = {}
        self._next: FrameInput | None = None
        self._newest: RenderResult | None = None

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet answered."""
        return len(self._in_flight)

    def submit(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> None:
        """Offer a frame for rendering without waiting; a newer submit replaces it if not yet sent."""
        frame = self.session.checked_input(frame_id, label_ids, instance_ids, copy=True)
        if self._next is not None:
            self.session.stats["superseded"] += 1
        self._next = frame
        self.session.retrying(lambda: self._pump(0.0))

    def latest(self, wait_s: float = 0.0) -> RenderResult | None:
        """The newest rendered frame so far (None before the first), waiting up to wait_s for a newer one."""
        self.session.retrying(lambda: self._pump(wait_s))
        return self._newest

    def _pump(self, wait_s: float) -> None:
        session = self.session
        session.ensure_ready()
        self._send_pending()
        deadline = time.monotonic() + wait_s
        newer = False
        while True:
            remaining = 0.0 if newer else deadline - time.monotonic()
            message = session.poll_message(min(max(remaining, 0.0), 0.1))
            if message is None:
                if self._in_flight:
                    session.check_alive(min(f.sent_at for f in self._in_flight.values()))
                if newer or time.monotonic() >= deadline:
                    return
                continue
            newer |= self._take_reply(message)
            self._send_pending()

    def _send_pending(self) -> None:
        session = self.session
        while self._next is not None and len(self._in_flight) < session.max_in_flight:
            frame, self._next = self._next, None
            sent_at = time.monotonic()
            seq = session.send_render(frame)
            self._in_flight[seq] = _InFlight(frame.frame_id, frame.label_ids.shape, sent_at)
            session.history.append(frame)

    def _take_reply(self, message: Message) -> bool:
        session = self.session
        if message.msg_type == MsgType.PONG:
            return False
        flight = self._in_flight.pop(message.seq, None)
        if flight is None:
            session.stats["stale_dropped"] += 1
            return False
        if message.msg_type == MsgType.ERROR:
            if message.code == ErrorCode.UNKNOWN_SESSION:
                session.resync(message.text or "session unknown to the worker")
                return False
            if message.code == ErrorCode.BUSY:
                session.stats["busy_dropped"] += 1
                return False
            raise WorkerError(message.code, message.text or "", flight.frame_id)
        rgb = protocol.check_render_reply(message, flight.shape)
        session.failures = 0
        if rgb is None or (self._newest is not None and flight.frame_id <= self._newest.frame_id):
            session.stats["stale_dropped"] += 1
            return False
        self._newest = RenderResult(flight.frame_id, rgb, (time.monotonic() - flight.sent_at) * 1000,
                                    message.aux / 1000)
        session.last_result = self._newest
        return True

    # ModeHooks: replies on an old socket never come; nothing to resend (the next submit goes).
    def on_new_socket(self) -> None:
        self._in_flight.clear()

    def resend(self) -> None:
        pass


class RenderClient(RenderSession):
    """A session on a render worker whose mode (lock-step or latest-wins) is set by its first call."""

    def __init__(self, endpoint: str | None = None, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self._mode: Lockstep | LatestWins | None = None

    def _use(self, kind: type[Lockstep] | type[LatestWins]) -> Any:
        if self._mode is None:
            self._mode = kind(self)
            self.hooks = self._mode
        elif not isinstance(self._mode, kind):
            current = "lockstep" if isinstance(self._mode, Lockstep) else "latest"
            wanted = "lockstep" if kind is Lockstep else "latest"
            raise RuntimeError(f"this client is in {current} mode; call reset() before using {wanted} mode")
        return self._mode

    def render(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> np.ndarray:
        """Lock-step: render one frame and wait for it (see Lockstep.render)."""
        return self._use(Lockstep).render(frame_id, label_ids, instance_ids)

    def render_result(self, frame_id: int, label_ids: np.ndarray,
                      instance_ids: np.ndarray | None = None) -> RenderResult:
        """Lock-step: render one frame, wait, and return it with its costs."""
        return self._use(Lockstep).render_result(frame_id, label_ids, instance_ids)

    def send(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> None:
        """Lock-step, pipelined: send without waiting (see Lockstep.send)."""
        self._use(Lockstep).send(frame_id, label_ids, instance_ids)

    def receive(self) -> RenderResult:
        """Lock-step, pipelined: the oldest frame sent, rendered (see Lockstep.receive)."""
        return self._use(Lockstep).receive()

    def submit(self, frame_id: int, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> None:
        """Latest-wins: offer a frame without waiting (see LatestWins.submit)."""
        self._use(LatestWins).submit(frame_id, label_ids, instance_ids)

    def latest(self, wait_s: float = 0.0) -> RenderResult | None:
        """Latest-wins: the newest rendered frame so far (see LatestWins.latest)."""
        return self._use(LatestWins).latest(wait_s)

    @property
    def in_flight(self) -> int:
        """Frames sent and not yet answered (either mode)."""
        return 0 if self._mode is None else self._mode.in_flight

    def set_style(self, choice: StyleChoice | None) -> None:
        """Render the following frames in ``choice`` (None: no style): a new sequence starts, so
        that no frame warps the previous style's images."""
        self.style = choice
        self.reset()

    def reset(self) -> None:
        """Start a new sequence: the next frame is rendered without history; modes may switch."""
        self.history.clear()
        self._mode = None
        self.hooks = None
        self.started = False
