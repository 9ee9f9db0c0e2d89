"""Fixtures shared across the suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


ROAD_ID, SKY_ID = 7, 23  # Cityscapes labelIds; trainIds 0 and 10


def two_colour_frame(rng: np.random.Generator, width: int = 128, height: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A photo split at a random column, dark red road left and light blue sky right, with its labelIds:
    ((H, W, 3) uint8 RGB, (H, W) uint8)."""
    split = int(rng.integers(width // 4, 3 * width // 4))
    labels = np.full((height, width), ROAD_ID, np.uint8)
    labels[:, split:] = SKY_ID
    rgb = np.where(labels[..., None] == ROAD_ID, (150, 40, 40), (90, 150, 230)).astype(np.float32)
    rgb += rng.normal(0, 8, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="session")
def make_two_colour_frame():
    """two_colour_frame, for tests that need fresh frames beside two_colour_dataset."""
    return two_colour_frame


@pytest.fixture(scope="session")
def two_colour_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NVIDIA's layout (train_A labelIds PNG, train_B JPEG photos), seq0000 and seq0001 of 3 frames at 128x64."""
    import cv2

    root = tmp_path_factory.mktemp("two_colour")
    rng = np.random.default_rng(0)
    for seq in ("seq0000", "seq0001"):
        for kind in ("train_A", "train_B"):
            (root / kind / seq).mkdir(parents=True)
        for index in range(3):
            rgb, labels = two_colour_frame(rng)
            cv2.imwrite(str(root / "train_A" / seq / f"f{index:03d}.png"), labels)
            cv2.imwrite(str(root / "train_B" / seq / f"f{index:03d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="session")
def openvino_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CARLA_NEURAL_CACHE folder shared by the session's openvino tests, so that the bodies
    they have in common (tiny_checkpoint at 64x32) are exported once, and none in the user's cache."""
    return tmp_path_factory.mktemp("carla-neural-cache")


@pytest.fixture(scope="session")
def two_colour_segmenter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny segmenter folder (working size 64x32) fitted in a second to tell two_colour_frame's red
    road from its blue sky: a judge that answers to the colours a generator paints."""
    import torch

    from renderer.segmenter import Segmenter, SegmenterConfig, label_ids_to_train_ids, save_segmenter

    torch.manual_seed(0)
    model = Segmenter(SegmenterConfig(stem=8, widths=(8, 16, 16), deep_blocks=1, decoder=8, input_width=64,
                                      input_height=32))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    for _ in range(40):
        frames = [two_colour_frame(rng, 64, 32) for _ in range(4)]
        rgb = torch.from_numpy(np.stack([f[0] for f in frames])).permute(0, 3, 1, 2).float() / 255
        target = torch.from_numpy(np.stack([label_ids_to_train_ids(f[1]) for f in frames])).long()
        loss = torch.nn.functional.cross_entropy(model(rgb), target, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_segmenter(model.eval(), tmp_path_factory.mktemp("segmenter") / "two_colour")


def write_two_colour_run(out_dir: Path, frames: int = 4, flow: bool = True) -> Path:
    """A `record`-style run folder of simulator maps at 64x32 (frames/label_ids, instance_ids and,
    with `flow`, flow): road below sky and a car driving right 2 px a frame, and the backward flow
    of that motion."""
    import cv2

    from renderer.flow_png import write_flow_png

    kinds = ("label_ids", "instance_ids") + (("flow",) if flow else ())
    for kind in kinds:
        (out_dir / "frames" / kind).mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        labels = np.full((32, 64), ROAD_ID, np.uint8)
        labels[:12] = SKY_ID
        labels[18:26, 10 + 2 * t:24 + 2 * t] = 26
        instances = labels.astype(np.uint16)
        instances[labels == 26] = 26001
        flow_px = np.zeros((32, 64, 2), np.float32)
        flow_px[labels == 26, 0] = -2.0 if t > 0 else 0.0
        name = f"{t:06d}.png"
        cv2.imwrite(str(out_dir / "frames" / "label_ids" / name), labels)
        cv2.imwrite(str(out_dir / "frames" / "instance_ids" / name), instances)
        if flow:
            write_flow_png(out_dir / "frames" / "flow" / name, flow_px)
    (out_dir / "run.json").write_text('{"source": "test", "png": ' + str(list(kinds)).replace("'", '"') + "}")
    return out_dir


@pytest.fixture(scope="session")
def make_two_colour_run():
    """write_two_colour_run, for the tests of `adapt`."""
    return write_two_colour_run


@pytest.fixture(scope="session")
def tiny_style_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint with styles (feature encoder of 3 channels, random weights) and a style
    bank of 2 styles set far apart (style 1 is style 0 negated; both differ from class to class,
    since a feature constant over the whole frame is normalised away by the first layer's
    per-frame norm), so that renders in the two styles differ visibly even untrained."""
    from renderer.checkpoint import save_checkpoint
    from renderer.model import GeneratorConfig, SingleGConfig, build_generator
    from renderer.styles import StyleBank, save_styles

    config = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=0, n_scales=1, feat_nc=3,
                             feat_ngf=4, single_g=SingleGConfig(kind="global", ngf=4, n_downsampling=2, n_blocks=1))
    folder = save_checkpoint(build_generator(config, seed=0), tmp_path_factory.mktemp("tiny_styles") / "ckpt")
    style_0 = np.random.default_rng(0).uniform(-0.9, 0.9, (35, 3)).astype(np.float32)
    centers = np.stack([style_0, -style_0], axis=1)
    save_styles(folder, StyleBank(centers, np.zeros((35, 3), np.float32), np.full(35, 4, np.int64)),
                source="tests/conftest.py (hand-set)")
    return folder
