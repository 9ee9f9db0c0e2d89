"""`carla-neural drive` on the built-in world, headless, driven by real pygame key events."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from carla_neural.display.window import PLACEHOLDER_GREY

CLI = [str(Path(sys.executable).with_name("carla-neural"))]


def drive(checkpoint: Path, *args: str, size: tuple[int, int] = (64, 32)) -> subprocess.CompletedProcess:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*CLI, "drive", "--world", "builtin", "--checkpoint", str(checkpoint), "--size", f"{size[0]}x{size[1]}",
         "--vehicles", "2", "--walkers", "2", "--headless", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )


def test_keys_drive_the_car_and_switch_weather_camera_and_autopilot(tiny_checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    # Hold W for 15 frames, then C (weather), TAB twice (camera), P (autopilot).
    screenshot = tmp_path / "drive.png"
    result = drive(tiny_checkpoint, "--frames", "30", "--keys", "0-15:w,17:c,19:tab,21:tab,23:p",
                   "--screenshot", str(screenshot), size=(128, 64))
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("drove 30 frames on builtin world")
    assert "weather CloudyNoon" in line  # ClearNoon -> next preset
    assert "camera roof" in line  # hood -> chase -> roof
    assert "autopilot on" in line
    distance = float(re.search(r"([\d.]+) m,", line).group(1))
    assert distance > 1.0  # throttle moved the car from standstill
    # raw | labels | neural, 128x64 each: the neural panel shows a rendered frame, not the grey
    # "waiting" placeholder (which covers ~78% of the panel, the rest being its caption).
    window = cv2.imread(str(screenshot), cv2.IMREAD_COLOR)
    assert window.shape == (64, 384, 3)
    placeholder = (window[:, 256:] == PLACEHOLDER_GREY).all(axis=2).mean()
    assert placeholder < 0.2


def test_escape_ends_the_drive(tiny_checkpoint: Path) -> None:
    result = drive(tiny_checkpoint, "--frames", "200", "--keys", "3:escape")
    assert result.returncode == 0, result.stderr
    frames = int(re.search(r"drove (\d+) frames", result.stdout).group(1))
    assert frames <= 5
    assert "autopilot off" in result.stdout  # --manual is the default


def test_bad_key_script_is_refused(tiny_checkpoint: Path) -> None:
    result = drive(tiny_checkpoint, "--frames", "2", "--keys", "5:warp")
    assert result.returncode == 2
    assert "unknown key 'warp'" in result.stderr


def test_t_switches_the_label_transform_live(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from carla_neural.remap import colorize_label_ids

    # The labels panel shows what the renderer gets: the simulator's "ground" (the transform is
    # off by default) until T switches the transform on, which maps it to sidewalk; T again, off.
    ground_rgb = colorize_label_ids(np.array([[6]], np.uint8))[0, 0][::-1]  # BGR, as cv2 reads
    labels_panels = {}
    for name, keys in (("on", "2:t"), ("on and off", "2:t,4:t")):
        screenshot = tmp_path / f"{name}.png"
        result = drive(tiny_checkpoint, "--frames", "8", "--keys", keys, "--screenshot", str(screenshot),
                       size=(128, 64))
        assert result.returncode == 0, result.stderr
        line = result.stdout.strip().splitlines()[-1]
        assert line.endswith(f"label transform {name.split()[-1]}")
        labels_panels[name] = cv2.imread(str(screenshot), cv2.IMREAD_COLOR)[:, 128:256]
    ground = {name: int((panel == ground_rgb).all(axis=2).sum()) for name, panel in labels_panels.items()}
    assert ground["on"] == 0 and ground["on and off"] > 10
