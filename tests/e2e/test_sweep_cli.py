"""`carla-neural sweep` refuses a bad sweep file in one line naming the field, before writing anything
or starting Ray."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [str(Path(sys.executable).with_name("carla-neural"))]


def test_bad_sweep_file_names_the_field_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nscenario: urban_day\naxes: {weather: [ClearNoon, Sunny], mount: [hood]}\n")
    out = tmp_path / "out"
    result = subprocess.run([*CLI, "sweep", str(bad), "--out", str(out)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "axes.weather[1]" in result.stderr and "unknown weather preset 'Sunny'" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_unreachable_ray_address_fails_in_seconds_and_writes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="needs the sweep extra: pip install 'carla-neural[sweep]'")
    good = tmp_path / "good.yaml"
    good.write_text("name: good\nscenario: urban_day\nframes: 2\naxes: {seed: [1, 2]}\n")
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    result = subprocess.run([*CLI, "sweep", str(good), "--out", str(out), "--ray-address", f"127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"no Ray cluster answers at --ray-address 127.0.0.1:{port}" in result.stderr
    assert "ray start --head" in result.stderr and "Traceback" not in result.stderr and not out.exists()
