"""compare_run on run folders written by the real recorder (small synthetic scenes, 128 x 64)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from carla_neural.compare import CompareOptions, RunFolder, RunFolderError, compare_run, write_report
from carla_neural.compare.synthetic import write_synthetic_run
from carla_neural.sources.encoding import read_flow_png, write_flow_png
from renderer.metrics import label_consistency_mask, warping_error

FAST = CompareOptions(metrics=("warp", "tof", "color"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("compare") / "run", frames=6)


def test_metrics_tell_the_steady_stream_from_the_flickering_one(run_dir):
    result = compare_run(run_dir, FAST)
    warp = result.metrics["warping_error"]
    # The raw scene moves exactly along its ground-truth flow; the neural one flickers.
    assert warp["raw"] == pytest.approx(0.0, abs=1e-6)
    assert warp["neural"] > 0.003
    # The car's occlusion edges are masked out through the label-consistency mask.
    assert 0.8 < warp["mean_valid_fraction"] < 1.0
    assert result.per_frame["frame_id"] == [100, 101, 102, 103, 104, 105]
    assert result.per_frame["warp_raw"][0] is None and len(result.per_frame["warp_neural"]) == 6
    assert result.metrics["tof"]["mean_px"] > 0
    assert result.metrics["rgb_source"] == "png"


def test_per_class_colours_come_from_the_label_maps(run_dir):
    rows = {row["name"]: row for row in compare_run(run_dir, CompareOptions(metrics=("color",))).class_colors}
    assert set(rows) == {"road", "building", "sky", "car"}
    red, green, blue = rows["car"]["raw_mean_rgb"]
    assert red > 120 > green  # the synthetic car is red
    # The neural stream has a blue cast: sky is bluer there.
    assert rows["sky"]["neural_mean_rgb"][2] > rows["sky"]["raw_mean_rgb"][2]
    assert sum(row["pixel_share"] for row in rows.values()) == pytest.approx(1.0)


def test_recorded_flow_pngs_keep_the_backward_convention(run_dir):
    run = RunFolder(run_dir)
    prev = cv2.cvtColor(cv2.imread(str(run.png_path("raw", 100))), cv2.COLOR_BGR2RGB)
    current = cv2.cvtColor(cv2.imread(str(run.png_path("raw", 101))), cv2.COLOR_BGR2RGB)
    flow_px, valid = read_flow_png(run.png_path("flow", 101))
    prev_labels, labels = (cv2.imread(str(run.png_path("label_ids", frame_id)), cv2.IMREAD_UNCHANGED)
                           for frame_id in (100, 101))
    # The car's occlusion edges are the scene's only inconsistency; the label mask removes them.
    steady = label_consistency_mask(prev_labels, labels, flow_px)
    assert warping_error(prev, current, flow_px, valid & steady) < 1e-6
    assert warping_error(prev, current, -flow_px, valid & steady) > 1e-3


def test_missing_flow_names_the_file_and_the_record_option(tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "frames" / "flow")
    with pytest.raises(RunFolderError) as error:
        compare_run(copy, FAST)
    message = str(error.value)
    assert "frames/flow/000100.png" in message and "'flow'" in message and "--png" in message and "--metrics" in message
    # Without the warping error the rest still runs.
    assert "warping_error" not in compare_run(copy, CompareOptions(metrics=("tof", "color"))).metrics


def test_videos_stand_in_for_missing_png_frames(tmp_path):
    run = write_synthetic_run(tmp_path / "run", frames=4, png=("label_ids", "flow"))
    result = compare_run(run, FAST)
    assert result.metrics["rgb_source"] == "video"
    assert result.metrics["frame_size"] == [128, 64]
    # H.264 costs the raw stream its exactness but not its advantage over the neural stream.
    assert result.metrics["warping_error"]["raw"] < result.metrics["warping_error"]["neural"]


def test_a_gap_in_frame_ids_restarts_the_temporal_metrics(tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    lines = (copy / "frames.jsonl").read_text().splitlines()
    (copy / "frames.jsonl").write_text("\n".join(lines[:3] + lines[4:]) + "\n")  # drop frame 103
    result = compare_run(copy, FAST)
    assert result.per_frame["frame_id"] == [100, 101, 102, 104, 105]
    assert result.per_frame["warp_raw"][3] is None and result.per_frame["tof"][3] is None
    assert result.per_frame["warp_raw"][4] is not None


def test_a_half_written_last_line_is_ignored(tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    with open(copy / "frames.jsonl", "a") as frames_jsonl:
        frames_jsonl.write('{"frame_id": 10')
    assert len(RunFolder(copy)) == 6


def test_not_a_run_folder(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        RunFolder(tmp_path / "nowhere")
    with pytest.raises(RunFolderError, match="run.json"):
        RunFolder(tmp_path)


def test_report_files_and_json_without_nan(tmp_path, run_dir):
    result = compare_run(run_dir, FAST)
    paths = write_report(result, RunFolder(run_dir), tmp_path / "out")
    document = json.loads(paths.metrics_json.read_text())  # strict JSON: NaN would be invalid
    assert document["per_frame"]["warp_raw"][0] is None
    assert {path.name for path in paths.plots} == {"per_frame.png", "class_colors.png", "thumbnails.png"}
    html = paths.report_html.read_text()
    video_src = html.split('<video id="side-by-side"')[1].split('src="')[1].split('"')[0]
    assert (paths.report_html.parent / video_src).resolve() == (run_dir / "side_by_side.mp4").resolve()


@pytest.mark.slow
def test_fid_and_kid_against_a_folder_of_real_images(tmp_path, run_dir):
    real = tmp_path / "real"
    (real / "city").mkdir(parents=True)
    rng = np.random.default_rng(5)
    for number in range(3):
        photo = np.clip(rng.normal(120, 40, (50, 90, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(real / "city" / f"{number}.jpg"), photo)
    (real / "notes.txt").write_text("not an image")
    result = compare_run(run_dir, CompareOptions(metrics=("fid",), real_dir=real, fid_max_frames=3))
    metrics = result.metrics
    assert metrics["fid_frame_stride"] == 2  # 6 frames capped at 3 per stream
    assert metrics["fid_kid_images"] == {"raw": 3, "neural": 3, "real": 3}
    assert set(metrics["fid"]) == {"neural_vs_raw", "neural_vs_real", "raw_vs_real"}
    assert all(value > 0 for value in metrics["fid"].values())
    assert set(metrics["kid"]["raw_vs_real"]) == {"mean", "std"}
    assert "inception per image" in metrics["timing_ms_per_frame"]
    assert "biased" in metrics["fid_note"]


def test_flow_writer_round_trip_matches_the_decoder(tmp_path):
    flow = np.stack([np.full((8, 16), 2.5, np.float32), np.full((8, 16), -1.25, np.float32)], -1)
    write_flow_png(tmp_path / "f.png", flow)
    decoded, valid = read_flow_png(tmp_path / "f.png")
    np.testing.assert_allclose(decoded, flow, atol=1 / 64)
    assert valid.all()


@pytest.mark.slow
def test_a_fid_sample_thumbnails_and_a_kid_without_a_fake_spread(tmp_path, run_dir):
    result = compare_run(run_dir, CompareOptions(metrics=("fid",), fid_frames=3, thumbnails=2))
    metrics = result.metrics
    # Exactly 3 frames per stream, spread over the 6 (first and last included).
    assert metrics["fid_frames"] == 3 and metrics["fid_kid_images"] == {"raw": 3, "neural": 3}
    # 3 images per set are one KID estimate: no +- made of rounding noise.
    assert metrics["kid"]["neural_vs_raw"]["std"] is None and "no spread" in metrics["kid_note"]
    assert [frame_id for frame_id, _, _ in result.thumbnails] == [100, 105]
    paths = write_report(result, RunFolder(run_dir), tmp_path / "report")
    assert sorted(p.name for p in paths.plots) == ["per_frame.png", "thumbnails.png"]  # one pair: no bar chart
    thumbnails = cv2.imread(str(tmp_path / "report" / "plots" / "thumbnails.png"))
    assert thumbnails.shape == (2 * (64 + 4), 128 + 4 + 128, 3)
    html = paths.report_html.read_text()
    assert 'id="thumbnails"' in html and "frames 100, 105" in html
    assert re.search(r"KID [-0-9.e]+ ±", html) is None and "KID has no ±" in html
