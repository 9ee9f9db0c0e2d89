"""`carla-neural gap` and `gap-reference` as a user runs them, and the report in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from carla_neural.compare.synthetic import write_synthetic_run
from domain_adapt.plots import REFERENCE_COLOR, SIM_COLOR

DATA = Path(os.environ.get("CARLA_NEURAL_DATA", Path(__file__).parents[2] / "../shared/data")) / "cityscapes-sequences"
needs_data = pytest.mark.skipif(not (DATA / "train_A" / "seq0004").is_dir(),
                                reason=f"needs the real Cityscapes sequences in {DATA} (or CARLA_NEURAL_DATA)")


def carla_neural(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `carla-neural` entry point of this venv."""
    script = Path(sys.executable).parent / "carla-neural"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def write_nvidia_labels(root: Path, frames: int = 3) -> Path:
    """A label-only NVIDIA-layout tree (test_A + uint8 test_inst): sky, road and one parked car."""
    for t in range(frames):
        labels = np.full((64, 128), 7, np.uint8)
        labels[:28] = 23
        labels[40:50, 10 + t:30 + t] = 26
        instances = np.full(labels.shape, 255, np.uint8)
        instances[labels == 26] = 1
        for kind, image in (("test_A", labels), ("test_inst", instances)):
            folder = root / kind / "city_00"
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"city_00_{t:06d}.png"), image)
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    base = tmp_path_factory.mktemp("e2e_gap")
    run = write_synthetic_run(base / "run", frames=4, videos=False)
    out = base / "report"
    completed = carla_neural("gap", str(run), "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    return run, out, completed


def test_gap_writes_gap_json_report_and_plots_against_the_shipped_reference(report):
    run, out, completed = report
    summary_line = completed.stdout.strip().splitlines()[-1]
    assert summary_line.startswith("gap: 4 frames: class JS")
    assert str(out / "gap.json") in summary_line and str(out / "report.html") in summary_line
    gap = json.loads((out / "gap.json").read_text())
    assert gap["sim"]["frames"] == 4 and gap["reference"]["frames"] == 150
    assert "Cityscapes" in gap["reference"]["origin"]["terms"]
    # The synthetic run holds sky, building, road and one car: the real maps hold many more classes.
    assert {"vegetation", "sidewalk", "person"} <= set(gap["classes"]["only_in_reference"])
    assert gap["classes"]["only_in_sim"] == []
    assert 0 < gap["classes"]["js_divergence"] < 1
    assert gap["objects"]["instances_per_frame"]["car"]["sim"] == 1.0
    assert gap["viewpoint"]["horizon_row"]["sim"] is not None and gap["viewpoint"]["advice"]
    assert sorted(path.name for path in (out / "plots").iterdir()) == [
        "boundaries.png", "classes.png", "objects.png", "temporal.png", "viewpoint.png"]
    assert "measure" in completed.stderr  # the progress bar


def test_gap_of_a_dataset_against_its_own_reference_is_zero(tmp_path):
    data = write_nvidia_labels(tmp_path / "data")
    reference = tmp_path / "reference.json"
    made = carla_neural("gap-reference", "--data", str(data), "--sequences", "test_A/city_00",
                        "--description", "three frames", "--out", str(reference))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().endswith(f"3 frames of 1 sequence(s) -> {reference}")
    origin = json.loads(reference.read_text())["origin"]
    assert origin["sequences"] == ["test_A/city_00"] and origin["command"].startswith("carla-neural gap-reference")
    completed = carla_neural("gap", str(data), "--reference", str(reference), "--out", str(tmp_path / "out"))
    assert completed.returncode == 0, completed.stderr
    gap = json.loads((tmp_path / "out" / "gap.json").read_text())
    assert gap["classes"]["js_divergence"] == 0 and gap["viewpoint"]["road_profile_l1"] == 0
    assert gap["objects"]["instances_per_frame"]["car"] == {"label_id": 26, "sim": 1.0, "reference": 1.0,
                                                             "ratio": 1.0}
    assert gap["objects"]["from"]["sim"] == "instance maps"


def test_adapt_labels_measures_the_transformed_maps(tmp_path):
    data = write_nvidia_labels(tmp_path / "data")
    for path in (data / "test_A" / "city_00").iterdir():
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        labels[60:, :] = 6  # ground: the real maps never hold it
        cv2.imwrite(str(path), labels)
    plain = carla_neural("gap", str(data), "--out", str(tmp_path / "plain"))
    adapted = carla_neural("gap", str(data), "--adapt-labels", "--out", str(tmp_path / "adapted"))
    assert plain.returncode == 0 and adapted.returncode == 0, adapted.stderr
    before = json.loads((tmp_path / "plain" / "gap.json").read_text())
    after = json.loads((tmp_path / "adapted" / "gap.json").read_text())
    assert before["classes"]["only_in_sim"] == ["ground"] and after["classes"]["only_in_sim"] == []
    assert "label_transform" in after["sim"]["origin"]


def test_bad_inputs_fail_in_one_line_naming_the_file_and_write_nothing(tmp_path):
    run = write_synthetic_run(tmp_path / "run", frames=2, png=("raw", "neural"), videos=False)
    out = tmp_path / "out"
    completed = carla_neural("gap", str(run), "--out", str(out))
    assert completed.returncode == 1
    assert "frames/label_ids/ holds no label PNGs" in completed.stderr and "--png" in completed.stderr
    assert "Traceback" not in completed.stderr and len(completed.stderr.strip().splitlines()) == 1
    assert not out.exists()
    shipped = json.loads((Path(__file__).parents[2] / "domain_adapt/reference/cityscapes.json").read_text())
    other = tmp_path / "carla_tags.json"
    other.write_text(json.dumps({**shipped, "label_set": "carla-tags-0.9.14"}))
    good_run = write_synthetic_run(tmp_path / "good", frames=2, videos=False)
    completed = carla_neural("gap", str(good_run), "--reference", str(other), "--out", str(out))
    assert completed.returncode == 1 and str(other) in completed.stderr and "'label_set'" in completed.stderr
    assert "Traceback" not in completed.stderr and not out.exists()
    missing = carla_neural("gap", str(tmp_path / "nowhere"), "--out", str(out))
    assert missing.returncode == 1 and "nowhere does not exist" in missing.stderr


def test_gap_report_renders_with_its_plots_in_headless_chromium(report, tmp_path, chromium, pixels_near):
    _, out, _ = report
    shot = tmp_path / "report.png"
    completed = chromium("--window-size=1000,5200", f"--screenshot={shot}", (out / "report.html").as_uri())
    assert shot.is_file(), completed.stderr[-2000:]
    image = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    # Simulator in red, reference in blue: an empty or broken plot would show neither.
    assert pixels_near(image, SIM_COLOR) > 500
    assert pixels_near(image, REFERENCE_COLOR) > 500
    dom = chromium("--virtual-time-budget=3000", "--dump-dom", (out / "report.html").as_uri()).stdout
    for plot_id in ("plot-viewpoint", "plot-classes", "plot-boundaries", "plot-objects", "plot-temporal"):
        assert f'id="{plot_id}"' in dom
    assert 'id="viewpoint-advice"' in dom


@needs_data
def test_held_out_real_sequence_is_close_to_the_shipped_reference(tmp_path):
    out = tmp_path / "seq0004"
    completed = carla_neural("gap", str(DATA), "--sequences", "train_A/seq0004", "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    gap = json.loads((out / "gap.json").read_text())
    assert gap["classes"]["only_in_sim"] == [] and gap["classes"]["js_divergence"] < 0.1
    assert abs(gap["viewpoint"]["horizon_row"]["difference_rows"]) < 15
    assert gap["viewpoint"]["hood_rows"]["sim"] == 0
