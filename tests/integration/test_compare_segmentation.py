"""compare's segmentation consistency on a recorded synthetic run: the figures, their wiring, their errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from carla_neural.compare import CompareOptions, RunFolder, RunFolderError, compare_run, write_report
from carla_neural.compare.synthetic import write_synthetic_run
from renderer.metrics.segmentation import segmentation_consistency
from renderer.segmenter import Segmenter, SegmenterConfig, load_segmenter, save_segmenter

TINY = SegmenterConfig(stem=8, widths=(8, 16, 16), deep_blocks=1, decoder=8, input_width=64, input_height=32)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("compare_seg") / "run", frames=5, videos=False)


@pytest.fixture(scope="module")
def segmenter_dir(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    return save_segmenter(Segmenter(TINY), tmp_path_factory.mktemp("seg") / "segmenter")


def _read(run: RunFolder, kind: str, frame_id: int, flags: int):
    image = cv2.imread(str(run.png_path(kind, frame_id)), flags)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def test_compare_scores_both_streams_as_the_library_function_does(run_dir, segmenter_dir, tmp_path) -> None:
    result = compare_run(run_dir, CompareOptions(metrics=("seg",), segmenter=str(segmenter_dir)))
    seg = result.metrics["segmentation"]
    run = RunFolder(run_dir)
    frame_ids = list(range(100, 105))
    labels = [_read(run, "label_ids", i, cv2.IMREAD_UNCHANGED) for i in frame_ids]
    model = load_segmenter(segmenter_dir)
    for stream in ("raw", "neural"):
        frames = [_read(run, stream, i, cv2.IMREAD_COLOR) for i in frame_ids]
        direct = segmentation_consistency(frames, labels, model, batch_size=2)
        assert seg[stream]["miou"] == pytest.approx(direct["miou"])
        assert seg[stream]["pixel_accuracy"] == pytest.approx(direct["pixel_accuracy"])
        assert seg[stream]["frames"] == 5 and seg[stream]["pixels"] == 5 * 128 * 64
        assert len(result.per_frame[f"seg_accuracy_{stream}"]) == 5
    assert seg["segmenter"] == str(segmenter_dir)
    assert seg["ceiling_real_photos"] is None  # this segmenter was never scored on real photos
    paths = write_report(result, run, tmp_path / "report")
    written = json.loads(paths.metrics_json.read_text())
    assert set(written["segmentation"]["neural"]["per_class_iou"]) >= {"road", "building", "sky", "car"}
    assert written["per_frame"]["seg_accuracy_neural"] == pytest.approx(result.per_frame["seg_accuracy_neural"])
    assert "segmentation mIoU" in paths.report_html.read_text()
    assert "segmentation (raw + neural)" in written["timing_ms_per_frame"]


def test_seg_needs_label_ids_and_a_segmenter(tmp_path, segmenter_dir) -> None:
    bare = write_synthetic_run(tmp_path / "bare", frames=2, png=("raw", "neural"), videos=False)
    with pytest.raises(RunFolderError, match=r"seg \(segmentation consistency\) needs frames/label_ids/000100.png"):
        compare_run(bare, CompareOptions(metrics=("seg",), segmenter=str(segmenter_dir)))
    run = write_synthetic_run(tmp_path / "run", frames=2, videos=False)
    with pytest.raises(RunFolderError, match="--segmenter .*nowhere.*needs config.json and model.safetensors"):
        compare_run(run, CompareOptions(metrics=("seg",), segmenter=str(tmp_path / "nowhere")))
