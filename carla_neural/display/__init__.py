"""The pygame window: panels side by side, HUD, help overlay and manual_control.py's keys."""

import os

# pygame greets on import; keep CLI output and logs clean.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from carla_neural.display.hud import HudInfo  # noqa: E402
from carla_neural.display.keys import Action, InputState, KeyboardController
from carla_neural.display.window import PANELS, Display, has_screen

__all__ = ["PANELS", "Action", "Display", "HudInfo", "InputState", "KeyboardController", "has_screen"]
