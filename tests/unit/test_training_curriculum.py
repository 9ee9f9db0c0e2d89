"""Spatial and temporal curricula, the learning-rate schedule and config validation."""

from __future__ import annotations

import pytest

from renderer.training.config import ConfigError, TrainConfig
from renderer.training.curriculum import SpatialCurriculum, SpatialStage, TemporalCurriculum


def test_spatial_curriculum_adds_finer_scales_and_can_train_the_finest_alone() -> None:
    curriculum = SpatialCurriculum(num_scales=3, steps_per_scale=10, finest_alone_steps=4)
    assert curriculum.stage(0) == SpatialStage(1, False, 4)
    assert curriculum.stage(9) == SpatialStage(1, False, 4)
    assert curriculum.stage(10) == SpatialStage(2, True, 2)
    assert curriculum.stage(14) == SpatialStage(2, False, 2)
    assert curriculum.stage(20) == SpatialStage(3, True, 1)
    assert curriculum.stage(500) == SpatialStage(3, False, 1)
    assert SpatialCurriculum(num_scales=2, steps_per_scale=0).stage(0) == SpatialStage(2, False, 1)


def test_temporal_curriculum_doubles_the_clip_length() -> None:
    curriculum = TemporalCurriculum(initial_length=4, max_length=16, double_every=100)
    assert [curriculum.clip_length(step) for step in (0, 99, 100, 200, 10_000)] == [4, 4, 8, 16, 16]
    assert TemporalCurriculum(4, 8, 0).clip_length(10_000) == 4
    with pytest.raises(ValueError):
        TemporalCurriculum(initial_length=8, max_length=4)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match="crop_width"):
        TrainConfig(datasets=["d"], crop_width=100).validate()
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({"datasets": ["d"], "learning_rate": 1})
    with pytest.raises(ConfigError, match="weights.flow"):
        TrainConfig.from_dict({"datasets": ["d"], "weights": {"flow": -1.0}})
    config = TrainConfig.from_dict({"datasets": ["d"], "steps": 100, "weights": {"l1": 3.0}})
    assert config.weights.l1 == 3.0 and config.effective_decay_start == 50


def test_learning_rate_decays_linearly_to_zero(tmp_path) -> None:
    from renderer.training.trainer import Trainer

    trainer = Trainer.__new__(Trainer)
    trainer.config = TrainConfig(datasets=["d"], steps=100, lr=2e-4, decay_start=50)
    assert trainer.lr_at(0) == pytest.approx(2e-4)
    assert trainer.lr_at(75) == pytest.approx(1e-4)
    assert trainer.lr_at(100) == pytest.approx(0.0)
