"""A pygame window with panels side by side (raw | labels | neural), a HUD and a help overlay.

Headless when there is no screen (or SDL_VIDEODRIVER=dummy): everything is drawn the same, into
an off-screen surface, so tests read the pixels back and recording runs stay identical.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import pygame

from carla_neural.display.hud import HudInfo, TextBox
from carla_neural.display.keys import HELP_LINES, Action, InputState, KeyboardController

log = logging.getLogger(__name__)

PANELS = ("raw", "labels", "neural")
PANEL_TITLES = {"raw": "raw RGB", "labels": "labels", "neural": "neural"}
_TOGGLES = {Action.TOGGLE_RAW: "raw", Action.TOGGLE_LABELS: "labels", Action.TOGGLE_NEURAL: "neural"}
PLACEHOLDER_GREY = (40, 40, 40)


def has_screen() -> bool:
    """Whether a window can be shown: a display server is reachable and SDL is not told 'dummy'."""
    if os.environ.get("SDL_VIDEODRIVER", "").lower() in ("dummy", "offscreen"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def fit_to_screen(panel_size: tuple[int, int], panels: int) -> tuple[int, int]:
    """Shrink panel_size (keeping its aspect) so `panels` panels side by side fit the desktop."""
    try:
        desktop_width, desktop_height = pygame.display.get_desktop_sizes()[0]
    except (pygame.error, IndexError):
        return panel_size
    width, height = panel_size
    scale = min(1.0, 0.95 * desktop_width / (width * panels), 0.9 * desktop_height / height)
    return max(16, int(width * scale)), max(16, int(height * scale))


class Display:
    """Panels side by side with a HUD; `show()` draws a frame, `poll()` reads the keyboard.

    panel_size: (width, height) of each panel; images of another size are resized to it. A
        window on a screen shrinks the panels to fit the desktop.
    headless: draw off-screen (SDL dummy driver); None decides by `has_screen()`.
    """

    def __init__(
        self,
        panel_size: tuple[int, int],
        title: str = "carla-neural",
        panels: Sequence[str] = PANELS,
        headless: bool | None = None,
        show_hud: bool = True,
        autopilot: bool = True,
    ):
        unknown = set(panels) - set(PANELS)
        if unknown:
            raise ValueError(f"unknown panels {sorted(unknown)}; allowed: {PANELS}")
        self.panel_size = (int(panel_size[0]), int(panel_size[1]))
        self.headless = (not has_screen()) if headless is None else headless
        if self.headless:
            # Must be set before SDL's video subsystem starts.
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption(title)
        if not self.headless:
            self.panel_size = fit_to_screen(self.panel_size, len(PANELS))
        self.enabled = {name: name in panels for name in PANELS}
        self.show_hud = show_hud
        self.show_help = False
        self.keyboard = KeyboardController(autopilot=autopilot)
        self._text = TextBox(16)
        self._title_text = TextBox(14)
        self._surface: pygame.Surface | None = None
        self._last_poll = time.perf_counter()
        self._resize()

    @property
    def visible_panels(self) -> list[str]:
        """The panels shown, left to right."""
        return [name for name in PANELS if self.enabled[name]]

    @property
    def surface(self) -> pygame.Surface:
        """The window's surface (read its pixels with pygame.surfarray)."""
        assert self._surface is not None
        return self._surface

    def panel_rect(self, name: str) -> pygame.Rect | None:
        """Where panel `name` sits in the window, or None when it is hidden."""
        visible = self.visible_panels
        if name not in visible:
            return None
        width, height = self.panel_size
        return pygame.Rect(visible.index(name) * width, 0, width, height)

    def _resize(self) -> None:
        width, height = self.panel_size
        count = max(1, len(self.visible_panels))
        self._surface = pygame.display.set_mode((width * count, height))

    def set_panel(self, name: str, enabled: bool) -> None:
        """Show or hide a panel; the window resizes to the panels shown."""
        if name not in PANELS:
            raise ValueError(f"unknown panel {name!r}; allowed: {PANELS}")
        if self.enabled[name] != enabled:
            self.enabled[name] = enabled
            self._resize()

    def show(self, images: Mapping[str, np.ndarray | None], hud: HudInfo | None = None) -> None:
        """Draw one frame: images {panel: (H, W, 3) uint8 RGB or None (placeholder)}, then the HUD."""
        surface = self.surface
        width, height = self.panel_size
        for name in self.visible_panels:
            rect = self.panel_rect(name)
            assert rect is not None
            rgb = images.get(name)
            if rgb is None:
                surface.fill(PLACEHOLDER_GREY, rect)
                self._title_text.draw(surface, [f"{PANEL_TITLES[name]}: waiting"], (rect.x + 4, rect.bottom - 24))
                continue
            if rgb.shape[:2] != (height, width):
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if name != "labels"
                                 else cv2.INTER_NEAREST)
            image = pygame.image.frombuffer(np.ascontiguousarray(rgb), (width, height), "RGB")
            surface.blit(image, rect)
        if self.show_hud and hud is not None:
            self._text.draw(surface, hud.lines(), (6, 6))
        if self.show_help:
            self._text.draw(surface, HELP_LINES)
        pygame.display.flip()

    def poll(self) -> InputState:
        """Read the keyboard; applies panel, HUD and help toggles here and returns the rest too."""
        now = time.perf_counter()
        elapsed_ms = (now - self._last_poll) * 1e3
        self._last_poll = now
        state = self.keyboard.process(pygame.event.get(), elapsed_ms)
        for action in state.actions:
            if action in _TOGGLES:
                name = _TOGGLES[action]
                self.set_panel(name, not self.enabled[name])
            elif action is Action.TOGGLE_HUD:
                self.show_hud = not self.show_hud
            elif action is Action.TOGGLE_HELP:
                self.show_help = not self.show_help
        return state

    def close(self) -> None:
        """Close the window; safe to call twice."""
        if pygame.display.get_init():
            pygame.display.quit()

    def __enter__(self) -> "Display":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
