"""Forward math of one frame: composition, fg mask, flow scaling, coarse-to-fine, training mode."""

from __future__ import annotations

import torch

from renderer.model.composite import fg_mask
from renderer.model.config import GeneratorConfig, SingleGConfig
from renderer.model.generator import build_generator
from renderer.model.inputs import build_pyramid, encode_label_frame, instance_edges
from renderer.model.warp import warp

TINY = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=2, n_blocks_local=1, n_scales=2,
                       single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1))


def inputs(height: int = 32, width: int = 48, batch: int = 1):
    labels = torch.full((batch, height, width), 7, dtype=torch.long)
    labels[:, : height // 3] = 23
    labels[:, height // 2 :, 8:24] = 26
    frame = encode_label_frame(labels, None)
    stack = torch.cat([frame] * 3, 1)
    prev = torch.rand(batch, 6, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return build_pyramid(stack, 2)[::-1], build_pyramid(prev, 2)[::-1], labels


def test_instance_edges_mark_both_sides_of_a_boundary() -> None:
    ids = torch.zeros(1, 4, 5, dtype=torch.long)
    ids[:, :, 3:] = 1
    edges = instance_edges(ids)[0, 0]
    assert edges[:, 2].eq(1).all() and edges[:, 3].eq(1).all()
    assert edges[:, :2].eq(0).all() and edges[:, 4].eq(0).all()


def test_outputs_shapes_and_composition() -> None:
    generator = build_generator(TINY, seed=0)
    label_stacks, prev_stacks, labels = inputs()
    with torch.no_grad():
        outputs = generator(label_stacks, prev_stacks)
    assert [tuple(o.image.shape) for o in outputs] == [(1, 3, 16, 24), (1, 3, 32, 48)]
    fine = outputs[-1]
    assert fine.flow.shape == (1, 2, 32, 48) and fine.weight.shape == (1, 1, 32, 48)
    assert fine.weight.min() >= 0 and fine.weight.max() <= 1
    mask = fg_mask(label_stacks[-1], TINY)
    assert torch.equal(mask[0, 0], (labels[0] == 26).float())
    # car pixels come from the fg branch, the rest from raw·w + warp(prev)·(1−w)
    assert torch.allclose(fine.image[:, :, mask[0, 0] > 0], fine.fg[:, :, mask[0, 0] > 0])  # type: ignore[index]
    background = mask[0, 0] == 0
    blended = fine.raw * fine.weight + warp(prev_stacks[-1][:, 3:], fine.flow, "grid_sample") * (1 - fine.weight)
    assert torch.allclose(fine.image[:, :, background], blended[:, :, background], atol=1e-6)


def test_flow_multiplier_doubles_per_scale_and_raw_only_skips_the_warp() -> None:
    generator = build_generator(TINY, seed=0)
    assert generator.scales[0].flow_multiplier == 20
    assert generator.scales[1].flow_multiplier == 40
    label_stacks, prev_stacks, _ = inputs()
    with torch.no_grad():
        outputs = generator(label_stacks, prev_stacks, use_raw_only=True)
    assert torch.equal(outputs[-1].image, outputs[-1].raw)


def test_finer_scale_uses_the_coarse_features() -> None:
    generator = build_generator(TINY, seed=0)
    label_stacks, prev_stacks, _ = inputs()
    with torch.no_grad():
        outputs = generator(label_stacks, prev_stacks)
        altered = generator.scales[0](label_stacks[0], prev_stacks[0] * 0, fg_mask(label_stacks[0], TINY))
        finer = generator.scales[1](label_stacks[1], prev_stacks[1], fg_mask(label_stacks[1], TINY), altered)
    assert not torch.allclose(finer.image, outputs[-1].image)


def test_stems_split_equals_forward() -> None:
    generator = build_generator(TINY, seed=1)
    label_stacks, prev_stacks, _ = inputs()
    with torch.no_grad():
        whole = generator(label_stacks, prev_stacks)[-1].image
        split = generator.forward_from_stems(
            generator.stems(label_stacks), generator.masks(label_stacks), prev_stacks
        )[-1].image
    assert torch.equal(whole, split)


def test_training_mode_uses_batchnorm_and_backpropagates() -> None:
    generator = build_generator(TINY, norm_mode="batch", seed=0).train()
    label_stacks, prev_stacks, _ = inputs(batch=2)
    outputs = generator(label_stacks, prev_stacks)
    loss = outputs[-1].image.mean() + outputs[-1].flow.abs().mean()
    loss.backward()
    stem = generator.scales[1].model_down_seg[1].weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    running = generator.scales[0].model_down_seg[2].running_mean
    assert running.abs().sum() > 0  # BatchNorm statistics were tracked


def test_single_image_generators_run() -> None:
    for single in (SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1),
                   SingleGConfig(kind="local", ngf=4, n_downsampling=2, n_blocks=1, n_blocks_local=1)):
        generator = build_generator(TINY.replace(single_g=single), seed=0)
        _, _, labels = inputs()
        one_hot = encode_label_frame(labels, None)[:, :35]
        with torch.no_grad():
            image = generator.first_frame(one_hot)
        assert image.shape == (1, 3, 32, 48) and image.abs().max() <= 1


def test_same_seed_gives_the_same_weights() -> None:
    first = build_generator(TINY, seed=7).state_dict()
    second = build_generator(TINY, seed=7).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    other = build_generator(TINY, seed=8).state_dict()
    assert not torch.equal(first["scales.0.model_final_img.1.bias"], other["scales.0.model_final_img.1.bias"])
