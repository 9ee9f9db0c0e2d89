"""Keyboard -> VehicleControl and actions, with the keys and feel of CARLA's manual_control.py.

Held keys are tracked from KEYDOWN/KEYUP events (not `pygame.key.get_pressed()`), so the same
code serves a real window, the headless dummy driver and events posted by tests. Toggles fire on
key release, as in manual_control.py.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

import pygame

from carla_neural.sources.base import VehicleControl

# manual_control.py's feel: throttle climbs 0.1 and brake 0.2 per frame while held; steering
# moves 5e-4 per millisecond held, capped at 0.7, and snaps back to 0 on release.
THROTTLE_STEP = 0.1
BRAKE_STEP = 0.2
STEER_PER_MS = 5e-4
STEER_LIMIT = 0.7

THROTTLE_KEYS = frozenset({pygame.K_w, pygame.K_UP})
BRAKE_KEYS = frozenset({pygame.K_s, pygame.K_DOWN})
LEFT_KEYS = frozenset({pygame.K_a, pygame.K_LEFT})
RIGHT_KEYS = frozenset({pygame.K_d, pygame.K_RIGHT})


class Action(enum.Enum):
    """What a key asks of the caller beyond driving."""

    QUIT = "quit"
    TOGGLE_AUTOPILOT = "toggle_autopilot"
    NEXT_WEATHER = "next_weather"
    PREVIOUS_WEATHER = "previous_weather"
    NEXT_CAMERA = "next_camera"
    TOGGLE_REVERSE = "toggle_reverse"
    TOGGLE_HUD = "toggle_hud"
    TOGGLE_HELP = "toggle_help"
    TOGGLE_RAW = "toggle_raw"
    TOGGLE_LABELS = "toggle_labels"
    TOGGLE_NEURAL = "toggle_neural"
    TOGGLE_ADAPT = "toggle_adapt"  # the label transform between remap and the renderer
    NEXT_STYLE = "next_style"


# Released key -> action (Shift+C is handled apart: previous weather).
_RELEASE_ACTIONS = {
    pygame.K_ESCAPE: Action.QUIT,
    pygame.K_p: Action.TOGGLE_AUTOPILOT,
    pygame.K_c: Action.NEXT_WEATHER,
    pygame.K_TAB: Action.NEXT_CAMERA,
    pygame.K_q: Action.TOGGLE_REVERSE,
    pygame.K_F1: Action.TOGGLE_HUD,
    pygame.K_h: Action.TOGGLE_HELP,
    pygame.K_1: Action.TOGGLE_RAW,
    pygame.K_2: Action.TOGGLE_LABELS,
    pygame.K_3: Action.TOGGLE_NEURAL,
    pygame.K_t: Action.TOGGLE_ADAPT,
    pygame.K_y: Action.NEXT_STYLE,
}

HELP_LINES = (
    ("W / Up", "throttle"),
    ("S / Down", "brake"),
    ("A / D, Left / Right", "steer"),
    ("Q", "toggle reverse"),
    ("Space", "hand brake"),
    ("P", "toggle autopilot"),
    ("C / Shift+C", "next / previous weather"),
    ("TAB", "camera position"),
    ("1 / 2 / 3", "raw / labels / neural panel"),
    ("T", "label transform on / off"),
    ("Y", "next style (checkpoints with styles)"),
    ("F1", "toggle HUD"),
    ("H", "toggle this help"),
    ("Esc", "quit"),
)


@dataclass
class InputState:
    """The outcome of one poll: the control to apply and the actions asked for, in order."""

    control: VehicleControl
    actions: list[Action] = field(default_factory=list)
    autopilot: bool = False

    @property
    def quit(self) -> bool:
        """Whether the user asked to quit (Esc, Ctrl+Q or closing the window)."""
        return Action.QUIT in self.actions


class KeyboardController:
    """Turns pygame key events into a VehicleControl and a list of Actions each frame."""

    def __init__(self, autopilot: bool = False):
        self.autopilot = autopilot
        self.reverse = False
        self._held: set[int] = set()
        self._throttle = 0.0
        self._brake = 0.0
        self._steer = 0.0

    def process(self, events: Iterable[pygame.event.Event], elapsed_ms: float) -> InputState:
        """Consume this frame's events; `elapsed_ms` since the last call sets the steering rate."""
        actions: list[Action] = []
        for event in events:
            if event.type == pygame.QUIT:
                actions.append(Action.QUIT)
            elif event.type == pygame.KEYDOWN:
                self._held.add(event.key)
            elif event.type == pygame.KEYUP:
                self._held.discard(event.key)
                action = self._release_action(event)
                if action is not None:
                    actions.append(action)
        for action in actions:
            if action is Action.TOGGLE_AUTOPILOT:
                self.autopilot = not self.autopilot
            elif action is Action.TOGGLE_REVERSE:
                self.reverse = not self.reverse
        self._update_control(elapsed_ms)
        return InputState(control=self.control(), actions=actions, autopilot=self.autopilot)

    @staticmethod
    def _release_action(event: pygame.event.Event) -> Action | None:
        modifiers = getattr(event, "mod", 0)
        if event.key == pygame.K_q and modifiers & pygame.KMOD_CTRL:
            return Action.QUIT
        if event.key == pygame.K_c and modifiers & pygame.KMOD_SHIFT:
            return Action.PREVIOUS_WEATHER
        if event.key == pygame.K_SLASH and modifiers & pygame.KMOD_SHIFT:
            return Action.TOGGLE_HELP  # "?" as in manual_control.py
        return _RELEASE_ACTIONS.get(event.key)

    def _update_control(self, elapsed_ms: float) -> None:
        held = self._held
        self._throttle = min(self._throttle + THROTTLE_STEP, 1.0) if held & THROTTLE_KEYS else 0.0
        self._brake = min(self._brake + BRAKE_STEP, 1.0) if held & BRAKE_KEYS else 0.0
        increment = STEER_PER_MS * max(elapsed_ms, 0.0)
        if held & LEFT_KEYS and not held & RIGHT_KEYS:
            self._steer = 0.0 if self._steer > 0 else self._steer - increment
        elif held & RIGHT_KEYS and not held & LEFT_KEYS:
            self._steer = 0.0 if self._steer < 0 else self._steer + increment
        else:
            self._steer = 0.0
        self._steer = min(STEER_LIMIT, max(-STEER_LIMIT, self._steer))

    def control(self) -> VehicleControl:
        """The current VehicleControl (steer rounded to 0.1 as manual_control.py does)."""
        return VehicleControl(
            throttle=round(self._throttle, 3),
            steer=round(self._steer, 1),
            brake=round(self._brake, 3),
            hand_brake=pygame.K_SPACE in self._held,
            reverse=self.reverse,
        )
