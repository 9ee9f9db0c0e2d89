"""Display: panels drawn where they belong (pixels read back) and real pygame key events."""

from __future__ import annotations

import os

import numpy as np
import pygame
import pytest

from carla_neural.display import Action, Display, HudInfo, KeyboardController
from carla_neural.display.keys import STEER_LIMIT

WIDTH, HEIGHT = 80, 60
COLOURS = {"raw": (200, 30, 30), "labels": (30, 200, 30), "neural": (30, 30, 200)}


@pytest.fixture
def display():
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    window = Display((WIDTH, HEIGHT), headless=True)
    pygame.event.clear()
    yield window
    window.close()


def images() -> dict[str, np.ndarray]:
    return {name: np.full((HEIGHT, WIDTH, 3), colour, np.uint8) for name, colour in COLOURS.items()}


def pixels(window: Display) -> np.ndarray:
    """(H, W, 3) uint8 of the window."""
    return pygame.surfarray.array3d(window.surface).transpose(1, 0, 2)


def key(key_code: int, down: bool, mod: int = 0) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=key_code, mod=mod))


def tap(key_code: int, mod: int = 0) -> None:
    key(key_code, True, mod)
    key(key_code, False, mod)


def test_panels_side_by_side_in_order(display: Display) -> None:
    display.show_hud = False
    display.show(images(), HudInfo())
    screen = pixels(display)
    assert screen.shape == (HEIGHT, 3 * WIDTH, 3)
    for slot, name in enumerate(("raw", "labels", "neural")):
        region = screen[:, slot * WIDTH:(slot + 1) * WIDTH]
        assert (region == COLOURS[name]).all(), name


def test_images_of_another_size_are_fitted(display: Display) -> None:
    display.show_hud = False
    big = {name: np.full((2 * HEIGHT, 2 * WIDTH, 3), colour, np.uint8) for name, colour in COLOURS.items()}
    display.show(big)
    assert (pixels(display)[:, 2 * WIDTH:] == COLOURS["neural"]).all()


def test_hud_draws_text_over_the_first_panel(display: Display) -> None:
    display.show(images(), HudInfo(sim_fps=30.0, render_fps=12.5, latency_ms=80.0, frame_id=7, worker_state="ready"))
    screen = pixels(display)
    hud_corner = screen[:40, :WIDTH]
    assert (hud_corner != COLOURS["raw"]).any(axis=-1).mean() > 0.2  # box and text cover it
    assert (screen[:, 2 * WIDTH:] == COLOURS["neural"]).all()  # the HUD stays top left
    assert HudInfo(render_fps=12.5).lines()[1] == ("render", "12.5 fps")


def test_missing_image_draws_a_placeholder(display: Display) -> None:
    display.show_hud = False
    display.show({"raw": images()["raw"], "labels": images()["labels"], "neural": None})
    neural = pixels(display)[:, 2 * WIDTH:]
    assert not (neural == COLOURS["neural"]).all(axis=-1).any()
    assert (neural[:10] == (40, 40, 40)).all()


def test_number_keys_toggle_panels_and_window_resizes(display: Display) -> None:
    display.show_hud = False
    tap(pygame.K_2)
    state = display.poll()
    assert state.actions == [Action.TOGGLE_LABELS]
    assert display.visible_panels == ["raw", "neural"]
    display.show(images())
    screen = pixels(display)
    assert screen.shape == (HEIGHT, 2 * WIDTH, 3)
    assert (screen[:, WIDTH:] == COLOURS["neural"]).all()
    tap(pygame.K_1)
    tap(pygame.K_2)
    display.poll()
    assert display.visible_panels == ["labels", "neural"]


def test_f1_and_h_toggle_hud_and_help(display: Display) -> None:
    tap(pygame.K_F1)
    tap(pygame.K_h)
    display.poll()
    assert not display.show_hud and display.show_help
    display.show(images(), HudInfo())
    centre = pixels(display)[HEIGHT // 2, WIDTH + WIDTH // 2]
    assert tuple(centre) != COLOURS["labels"]  # the help box covers the middle


def test_driving_keys_follow_manual_control(display: Display) -> None:
    key(pygame.K_w, True)
    key(pygame.K_a, True)
    key(pygame.K_SPACE, True)
    state = display.poll()
    assert state.control.throttle == pytest.approx(0.1)
    assert state.control.hand_brake and state.control.brake == 0.0
    for _ in range(3):
        display.keyboard.process([], elapsed_ms=100.0)
    control = display.keyboard.process([], elapsed_ms=100.0).control
    assert control.throttle == pytest.approx(0.5)
    assert control.steer == pytest.approx(-0.2)
    key(pygame.K_w, False)
    key(pygame.K_a, False)
    key(pygame.K_SPACE, False)
    key(pygame.K_DOWN, True)
    control = display.poll().control
    assert control.throttle == 0.0 and control.steer == 0.0 and control.brake == pytest.approx(0.2)
    assert not control.hand_brake


def test_steering_is_capped_and_arrows_work() -> None:
    keyboard = KeyboardController()
    events = [pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT, mod=0)]
    control = keyboard.process(events, elapsed_ms=5000.0).control
    assert control.steer == pytest.approx(STEER_LIMIT)


@pytest.mark.parametrize(
    ("key_code", "mod", "action"),
    [
        (pygame.K_ESCAPE, 0, Action.QUIT),
        (pygame.K_q, pygame.KMOD_LCTRL, Action.QUIT),
        (pygame.K_p, 0, Action.TOGGLE_AUTOPILOT),
        (pygame.K_c, 0, Action.NEXT_WEATHER),
        (pygame.K_c, pygame.KMOD_LSHIFT, Action.PREVIOUS_WEATHER),
        (pygame.K_TAB, 0, Action.NEXT_CAMERA),
        (pygame.K_q, 0, Action.TOGGLE_REVERSE),
        (pygame.K_F1, 0, Action.TOGGLE_HUD),
        (pygame.K_3, 0, Action.TOGGLE_NEURAL),
        (pygame.K_t, 0, Action.TOGGLE_ADAPT),
    ],
)
def test_keys_map_to_actions(display: Display, key_code: int, mod: int, action: Action) -> None:
    tap(key_code, mod)
    state = display.poll()
    assert state.actions == [action]
    assert state.quit == (action is Action.QUIT)


@pytest.mark.parametrize("key_code", [pygame.K_r, pygame.K_n, pygame.K_BACKQUOTE])
def test_keys_bound_to_nothing_ask_for_nothing(display: Display, key_code: int) -> None:
    # manual_control.py's recording and sensor keys: no run here records or switches sensors on a key.
    tap(key_code)
    assert display.poll().actions == []


def test_autopilot_and_reverse_toggle_state(display: Display) -> None:
    assert display.poll().autopilot  # the display starts on autopilot
    tap(pygame.K_p)
    tap(pygame.K_q)
    state = display.poll()
    assert not state.autopilot and state.control.reverse


def test_window_close_is_quit(display: Display) -> None:
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert display.poll().quit


def test_unknown_panel_is_rejected() -> None:
    with pytest.raises(ValueError, match="allowed"):
        Display((8, 8), panels=("raw", "depth"), headless=True)


def test_the_hud_shows_the_label_transform_and_help_names_its_key(display: Display) -> None:
    from carla_neural.display.keys import HELP_LINES
    from carla_neural.display.live import LiveView, Shown
    from carla_neural.sources.world import BuiltinWorld, WorldConfig

    assert ("T", "label transform on / off") in HELP_LINES
    with BuiltinWorld(WorldConfig(width=WIDTH, height=HEIGHT, seed=0, sensors=("semantic",))) as world:
        view = LiveView(display, world)
        frame = world.tick()
        labels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)

        def rows(adapt: bool | None) -> dict[str, str]:
            return dict(view.hud(Shown(frame, None, labels, None, False, None, "ok", "latest", adapt)).lines())

        assert "adapt" not in rows(None)  # a run without a transform has no row for it
        assert rows(False)["adapt"] == "off"
        frame.timings_ms["adapt"] = 1.26
        assert rows(True)["adapt"] == "on 1.3 ms"
