"""`carla-neural dataset export --world builtin`: the vid2vid layout and the world's flow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from carla_neural.sources.encoding import backward_flow_px
from carla_neural.sources.world import BuiltinWorld, WorldConfig
from renderer.flow_png import read_flow_png


def test_export_writes_the_layout_and_the_simulator_flow(tmp_path) -> None:
    out = tmp_path / "data"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "carla-neural"), "dataset", "export", "--world", "builtin", "--out", str(out),
         "--sequences", "2", "--frames", "3", "--size", "64x32", "--seed", "7", "--warmup", "2"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "exported 2 sequences" in result.stdout
    for kind in ("A", "B", "inst", "flow"):
        sequences = sorted(p.name for p in (out / f"train_{kind}").iterdir())
        assert sequences == ["seq0000", "seq0001"], kind
        assert len(list((out / f"train_{kind}" / "seq0001").glob("*.png"))) == 3
    labels = cv2.imread(str(out / "train_A/seq0000/000001.png"), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint8 and labels.shape == (32, 64) and labels.max() <= 33
    inst = cv2.imread(str(out / "train_inst/seq0000/000001.png"), cv2.IMREAD_UNCHANGED)
    assert inst.dtype == np.uint16 and inst.shape == (32, 64)
    assert cv2.imread(str(out / "train_B/seq0000/000001.png")).shape == (32, 64, 3)
    summary = json.loads((out / "dataset.json").read_text())["phases"]["train"]
    assert summary["has_flow"] and summary["size"] == [64, 32]
    assert not list(out.rglob("*.partial"))

    # The flow files hold the world's own backward flow of the same ticks (to KITTI's 1/64 px).
    world = BuiltinWorld(WorldConfig(width=64, height=32, seed=8))
    for _ in range(2 + 2):
        frame = world.tick()
    world.close()
    exported = read_flow_png(out / "train_flow/seq0001/000001.png")[0]
    assert np.abs(exported - backward_flow_px(frame.flow)).max() <= 1.0 / 64 + 1e-6


def test_export_from_carla_without_a_server_says_what_to_do(tmp_path) -> None:
    from carla_neural.dataset_export import ExportConfig, ExportError, export_dataset

    import pytest

    with pytest.raises(ExportError, match="CARLA server"):
        export_dataset(ExportConfig(out=str(tmp_path), world="carla", port=1, sequences=1, frames=1,
                                    carla_timeout_s=1.0))
