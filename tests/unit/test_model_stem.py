"""The exact fast paths for one-hot stems equal the plain convolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from renderer.model.config import GeneratorConfig, SingleGConfig
from renderer.model.generator import build_generator
from renderer.model.inputs import build_pyramid, encode_label_frame
from renderer.model.stem import frame_codes, lookup_stem, lookup_table, present_channel_conv


def street_frames(height: int = 24, width: int = 40, n_frames: int = 3, use_instance: bool = True):
    """Label frames with regions, thin poles and two touching cars (distinct instances)."""
    frames, codes = [], []
    for shift in range(n_frames):
        labels = torch.full((1, height, width), 7, dtype=torch.long)
        labels[:, : height // 3] = 23
        labels[:, height // 3 : height // 2, 5:30] = 11
        labels[:, :, (3 + shift) :: 9] = 17
        labels[:, height // 2 :, 10 + shift : 22 + shift] = 26
        instances = labels.clone()
        instances[:, height // 2 :, 10 + shift : 16 + shift] = 26001
        instances[:, height // 2 :, 16 + shift : 22 + shift] = 26002
        encoded = encode_label_frame(labels, instances, 35, use_instance)
        frames.append(encoded)
        codes.append(frame_codes(labels, encoded[:, 35] if use_instance else None))
    return torch.cat(frames, 1), torch.stack(codes, 1)


def stem_convs(in_channels: int, seed: int = 0) -> list[nn.Conv2d]:
    torch.manual_seed(seed)
    return [nn.Conv2d(in_channels, 6, 7), nn.Conv2d(in_channels, 3, 7)]


@pytest.mark.parametrize("use_instance", [True, False])
def test_lookup_stem_equals_dense_conv(use_instance: bool) -> None:
    stack, codes = street_frames(use_instance=use_instance)
    convs = stem_convs(stack.shape[1])
    padded = nn.functional.pad(stack, (3, 3, 3, 3), mode="reflect")
    dense = torch.cat([conv(padded) for conv in convs], 1)
    table = lookup_table(convs, 35, use_instance, 3)
    bias = torch.cat([conv.bias for conv in convs])
    with torch.no_grad():
        fast = lookup_stem(codes, table, bias, 35 * (2 if use_instance else 1))
    assert fast.shape == dense.shape
    assert torch.allclose(fast, dense, atol=1e-5)


def test_lookup_stem_in_bands_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    stack, codes = street_frames()
    convs = stem_convs(stack.shape[1], seed=1)
    table = lookup_table(convs, 35, True, 3)
    with torch.no_grad():
        whole = lookup_stem(codes, table, None, 70)
        monkeypatch.setattr("renderer.model.stem.LOOKUP_BAND_PIXELS", 100)  # several bands
        banded = lookup_stem(codes, table, None, 70)
    assert torch.allclose(whole, banded, atol=1e-6)


def test_present_channel_conv_equals_dense_on_pooled_labels() -> None:
    stack, _ = street_frames()
    pooled = build_pyramid(stack, 2)[1]  # soft one-hot, as the coarse scales see it
    convs = stem_convs(stack.shape[1], seed=2)
    padded = nn.functional.pad(pooled, (3, 3, 3, 3), mode="reflect")
    with torch.no_grad():
        fast = present_channel_conv(pooled, convs, 3)
        dense = [conv(padded) for conv in convs]
    for a, b in zip(fast, dense):
        assert torch.allclose(a, b, atol=1e-5)


def test_generator_output_is_the_same_with_every_stem_mode() -> None:
    config = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=2, n_blocks_local=1, n_scales=2, single_g=None)
    generator = build_generator(config, seed=0)
    stack, codes = street_frames(32, 48)
    label_stacks = build_pyramid(stack, 2)[::-1]
    prev = torch.rand(1, 6, 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    prev_stacks = build_pyramid(prev, 2)[::-1]
    results = {}
    for mode in ("dense", "present", "lookup"):
        generator.set_fast_paths(mode)
        with torch.inference_mode():
            results[mode] = generator(label_stacks, prev_stacks, label_codes=codes)[-1].image
    assert torch.allclose(results["present"], results["dense"], atol=1e-4)
    assert torch.allclose(results["lookup"], results["dense"], atol=1e-4)


def test_lookup_table_follows_weight_updates() -> None:
    config = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=0, n_blocks_local=0, n_scales=1,
                             single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=0))
    scale = build_generator(config, seed=0).scales[0]
    stack, codes = street_frames()
    with torch.inference_mode():
        before = scale.label_stems(stack, codes)[0].clone()
    with torch.no_grad():
        scale.model_down_seg[1].weight.mul_(2)  # e.g. an optimizer step or load_state_dict
    with torch.inference_mode():
        after = scale.label_stems(stack, codes)[0]
        dense = scale.model_down_seg[1](scale.model_down_seg[0](stack))
    assert not torch.allclose(before, after)
    assert torch.allclose(after, dense, atol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(24, 40), (25, 39)])
def test_pooled_lookup_stem_equals_dense_conv_on_the_pooled_input(height: int, width: int) -> None:
    from renderer.model.stem import pooled_lookup_stem

    stack, codes = street_frames(height, width)
    pooled = build_pyramid(stack, 2)[1]
    convs = stem_convs(stack.shape[1], seed=3)
    padded = nn.functional.pad(pooled, (3, 3, 3, 3), mode="reflect")
    with torch.no_grad():
        dense = torch.cat([conv(padded) for conv in convs], 1)
        fast = pooled_lookup_stem(codes, lookup_table(convs, 35, True, 3), torch.cat([c.bias for c in convs]), 70)
    assert fast.shape == dense.shape
    assert torch.allclose(fast, dense, atol=1e-5)


def test_pooled_label_frame_equals_the_average_pooled_one_hot() -> None:
    from renderer.model.inputs import instance_edges, pooled_label_frame

    labels = torch.randint(0, 35, (2, 25, 38), generator=torch.Generator().manual_seed(0))
    instances = torch.randint(0, 3, (2, 25, 38), generator=torch.Generator().manual_seed(1))
    encoded = encode_label_frame(labels, instances)
    assert torch.equal(pooled_label_frame(labels, instance_edges(instances)[:, 0], 35), build_pyramid(encoded, 2)[1])


@pytest.mark.parametrize("use_instance", [True, False])
def test_present_channels_from_codes_match_the_stack(use_instance: bool) -> None:
    from renderer.model.stem import channels_from_codes, present_channels

    stack, codes = street_frames(use_instance=use_instance)
    assert torch.equal(channels_from_codes(codes, 35, use_instance), present_channels(stack))
    assert torch.equal(channels_from_codes(codes, 35, use_instance), present_channels(build_pyramid(stack, 3)[2]))
