"""The HUD (frame rates, latency, frame id, worker state) and the help overlay, drawn with pygame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pygame

HUD_BACKGROUND = (0, 0, 0, 150)
HUD_TEXT = (255, 255, 255)


@dataclass
class HudInfo:
    """What the HUD shows; None means not known yet."""

    sim_fps: float | None = None
    render_fps: float | None = None
    latency_ms: float | None = None
    frame_id: int | None = None
    worker_state: str = "unknown"
    extra: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[tuple[str, str]]:
        """The HUD's text as (name, value) rows."""

        def number(value: float | None, unit: str, digits: int = 1) -> str:
            return "-" if value is None else f"{value:.{digits}f} {unit}"

        rows = [
            ("sim", number(self.sim_fps, "fps")),
            ("render", number(self.render_fps, "fps")),
            ("latency", number(self.latency_ms, "ms")),
            ("frame", "-" if self.frame_id is None else str(self.frame_id)),
            ("worker", self.worker_state),
        ]
        rows += [(key, str(value)) for key, value in self.extra.items()]
        return rows


class TextBox:
    """Draws blocks of text on a translucent box; caches glyph surfaces of repeated lines."""

    def __init__(self, font_size: int = 16):
        if not pygame.font.get_init():
            pygame.font.init()
        # pygame's bundled default font: no system fonts needed on a headless machine.
        self.font = pygame.font.Font(None, font_size)
        self._cache: dict[str, pygame.Surface] = {}

    def _render(self, text: str) -> pygame.Surface:
        surface = self._cache.get(text)
        if surface is None:
            if len(self._cache) > 512:
                self._cache.clear()
            surface = self.font.render(text, True, HUD_TEXT)
            self._cache[text] = surface
        return surface

    def draw(self, target: pygame.Surface, rows: Sequence[str | tuple[str, str]],
             topleft: tuple[int, int] | None = None, padding: int = 6) -> pygame.Rect:
        """Draw rows (text, or (left, right) in two aligned columns) on a translucent box at
        `topleft` (centred when None); returns the box."""
        cells = [(row,) if isinstance(row, str) else tuple(row) for row in rows]
        rendered = [[self._render(text) for text in cell] for cell in cells]
        gap = 10
        first_width = max((parts[0].get_width() for parts in rendered if len(parts) > 1), default=0)
        line_height = self.font.get_linesize()

        def row_width(parts: list[pygame.Surface]) -> int:
            return parts[0].get_width() if len(parts) == 1 else first_width + gap + parts[1].get_width()

        width = max((row_width(parts) for parts in rendered), default=0) + 2 * padding
        height = line_height * len(rendered) + 2 * padding
        box = pygame.Surface((width, height), pygame.SRCALPHA)
        box.fill(HUD_BACKGROUND)
        for index, parts in enumerate(rendered):
            y = padding + index * line_height
            box.blit(parts[0], (padding, y))
            if len(parts) > 1:
                box.blit(parts[1], (padding + first_width + gap, y))
        if topleft is None:
            topleft = ((target.get_width() - width) // 2, (target.get_height() - height) // 2)
        return target.blit(box, topleft)
