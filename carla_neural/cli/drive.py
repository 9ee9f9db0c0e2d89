"""`carla-neural drive`: drive a car with live neural rendering (latest-wins) in a pygame window.

Keys as in CARLA's manual_control.py: W/S/A/D or arrows, Q reverse, Space hand brake,
P autopilot, C / Shift+C weather, TAB camera position, F1 HUD, H help, 1/2/3 panels, Esc quit;
and T: the label transform on/off (shown in the HUD).
"""

from __future__ import annotations

import logging
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from carla_neural.cli._live import (
    adapt_options,
    backend_spec,
    render_options,
    source_options,
    terminate_as_interrupt,
    user_errors,
)
from carla_neural.cli.options import WxH
from carla_neural.cli.style_options import resolve_style, style_options
from carla_neural.pipeline import Presented

log = logging.getLogger(__name__)

_KEY_STEP = re.compile(r"^(?P<start>\d+)(?:-(?P<end>\d+))?:(?P<key>[A-Za-z0-9_]+)$")


@dataclass(frozen=True)
class KeyPress:
    """A key pressed at frame `down` and released at frame `up` (scripted input)."""

    down: int
    up: int
    key: int
    name: str


def parse_key_script(script: str) -> list[KeyPress]:
    """Parse "FRAME:KEY" taps and "START-END:KEY" holds, comma separated (e.g. "0-30:w,40:p,50:tab").

    Key names are pygame's (w, p, c, tab, escape, up, space, f1, ...).
    """
    import pygame

    presses = []
    for step in filter(None, (part.strip() for part in script.split(","))):
        match = _KEY_STEP.match(step)
        if match is None:
            raise click.BadParameter(f"{step!r} is not FRAME:KEY or START-END:KEY (e.g. 0-30:w, 40:p)",
                                     param_hint="--keys")
        name = match["key"].lower()
        # pygame's constants, not pygame.key.key_code(): that one needs the display started.
        key = getattr(pygame, f"K_{name}", None) or getattr(pygame, f"K_{name.upper()}", None)
        if key is None:
            raise click.BadParameter(f"unknown key {name!r} in {step!r}; use pygame key names such as "
                                     "w, a, s, d, p, c, tab, escape, space", param_hint="--keys")
        down = int(match["start"])
        up = int(match["end"]) if match["end"] is not None else down
        if up < down:
            raise click.BadParameter(f"{step!r}: the release frame comes before the press",
                                     param_hint="--keys")
        presses.append(KeyPress(down, up, key, name))
    return presses


def post_scripted_keys(presses: list[KeyPress], frame_index: int) -> None:
    """Post the KEYDOWN/KEYUP events due at `frame_index` into pygame's queue, as a keyboard would."""
    import pygame

    for press in presses:
        if press.down == frame_index:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=press.key, mod=0))
        if press.up == frame_index:
            pygame.event.post(pygame.event.Event(pygame.KEYUP, key=press.key, mod=0))


class DriveSession:
    """The driving loop's extras around the pipeline: HUD lines, distance, key script, and the
    label transform's key (T), which switches it in `pipeline` from the next frame."""

    def __init__(self, source: Any, presses: list[KeyPress], pipeline: Any = None) -> None:
        self.source = source
        self.pipeline = pipeline
        self.presses = presses
        self.frames = 0
        self.distance_m = 0.0
        self._last_position: tuple[float, float] | None = None
        self.speed_kmh = 0.0
        post_scripted_keys(presses, 0)

    def hud_rows(self) -> dict[str, str]:
        """Speed, weather and camera for the HUD (the view moves the cameras on TAB)."""
        return {"speed": f"{self.speed_kmh:.0f} km/h", "weather": str(self.source.weather or "-"),
                "camera": self.source.mount}

    def on_frame(self, presented: Presented) -> None:
        """Per shown frame: track the ego, switch the label transform on T, post the next scripted keys."""
        from carla_neural.display.keys import Action

        if presented.input is not None and Action.TOGGLE_ADAPT in presented.input.actions \
                and self.pipeline is not None and self.pipeline.config.label_transform is not None:
            self.pipeline.set_adapt_labels(not self.pipeline.adapt_labels)
        ego = presented.frame.ego
        if ego is not None:
            self.speed_kmh = ego.speed_mps * 3.6
            if self._last_position is not None:
                self.distance_m += math.dist(self._last_position, (ego.x, ego.y))
            self._last_position = (ego.x, ego.y)
        self.frames += 1
        post_scripted_keys(self.presses, self.frames)


class StyleCycler:
    """Y cycles the checkpoint's styles: none, style 0, ..., style K-1, none (docs/styles.md).
    Each change starts a new sequence on the backend; the HUD shows the current one."""

    def __init__(self, backend: Any, checkpoint: str, n_styles: int, start: Any = None) -> None:
        from renderer.protocol import StyleChoice

        self.backend = backend
        self.checkpoint = checkpoint
        self.choices: list[Any] = [None] + [StyleChoice(index=k, name=f"style {k}") for k in range(n_styles)]
        self.current = start
        self._warned = False

    @property
    def label(self) -> str:
        """The HUD's text: 'none', 'style 2', 'photo NAME'."""
        return "none" if self.current is None else self.current.label

    @property
    def summary(self) -> str:
        """For the closing line: ', style 2' / ', no style' on a checkpoint with styles, else ''."""
        if len(self.choices) == 1 and self.current is None:
            return ""
        return f", {'no style' if self.current is None else self.label}"

    def next(self) -> None:
        """Switch to the next style (a --style-from photo's style leaves the cycle once left)."""
        if len(self.choices) == 1:
            if not self._warned:
                self._warned = True
                log.warning("checkpoint %s has no style clusters: Y does nothing", self.checkpoint)
            return
        index = self.choices.index(self.current) if self.current in self.choices else 0
        self.current = self.choices[(index + 1) % len(self.choices)]
        self.backend.set_style(self.current)
        log.info("style: %s", self.label)


@click.command(name="drive")
@source_options
@render_options
@style_options
@click.option("--scenario", "scenario_ref", default=None,
              help="Set the world up from a scenario (map, weather, traffic, cameras); default: a plain drive.")
@click.option("--map", "map_name", default=None, help="CARLA map to load (default: keep the loaded one).")
@click.option("--size", type=WxH(), default=None,
              help="Camera size per panel WIDTHxHEIGHT (default 512x256, or the scenario's).")
@click.option("--fov", type=float, default=None, help="Horizontal field of view in degrees (default 90).")
@click.option("--vehicles", type=click.IntRange(0, 500), default=None, help="Traffic vehicles.")
@click.option("--walkers", type=click.IntRange(0, 500), default=None, help="Pedestrians.")
@click.option("--autopilot/--manual", default=False, show_default=True, help="Start on autopilot (P toggles).")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Stop after this many frames (default: until Esc).")
@click.option("--keys", "key_script", default="", metavar="SCRIPT",
              help='Scripted key presses for unattended runs: "FRAME:KEY" taps and "START-END:KEY" '
                   'holds, comma separated, e.g. "0-40:w,50:p,60:c,70:tab".')
@click.option("--headless", is_flag=True, help="Draw off-screen (no window), e.g. with --frames for a smoke test.")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the last window contents (all panels and the HUD) as a PNG.")
@adapt_options
def command(world: str, host: str, port: int, timeout_s: float, checkpoint: str | None,
            engine: str | None, device: str, worker_endpoint: str | None, cpu_split: bool, threads: int | None,
            style_index: int | None, style_photo: Path | None, style_labels: Path | None,
            scenario_ref: str | None, map_name: str | None, size: tuple[int, int] | None, fov: float | None,
            vehicles: int | None, walkers: int | None, autopilot: bool, frames: int | None,
            key_script: str, headless: bool, screenshot: Path | None, adapt_labels: bool | None,
            transform_config: Path | None) -> None:
    """Drive with neural rendering live: raw | labels | neural side by side, HUD, manual_control keys."""
    from carla_neural.display.keys import Action
    from carla_neural.runs import DisplaySpec, RunSpec, default_checkpoint, open_run
    from scenarios.runner import check_carla, drive_scenario, scenario_adapt, source_spec

    presses = parse_key_script(key_script) if key_script else []
    try:
        scenario = drive_scenario(scenario_ref, map_name=map_name, size=size, fov=fov,
                                  vehicles=vehicles, walkers=walkers, autopilot=autopilot)
        chosen = checkpoint or scenario.rendering.checkpoint or default_checkpoint(world)
        style = resolve_style(chosen, style_index, style_photo, style_labels)
        backend = backend_spec(chosen, engine or scenario.rendering.engine,
                               device, worker_endpoint, cpu_split, threads, style=style)
        # Always configured, off unless asked for, so that T can switch it on.
        adapt = scenario_adapt(scenario, adapt_labels, transform_config, keep_off=True, checkpoint=chosen)
        if world == "carla":
            check_carla(host, port, timeout_s)  # fail fast, before starting the worker
        spec = RunSpec(command="drive", source=source_spec(scenario, world, host, port, timeout_s),
                       backend=backend, size=(scenario.cameras.width, scenario.cameras.height), mode="latest",
                       frames=frames, step_s=scenario.fixed_delta_s, adapt=adapt,
                       display=DisplaySpec(title="carla-neural drive: {source}",
                                           headless=True if headless else None, autopilot=autopilot))
        with terminate_as_interrupt(), open_run(spec) as run:
            source = run.source
            session = DriveSession(source, presses, run.pipeline)
            cycler = StyleCycler(run.backend, chosen, _style_count(chosen), style)
            run.view.hud_extra = lambda: {**session.hud_rows(), "style": cycler.label}
            run.view.on_action[Action.NEXT_STYLE] = cycler.next
            summary = run.run(on_frame=session.on_frame)
            if screenshot is not None:
                import pygame

                screenshot.parent.mkdir(parents=True, exist_ok=True)
                pygame.image.save(run.display.surface, str(screenshot))
            mount = source.mount
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        sys.exit(130)
    except user_errors() as error:
        log.debug("drive failed", exc_info=True)
        raise click.ClickException(str(error)) from None
    click.echo(
        f"drove {summary['frames']} frames on {run.source_text} with {run.backend_text}: "
        f"{session.distance_m:.1f} m, sim {summary['fps']} fps, "
        f"weather {source.weather or '-'}, camera {mount or '-'}, "
        f"autopilot {'on' if run.display.keyboard.autopilot else 'off'}, "
        f"label transform {'on' if run.pipeline.adapt_labels else 'off'}{cycler.summary}"
    )


def _style_count(checkpoint: str) -> int:
    """How many styles the checkpoint has (0 without styles or clusters)."""
    from renderer.style_choice import checkpoint_styles

    _, bank = checkpoint_styles(checkpoint)
    return 0 if bank is None else bank.k
