"""`carla-neural sweep` refuses a bad sweep file in one line naming the field, before writing anything
or starting Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
