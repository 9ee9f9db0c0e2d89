"""The shipped street models: what their folders say about themselves matches what they are."""

from __future__ import annotations

import json

import numpy as np
import pytest

from renderer.checkpoint import read_config
from renderer.checkpoint_ref import BUNDLED_FOLDERS, bundled_checkpoint, is_our_checkpoint
from renderer.loading import load_renderer, working_size_of
from renderer.training.config import TrainConfig

pytestmark = pytest.mark.skipif(not all(is_our_checkpoint(bundled_checkpoint(r)) for r in BUNDLED_FOLDERS),
                                reason="needs the shipped models in renderer/weights/lite, lite-baseline and lite-adapted")


def test_bundled_pair_is_a_512x256_vid2vid_model_and_its_frame_by_frame_baseline() -> None:
    vid2vid, baseline = (read_config(bundled_checkpoint(r))[1] for r in ("bundled", "bundled-baseline"))
    assert vid2vid["temporal"] is True and baseline["temporal"] is False
    assert working_size_of("bundled") == working_size_of("bundled-baseline") == (512, 256)
    assert vid2vid["trained_steps"] == baseline["trained_steps"]  # the same schedule, cut at the same clip


def test_recipe_is_a_valid_training_config_of_the_shipped_model() -> None:
    recipe = TrainConfig.load(bundled_checkpoint() / "recipe.json").validate()
    assert recipe.model == "lite" and recipe.temporal and recipe.val_sequences == ["seq0004"]
    assert (recipe.crop_width, recipe.crop_height) == working_size_of("bundled")
    metadata = read_config(bundled_checkpoint())[1]
    assert metadata["trained_steps"] <= recipe.steps


def test_bundled_renders_512x256_natively() -> None:
    renderer = load_renderer("bundled", device="cpu")
    assert renderer.size == (512, 256)
    labels = np.full((256, 512), 7, np.uint8)  # road below ...
    labels[:100] = 23  # ... sky above
    instances = labels.astype(np.int32)
    frames = [renderer.step(labels, instances) for _ in range(3)]
    assert all(f.shape == (256, 512, 3) and f.dtype == np.uint8 for f in frames)
    # A trained street model paints sky brighter than road (a random one has no such order).
    assert frames[-1][:90].mean() > frames[-1][120:].mean()


def test_bundled_adapted_is_the_street_model_fine_tuned_on_transformed_simulator_maps() -> None:
    from carla_neural.label_transform import load_transform_config

    source, adapted = (read_config(bundled_checkpoint(r)) for r in ("bundled", "bundled-adapted"))
    assert adapted[0] == source[0]  # the same generator, other weights
    metadata = adapted[1]
    assert metadata["temporal"] is True and working_size_of("bundled-adapted") == (512, 256)
    assert metadata["adapt_steps"] > 0 and metadata["adapted_from"] == "bundled"
    # It was adapted on maps through the calibrated transform, which every default run applies.
    calibrated = json.loads(json.dumps(load_transform_config().model_dump(mode="json")))
    assert metadata["adapt_label_transform"] == calibrated
