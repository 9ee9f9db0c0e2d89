"""Our own models' options: full-resolution kernel size and the nearest label pyramid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from renderer.checkpoint import load_checkpoint, read_config, save_checkpoint
from renderer.model.config import GeneratorConfig, SingleGConfig, preset
from renderer.model.generator import build_generator
from renderer.model.inputs import build_pyramid, encode_label_frame
from renderer.model.stem import frame_codes
from renderer.sequential import SequentialRenderer

SMALL = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=1, n_scales=3,
                        single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1))


def street_frames(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """3 encoded frames (1, 108, H, W) and their codes (1, 3, H, W): regions, poles, two cars."""
    frames, codes = [], []
    for shift in range(3):
        labels = torch.full((1, height, width), 7, dtype=torch.long)
        labels[:, : height // 3] = 23
        labels[:, :, (3 + shift) :: 7] = 17
        labels[:, height // 2 :, 10 + shift : 22 + shift] = 26
        instances = labels.clone()
        instances[:, height // 2 :, 16 + shift : 22 + shift] = 26002
        encoded = encode_label_frame(labels, instances, 35, True)
        frames.append(encoded)
        codes.append(frame_codes(labels, encoded[:, 35]))
    return torch.cat(frames, 1), torch.stack(codes, 1)


def test_defaults_are_nvidias() -> None:
    config = GeneratorConfig()
    assert config.full_res_kernel == 7 and config.label_pyramid == "avg"
    generator = build_generator(SMALL, seed=0)
    assert generator.scales[1].model_final_img[1].kernel_size == (7, 7)
    assert generator.scales[1].model_down_img[1].kernel_size == (7, 7)


def test_options_round_trip_through_our_checkpoint(tmp_path: Path) -> None:
    for changes in ({"full_res_kernel": 3}, {"label_pyramid": "nearest"}, {"use_fg": False}):
        config = SMALL.replace(**changes)
        generator = build_generator(config, seed=1)
        save_checkpoint(generator, tmp_path / str(changes))
        read_back, _ = read_config(tmp_path / str(changes))
        assert read_back == config
        loaded = load_checkpoint(tmp_path / str(changes))
        assert loaded.config == config
        for key, value in generator.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key


def test_full_res_kernel_sets_heads_and_previous_image_stems_only() -> None:
    generator = build_generator(SMALL.replace(full_res_kernel=3), seed=0)
    for scale in generator.scales:
        assert scale.model_down_img[1].kernel_size == (3, 3)
        for head_name in ("model_final_img", "model_final_flow", "model_final_w", "indv_final"):
            assert getattr(scale, head_name)[1].kernel_size == (3, 3)
        assert scale.model_down_seg[1].kernel_size == (7, 7)  # label stems keep the lookup path


def test_label_pyramid_method_matches_the_config() -> None:
    stack, _ = street_frames(32, 48)
    avg = build_generator(SMALL, seed=0).label_pyramid(stack)
    assert all(torch.equal(a, b) for a, b in zip(avg, build_pyramid(stack, 3)[::-1]))
    nearest = build_generator(SMALL.replace(label_pyramid="nearest"), seed=0).label_pyramid(stack)
    assert [tuple(level.shape[-2:]) for level in nearest] == [(8, 12), (16, 24), (32, 48)]
    assert torch.equal(nearest[0], stack[..., ::4, ::4])
    assert set(nearest[0].unique().tolist()) <= {0.0, 1.0}  # still one-hot (+ 0/1 edges)


def test_lookup_stems_equal_dense_convs_at_every_scale_with_a_nearest_pyramid() -> None:
    generator = build_generator(SMALL.replace(label_pyramid="nearest", full_res_kernel=3), seed=2)
    stack, codes = street_frames(32, 48)
    label_stacks = generator.label_pyramid(stack)
    assert generator.needs_label_stacks(have_codes=True) == [False, False, False]
    with torch.inference_mode():
        generator.set_fast_paths("lookup")
        fast = generator.stems([None] * 3, codes)
        fast_masks = generator.masks([None] * 3, codes)
        generator.set_fast_paths("dense")
        dense = generator.stems(label_stacks, codes)
        dense_masks = generator.masks(label_stacks, codes)
    for (fast_seg, fast_fg), (dense_seg, dense_fg) in zip(fast, dense):
        assert torch.allclose(fast_seg, dense_seg, atol=1e-5)
        assert torch.allclose(fast_fg, dense_fg, atol=1e-5)
    for fast_mask, dense_mask in zip(fast_masks, dense_masks):
        assert torch.equal(fast_mask, dense_mask)


def test_renderer_with_nearest_pyramid_renders_the_same_frames_on_every_path() -> None:
    generator = build_generator(SMALL.replace(label_pyramid="nearest", full_res_kernel=3), seed=3)
    frames = []
    for t in range(4):
        labels = np.full((32, 48), 7, np.uint8)
        labels[:10] = 23
        labels[16:, 8 + t : 20 + t] = 26
        frames.append(labels)
    fast_renderer = SequentialRenderer(generator)
    fast = [fast_renderer.step(f) for f in frames]
    generator.set_fast_paths("dense", "grid_sample")
    plain_renderer = SequentialRenderer(generator)
    plain = [plain_renderer.step(f) for f in frames]
    for a, b in zip(fast, plain):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_lite_preset_uses_the_fast_options() -> None:
    lite = preset("lite")
    assert lite.label_pyramid == "nearest" and lite.full_res_kernel == 3
