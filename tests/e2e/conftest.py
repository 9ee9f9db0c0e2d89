"""Fixtures of the end-to-end tests: headless Chromium for the HTML reports."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


@pytest.fixture
def chromium(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run headless Chromium with a throw-away profile; skips the test where there is none."""
    if CHROMIUM is None:
        pytest.skip("needs chromium (apt-get install chromium)")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                              capture_output=True, text=True, timeout=90)

    return run


@pytest.fixture
def pixels_near() -> Callable[[np.ndarray, str, int], int]:
    """How many pixels of an (H, W, 3) RGB image lie within a tolerance of a '#rrggbb' colour."""

    def count(image_rgb: np.ndarray, hex_colour: str, tolerance: int = 12) -> int:
        target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(image_rgb.astype(int) - target).max(axis=-1) <= tolerance).sum())

    return count
