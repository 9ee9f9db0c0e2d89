"""The display side of a run: panels with the HUD, and keys turned into source control.

The pipeline hands each frame it shows to a `LiveView` as a `Shown`; the view draws it with the
HUD (sim and render rates, latency, worker state), reads the keyboard and applies what the keys
ask (autopilot, manual control, weather, camera position) to the source.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from carla_neural.display.hud import HudInfo
from carla_neural.display.keys import Action, InputState
from carla_neural.display.window import Display
from carla_neural.sources.base import Frame, Source

log = logging.getLogger(__name__)


@dataclass
class Shown:
    """What the pipeline shows of one frame: the panels ((H, W, 3) uint8 each, neural None until
    the first render) and what the HUD reports."""

    frame: Frame
    raw: np.ndarray | None
    labels: np.ndarray
    neural: np.ndarray | None
    rendered: bool  # a render came back with this frame
    latency_ms: float | None  # acquisition to render reply, for the newest render
    worker_state: str
    mode: str
    adapt: bool | None = None  # the label transform on or off; None: the run has none


class RateMeter:
    """Events per second over the last `window` events."""

    def __init__(self, window: int = 30):
        self._times: collections.deque[float] = collections.deque(maxlen=max(2, window))

    def tick(self, now: float | None = None) -> None:
        """Count one event (now, or at `now` in perf_counter seconds)."""
        self._times.append(time.perf_counter() if now is None else now)

    @property
    def per_second(self) -> float | None:
        """The rate, or None before two events."""
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return None
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


def current_weather(source: Source) -> str | None:
    """The source's weather preset name, or None for sources without weather."""
    try:
        return str(source.weather) or None
    except NotImplementedError:
        return None


class SourceControls:
    """Keys -> source calls: autopilot, manual control, weather presets, camera position."""

    def __init__(self, source: Source, autopilot: bool = True):
        self.source = source
        self.autopilot = autopilot
        presets = list(source.weather_presets)
        current = current_weather(source)
        self._weather_index = presets.index(current) if current in presets else 0
        self._warned: set[str] = set()

    def apply(self, state: InputState) -> None:
        """Apply one poll's keys to the source; a source without a feature is warned about once."""
        try:
            if state.autopilot != self.autopilot:
                self.source.set_autopilot(state.autopilot)
                self.autopilot = state.autopilot
            if not self.autopilot:
                self.source.apply_control(state.control)
            presets = self.source.weather_presets
            for action in state.actions:
                if action is Action.NEXT_CAMERA:
                    self.source.next_mount()
                if presets and action in (Action.NEXT_WEATHER, Action.PREVIOUS_WEATHER):
                    step = 1 if action is Action.NEXT_WEATHER else -1
                    self._weather_index = (self._weather_index + step) % len(presets)
                    self.source.set_weather(presets[self._weather_index])
        except NotImplementedError as error:
            # A source without autopilot, weather or mounts: say so once, not every frame.
            self.autopilot = state.autopilot
            if str(error) not in self._warned:
                self._warned.add(str(error))
                log.warning("%s", error)


class LiveView:
    """A Display fed by the pipeline: panels + HUD, keys applied to the source.

    hud_extra: more HUD rows (e.g. drive's speed and camera), asked for on every frame.
    on_action: callers' handlers of actions the view does not apply itself (e.g. drive's
    NEXT_STYLE), called once per key press.
    """

    def __init__(self, display: Display, source: Source,
                 hud_extra: Callable[[], dict[str, str]] | None = None, rate_window: int = 30):
        self.display = display
        self.source = source
        self.controls = SourceControls(source, display.keyboard.autopilot)
        self.hud_extra = hud_extra
        self.on_action: dict[Action, Callable[[], None]] = {}
        self._sim_rate = RateMeter(rate_window)
        self._render_rate = RateMeter(rate_window)
        self._latency_ms: float | None = None

    def hud(self, shown: Shown) -> HudInfo:
        """The HUD's numbers for this frame."""
        extra = {"mode": shown.mode, "autopilot": "on" if self.controls.autopilot else "off"}
        if (weather := current_weather(self.source)) is not None:
            extra["weather"] = weather
        if shown.adapt is not None:
            adapt_ms = shown.frame.timings_ms.get("adapt")
            extra["adapt"] = "off" if not shown.adapt else "on" if adapt_ms is None else f"on {adapt_ms:.1f} ms"
        if self.hud_extra is not None:
            extra.update(self.hud_extra())
        return HudInfo(sim_fps=self._sim_rate.per_second, render_fps=self._render_rate.per_second,
                       latency_ms=self._latency_ms, frame_id=shown.frame.frame_id,
                       worker_state=shown.worker_state, extra=extra)

    def show(self, shown: Shown) -> InputState:
        """Draw the frame with the HUD, read the keys and apply them to the source."""
        self._sim_rate.tick()
        if shown.rendered:
            self._render_rate.tick()
        if shown.latency_ms is not None:
            self._latency_ms = shown.latency_ms
        self.display.show({"raw": shown.raw, "labels": shown.labels, "neural": shown.neural}, self.hud(shown))
        state = self.display.poll()
        self.controls.apply(state)
        for action in state.actions:
            if action in self.on_action:
                self.on_action[action]()
        return state
