"""The segmenter trains on a generated two-colour dataset in NVIDIA's layout, resumes exactly, round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from renderer.checkpoint import CheckpointError
from renderer.segmenter import Segmenter, SegmenterConfig, load_segmenter, predict_train_ids, save_segmenter
from renderer.segmenter.training import SegmenterTrainConfig, SegmenterTrainError, train_segmenter

ROAD_TRAIN_ID, SKY_TRAIN_ID = 0, 10
TINY = SegmenterConfig(stem=8, widths=(8, 16, 16), deep_blocks=1, decoder=8, input_width=64, input_height=32)


def _config(data: Path, out: Path, **changes) -> SegmenterTrainConfig:
    values = dict(data=str(data), out_dir=str(out), val_sequences=("seq0001",), steps=40, batch_size=4,
                  crop_width=32, crop_height=32, lr=1e-2, warmup_steps=2, val_every=20, checkpoint_every=10,
                  model=TINY)
    values.update(changes)
    return SegmenterTrainConfig(**values)


def test_it_learns_a_two_colour_image_and_scores_the_held_out_sequence(two_colour_dataset, make_two_colour_frame,
                                                                        tmp_path) -> None:
    untrained = Segmenter(TINY)
    result = train_segmenter(_config(two_colour_dataset, tmp_path / "run"), progress=False)
    assert result.step == 40 and result.train_frames == 3 and result.val_frames == 3
    assert result.val["miou"] > 0.9 and result.val["pixel_accuracy"] > 0.95
    assert set(k for k, v in result.val["per_class_iou"].items() if v is not None) == {"road", "sky"}
    # The saved model predicts the split on a fresh frame at any size (resized to its working size).
    model = load_segmenter(result.segmenter_dir)
    rgb, labels = make_two_colour_frame(np.random.default_rng(9), 96, 48)
    prediction = predict_train_ids(model, [rgb])[0]
    assert prediction.shape == (48, 96)
    truth = np.where(labels == 7, ROAD_TRAIN_ID, SKY_TRAIN_ID)  # labelId 7: road
    assert (prediction == truth).mean() > 0.95
    assert (predict_train_ids(untrained, [rgb])[0] == truth).mean() < 0.95
    metadata = json.loads((result.segmenter_dir / "config.json").read_text())["metadata"]
    assert metadata["train_sequences"] == ["seq0000"] and metadata["val_sequences"] == ["seq0001"]
    assert (tmp_path / "run" / "val_metrics.json").is_file()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(two_colour_dataset, tmp_path) -> None:
    whole = train_segmenter(_config(two_colour_dataset, tmp_path / "whole", steps=20), progress=False)
    stopped = train_segmenter(_config(two_colour_dataset, tmp_path / "split", steps=20, stop_at=10), progress=False)
    assert stopped.step == 10 and stopped.val is None
    resumed = train_segmenter(_config(two_colour_dataset, tmp_path / "split", steps=20), progress=False)
    assert resumed.step == 20
    first = load_file(str(whole.segmenter_dir / "model.safetensors"))
    second = load_file(str(resumed.segmenter_dir / "model.safetensors"))
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=1e-4, atol=1e-5, msg=key)


def test_save_load_round_trip_is_strict(tmp_path) -> None:
    model = Segmenter(TINY).eval()
    folder = save_segmenter(model, tmp_path / "seg", {"note": "test"})
    loaded = load_segmenter(folder)
    assert not loaded.training and loaded.config == TINY
    rgb = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(rgb), model(rgb))
    tensors = load_file(str(folder / "model.safetensors"))
    tensors.pop(next(key for key in tensors if key.endswith("classifier.weight")))
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys.*classifier.weight"):
        load_segmenter(folder)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"format": "carla-neural/vid2vid-generator"}))
    save_file({}, str(tmp_path / "other" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="not a carla-neural/segmenter config"):
        load_segmenter(tmp_path / "other")


def test_bad_setups_are_refused_before_anything_is_written(two_colour_dataset, tmp_path) -> None:
    with pytest.raises(SegmenterTrainError, match="no sequence seq0009.*holds seq0000, seq0001"):
        train_segmenter(_config(two_colour_dataset, tmp_path / "a", val_sequences=("seq0009",)), progress=False)
    with pytest.raises(SegmenterTrainError, match="class_weights must be one of none, inverse-sqrt"):
        train_segmenter(_config(two_colour_dataset, tmp_path / "b", class_weights="median"), progress=False)
    with pytest.raises(SegmenterTrainError, match="both trained on and held out"):
        train_segmenter(_config(two_colour_dataset, tmp_path / "c", train_sequences=("seq0001",)), progress=False)
    assert not any(tmp_path.iterdir())
