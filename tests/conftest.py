"""Fixtures shared across the suite."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One of our checkpoints with random weights, small enough to render 64x32 to 128x64 frames
    in milliseconds: for tests of everything around the renderer (worker, client, pipeline, CLI)."""
    from renderer.checkpoint import save_checkpoint
    from renderer.model import GeneratorConfig, SingleGConfig, build_generator

    config = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=0, n_scales=1,
                             single_g=SingleGConfig(kind="global", ngf=4, n_downsampling=2, n_blocks=1))
    return save_checkpoint(build_generator(config, seed=0), tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture(scope="session")
def openvino_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CARLA_NEURAL_CACHE folder shared by the session's openvino tests, so that the bodies
    they have in common (tiny_checkpoint at 64x32) are exported once, and none in the user's cache."""
    return tmp_path_factory.mktemp("carla-neural-cache")
