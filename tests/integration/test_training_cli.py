"""`carla-neural train` as a user runs it: a short run and a clear error for a bad option."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from carla_neural.dataset_export import ExportConfig, export_dataset
from renderer.model.config import GeneratorConfig, SingleGConfig

CLI = str(Path(sys.executable).parent / "carla-neural")
TINY = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=1, n_scales=2,
                       single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_train_cli_trains_and_rejects_bad_sizes(tmp_path, two_colour_segmenter) -> None:
    data = tmp_path / "data"
    export_dataset(ExportConfig(out=str(data), world="builtin", sequences=1, frames=5, width=64, height=32, seed=2,
                                warmup=2))
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps({"generator": TINY.to_dict()}))
    out = tmp_path / "run"
    common = ["train", "--data", str(data), "--out", str(out), "--model", str(model), "--size", "64x32",
              "--clip-length", "3", "--max-clip-length", "3", "--device", "cpu", "--l1", "10"]
    second_teacher = shutil.copytree(two_colour_segmenter, tmp_path / "teacher2")
    first = _run(*common, "--steps", "1", "--no-amp", "--region-colour", "5", "--segmentation", "2",
                 "--seg-teacher", str(two_colour_segmenter), "--seg-teacher", str(second_teacher))
    assert first.returncode == 0, first.stderr
    assert "trained steps 0..1" in first.stdout
    assert (out / "generator" / "model.safetensors").is_file()
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["weights"]["l1"] == 10.0 and saved["crop_width"] == 64
    assert saved["amp"] is False
    assert saved["weights"]["region_colour"] == 5.0
    logged = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])
    assert logged["G_Region"] > 0 and logged["S_G_Region"] > 0
    assert saved["weights"]["segmentation"] == 2.0 and saved["seg_teacher"] == [str(two_colour_segmenter), str(second_teacher)]
    assert logged["G_Seg"] > 0 and logged["S_G_Seg"] > 0

    bad = _run("train", "--data", str(data), "--out", str(tmp_path / "bad"), "--size", "60x30")
    assert bad.returncode != 0
    assert "crop_width" in bad.stderr and "multiple of 8" in bad.stderr
    # A tone is added to a frozen model: asked for without --styles-only, one line says so.
    tone = _run(*common, "--steps", "1", "--feature-channels", "3", "--style-input", "tone")
    assert tone.returncode == 2 and "Traceback" not in tone.stderr
    assert "style_input" in tone.stderr and "styles_only" in tone.stderr
    # A semantic term needs its teacher, named with the field to set.
    teacherless = _run(*common, "--steps", "1", "--segmentation", "1")
    assert teacherless.returncode == 2 and "Traceback" not in teacherless.stderr
    assert "seg_teacher" in teacherless.stderr and "segmenter folder" in teacherless.stderr
