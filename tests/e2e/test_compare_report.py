"""`carla-neural compare` as a user runs it, and its HTML report in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from carla_neural.compare.plots import NEURAL_COLOR, RAW_COLOR
from carla_neural.compare.synthetic import write_synthetic_run


def carla_neural(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the installed `carla-neural` entry point of this venv."""
    script = Path(sys.executable).parent / "carla-neural"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    base = tmp_path_factory.mktemp("e2e_compare")
    run = write_synthetic_run(base / "run", frames=5)
    out = base / "report"
    completed = carla_neural("compare", str(run), "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    return run, out, completed


def test_compare_writes_metrics_report_and_plots(report):
    run, out, completed = report
    summary_line = completed.stdout.strip().splitlines()[-1]
    assert summary_line.startswith("compare: 5 frames")
    assert str(out / "metrics.json") in summary_line and str(out / "report.html") in summary_line
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["warping_error"]["raw"] < metrics["warping_error"]["neural"]
    assert metrics["fid"]["neural_vs_raw"] > 0 and "neural_vs_raw" in metrics["kid"]
    assert {row["name"] for row in metrics["class_colors"]} == {"road", "building", "sky", "car"}
    # Segmentation consistency with the bundled segmenter, its real-photo ceiling beside it.
    seg = metrics["segmentation"]
    assert 0 <= seg["neural"]["pixel_accuracy"] <= 1 and seg["raw"]["frames"] == 5
    assert seg["ceiling_real_photos"]["sequences"] == ["seq0004"] and seg["ceiling_real_photos"]["miou"] > 0.2
    assert len(metrics["per_frame"]["seg_accuracy_neural"]) == 5 and "seg mIoU neural" in summary_line
    # Without --real there is one FID/KID pair: the table holds it, and no one-bar chart is drawn.
    assert sorted(path.name for path in (out / "plots").iterdir()) == [
        "class_colors.png", "per_frame.png", "thumbnails.png"]
    assert "frames" in completed.stderr  # the progress bar
    # The label-map gap to the shipped real statistics, next to the image metrics.
    gap = metrics["label_gap"]
    assert gap["frames"] == 5 and gap["label_transform"] == "off" and list(gap["gap"]) == ["recorded"]
    rows = {row["figure"]: row for row in gap["rows"]}
    # The synthetic pan holds road, building, sky and car only: far from the real class shares.
    assert rows["class JS divergence"]["recorded"] > 0.1 and rows["class JS divergence"]["reference"] == 0
    assert rows["horizon row"]["reference"] == gap["gap"]["recorded"]["viewpoint"]["horizon_row"]["reference"]
    assert "label gap class JS recorded" in summary_line


def test_missing_inputs_fail_with_the_file_and_the_fix(tmp_path):
    run = write_synthetic_run(tmp_path / "run", frames=3, png=("raw", "neural"))
    completed = carla_neural("compare", str(run), "--metrics", "warp,color")
    assert completed.returncode != 0
    assert "frames/flow/000100.png" in completed.stderr and "cameras.sensors include 'flow'" in completed.stderr
    assert "frames/label_ids/000100.png" in completed.stderr and "--png" in completed.stderr
    assert "Traceback" not in completed.stderr
    bad = carla_neural("compare", str(run), "--metrics", "warp,speed")
    assert bad.returncode == 2 and "speed" in bad.stderr and "warp,tof,fid,color" in bad.stderr


def test_report_renders_with_its_plots_in_headless_chromium(report, tmp_path, chromium, pixels_near):
    _, out, _ = report
    shot = tmp_path / "report.png"
    completed = chromium("--window-size=1000,3600", f"--screenshot={shot}", (out / "report.html").as_uri())
    assert shot.is_file(), completed.stderr[-2000:]
    image = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    # The plots draw raw in blue and neural in red; an empty or broken image would show neither.
    assert pixels_near(image, RAW_COLOR) > 500
    assert pixels_near(image, NEURAL_COLOR) > 500
    # Three images: two plots and the frame thumbnails.
    dom = chromium("--virtual-time-budget=3000", "--dump-dom", (out / "report.html").as_uri()).stdout
    for plot_id in ("plot-per-frame", "plot-class-colors", "thumbnails"):
        assert f'id="{plot_id}"' in dom
    gap_table = dom.split('id="label-gap"')[1].split("</table>")[0]
    assert "class JS divergence" in gap_table and "label PNGs (simulator)" in gap_table


def test_side_by_side_video_of_the_report_plays_in_chromium(report, tmp_path, chromium):
    run, out, _ = report
    html = (out / "report.html").read_text()
    video_src = html.split('<video id="side-by-side"')[1].split('src="')[1].split('"')[0]
    probe = out / "video_probe.html"
    probe.write_text(
        f'<video id="v" muted src="{video_src}"></video><p id="o">pending</p><script>'
        "const v=document.getElementById('v'), o=document.getElementById('o');"
        "v.onloadeddata=()=>{o.textContent='loaded '+v.videoWidth+'x'+v.videoHeight};"
        "v.onerror=()=>{o.textContent='error '+v.error.code};</script>")
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    assert "loaded 384x64" in dom, dom[-500:]  # raw | labels | neural, 128 x 64 each


def test_a_run_without_label_pngs_says_why_it_has_no_gap_metrics(tmp_path, chromium):
    run = write_synthetic_run(tmp_path / "run", frames=3, png=("raw", "neural", "flow"))
    out = tmp_path / "report"
    completed = carla_neural("compare", str(run), "--metrics", "warp", "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    absent = json.loads((out / "metrics.json").read_text())["label_gap"]["absent"]
    assert "frames/label_ids/ holds no label PNGs" in absent and "--png" in absent
    assert "no gap metrics (no label PNGs)" in completed.stdout
    dom = chromium("--virtual-time-budget=3000", "--dump-dom", (out / "report.html").as_uri()).stdout
    note = dom.split('id="label-gap-absent"')[1].split("</p>")[0]
    assert "holds no label PNGs" in note and 'id="label-gap"' not in dom


def test_a_run_recorded_with_the_transform_is_measured_after_it_too(tmp_path):
    run = write_synthetic_run(tmp_path / "run", frames=3)
    info = json.loads((run / "run.json").read_text())
    # What `record --adapt-labels` writes: the transform on, with its full config.
    info["label_transform"] = {"enabled": True, "config_file": None, "config": {"min_region_px": 16,
                                                                               "speck_classes": [26]}}
    (run / "run.json").write_text(json.dumps(info))
    completed = carla_neural("compare", str(run), "--metrics", "color", "--out", str(tmp_path / "report"))
    assert completed.returncode == 0, completed.stderr
    gap = json.loads((tmp_path / "report" / "metrics.json").read_text())["label_gap"]
    assert gap["label_transform"] == "on" and list(gap["gap"]) == ["recorded", "after_transform"]
    assert gap["gap"]["after_transform"]["sim"]["origin"]["label_transform"]["min_region_px"] == 16


def test_a_bad_gap_reference_is_one_line(tmp_path):
    run = write_synthetic_run(tmp_path / "run", frames=3)
    reference = tmp_path / "other.json"
    reference.write_text(json.dumps({"format": "something-else"}))
    completed = carla_neural("compare", str(run), "--metrics", "color", "--gap-reference", str(reference),
                             "--out", str(tmp_path / "report"))
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    assert f"reference {reference}: field 'format'" in completed.stderr
    assert not (tmp_path / "report").exists()
