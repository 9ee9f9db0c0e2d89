"""generator: spade: SPADE layers and residual blocks, label-dependent modulation, the config
field, equal multiply-adds of lite_spade and lite, checkpoints, the single-image generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from renderer.bench import frame_macs, synthetic_street
from renderer.checkpoint import load_checkpoint, save_checkpoint
from renderer.model.config import ConfigError, GeneratorConfig, SingleGConfig, preset
from renderer.model.generator import build_generator
from renderer.model.inputs import encode_label_frame
from renderer.model.norm import FrameStatNorm2d
from renderer.model.pix2pixhd import SpadeGlobalGenerator
from renderer.model.spade import SPADE, SPADEDecoder, SPADEResBlock
from renderer.model.stem import frame_codes
from renderer.sequential import SequentialRenderer

LABEL_CHANNELS = 36  # 35 Cityscapes labelIds + the instance-edge channel
ROAD, CAR = 7, 26
TINY_SPADE = GeneratorConfig(
    ngf=8, n_downsampling=2, n_blocks=2, n_blocks_local=1, n_scales=2, use_fg=False,
    label_pyramid="nearest", generator="spade", spade_hidden=4,
    single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1, generator="spade", spade_hidden=4),
)


def labels_with_car(height: int, width: int, box: tuple[int, int, int, int] | None) -> torch.Tensor:
    """(1, H, W) int64 all road, with car labels inside ``box`` (top, bottom, left, right)."""
    labels = torch.full((1, height, width), ROAD, dtype=torch.long)
    if box is not None:
        top, bottom, left, right = box
        labels[:, top:bottom, left:right] = CAR
    return labels


def test_spade_residual_blocks_keep_or_change_channels_with_a_learned_shortcut() -> None:
    labels = encode_label_frame(labels_with_car(16, 24, (4, 10, 6, 14)), None)
    same = SPADEResBlock(8, 8, LABEL_CHANNELS, hidden=4)
    halving = SPADEResBlock(8, 4, LABEL_CHANNELS, hidden=4)
    assert not same.learned_shortcut and len(same.spade_layers()) == 2
    assert halving.learned_shortcut and len(halving.spade_layers()) == 3
    assert halving.conv_s.kernel_size == (1, 1) and halving.conv_s.bias is None
    features = torch.randn(1, 8, 16, 24)
    shared = [layer.shared(torch.nn.functional.pad(labels, (1,) * 4, mode="reflect")) for layer in halving.spade_layers()]
    assert tuple(shared[0].shape) == (1, 4, 16, 24)
    assert tuple(same(features, shared[:2]).shape) == (1, 8, 16, 24)
    assert tuple(halving(features, shared).shape) == (1, 4, 16, 24)


def test_spade_decoder_upsamples_to_each_resolution_with_labels_resized_to_it() -> None:
    decoder = SPADEDecoder(16, n_blocks=2, n_up=2, label_channels=LABEL_CHANNELS, hidden=3)
    labels = encode_label_frame(labels_with_car(32, 48, (8, 20, 10, 30)), None)
    shared = decoder.embed(labels)
    assert decoder.resolutions == [0, 1, 2]
    # Two blocks of 2 layers at 1/4, then blocks of 3 (learned shortcut) at 1/2 and full size.
    assert [tuple(t.shape) for t in shared] == [(1, 12, 8, 12), (1, 9, 16, 24), (1, 9, 32, 48)]
    out = decoder(torch.randn(1, 16, 8, 12), shared)
    assert tuple(out.shape) == (1, 4, 32, 48) and decoder.out_channels == 4
    with pytest.raises(ValueError, match="expected 3 label modulation inputs"):
        decoder(torch.randn(1, 16, 8, 12), shared[:2])


def test_spade_norms_have_no_affine_parameters_and_use_each_frames_statistics() -> None:
    layer = SPADE(6, LABEL_CHANNELS, hidden=4)
    assert isinstance(layer.norm, FrameStatNorm2d) and layer.norm.mode == "frame"
    assert layer.norm.weight is None and layer.norm.bias is None
    assert [name for name, _ in layer.norm.named_parameters()] == []
    assert sorted(name.split(".")[0] for name, _ in layer.named_parameters()) == ["beta"] * 2 + ["gamma"] * 2 + ["shared"] * 2
    # With zero gamma and beta convs the layer is the frame's own instance normalisation.
    torch.nn.init.zeros_(layer.gamma.weight), torch.nn.init.zeros_(layer.gamma.bias)
    torch.nn.init.zeros_(layer.beta.weight), torch.nn.init.zeros_(layer.beta.bias)
    features = torch.randn(1, 6, 8, 8) * 5 + 3
    out = layer.eval()(features, torch.randn(1, 4, 8, 8))
    assert torch.allclose(out, torch.nn.functional.instance_norm(features, eps=layer.norm.eps), atol=1e-5)
    # In a SPADE generator every norm of the image decoders is parameter-free.
    generator = build_generator(TINY_SPADE, seed=0)
    for scale in generator.scales:
        norms = [m for m in scale.spade_img.modules() if isinstance(m, FrameStatNorm2d)]
        assert norms and all(not norm.affine for norm in norms)


@pytest.mark.parametrize("use_codes", [True, False], ids=["lookup", "dense"])
def test_changing_a_label_region_changes_the_first_spade_layer_only_near_it(use_codes: bool) -> None:
    """The first SPADE layer of the coarsest decoder sees the labels through two 3x3 convs
    (shared, then gamma/beta): a changed region moves its output within 2 pixels of it, at
    that layer's resolution, and nowhere else."""
    generator = build_generator(TINY_SPADE, seed=3).eval()
    scale = generator.scales[0]
    decoder = scale.spade_img
    first = decoder.blocks[0].norm_0
    height, width = 64, 128  # full size; the coarsest scale works at 32x64, its first layer at 8x16
    features = torch.randn(1, first.norm.num_features, 8, 16, generator=torch.Generator().manual_seed(0))

    def first_layer_inputs(box) -> tuple[torch.Tensor, torch.Tensor]:
        labels = labels_with_car(height, width, box)
        encoded = encode_label_frame(labels, None)
        stack = encoded[..., ::2, ::2].repeat(1, TINY_SPADE.n_frames, 1, 1)  # the coarse scale's nearest level
        codes = frame_codes(labels, encoded[:, TINY_SPADE.label_nc]).unsqueeze(1).repeat(1, TINY_SPADE.n_frames, 1, 1)
        with torch.no_grad():
            shared = scale.modulation_stems(None if use_codes else stack, codes if use_codes else None, level=1)
            return first(features, shared[0][:, : decoder.hidden]), codes[0, -1, ::8, ::8]

    before, codes_before = first_layer_inputs(None)
    after, codes_after = first_layer_inputs((24, 40, 48, 80))
    # What the layer sees of the change: labels and edges at its 1/8 resolution.
    region = (codes_before != codes_after).float()[None, None]
    near = torch.nn.functional.max_pool2d(region, 5, stride=1, padding=2)[0, 0] > 0  # radius 2: two 3x3 convs
    difference = (after - before).abs().amax(dim=1)[0]
    assert region.sum() >= 8 and (difference[region[0, 0] > 0] > 1e-3).all()
    # Elsewhere at most float rounding (the lookup's sums are ordered by the tuples present).
    assert float(difference[~near].max()) < 1e-6
    assert (~near).sum() > near.sum()


def test_lookup_modulation_equals_the_dense_label_convs() -> None:
    generator = build_generator(TINY_SPADE, seed=1).eval()
    labels, instances = synthetic_street(64, 32, 1, 5)[0]
    ids = torch.from_numpy(labels.astype(np.int64))[None]
    encoded = encode_label_frame(ids, torch.from_numpy(instances.astype(np.int64))[None])
    codes = frame_codes(ids, encoded[:, TINY_SPADE.label_nc]).unsqueeze(1).repeat(1, 3, 1, 1)
    stacks = [encoded[..., ::2, ::2].repeat(1, 3, 1, 1), encoded.repeat(1, 3, 1, 1)]
    with torch.no_grad():
        fast = generator.modulations([None, None], codes)
        dense = generator.modulations(stacks, None)
    assert [len(m) for m in fast] == [3, 2]
    for fast_scale, dense_scale in zip(fast, dense):
        for a, b in zip(fast_scale, dense_scale):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


def test_unknown_generator_names_are_rejected_in_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        GeneratorConfig.from_dict({"generator": "stylegan"})
    message = str(error.value)
    assert "\n" not in message and "'generator'" in message and "'nvidia'" in message and "'spade'" in message
    with pytest.raises(ConfigError, match="single_g.generator"):
        GeneratorConfig.from_dict({"single_g": {"generator": "pix2pix"}})
    with pytest.raises(ConfigError, match="label_pyramid.*'nearest' with generator 'spade'"):
        GeneratorConfig.from_dict({"generator": "spade"})
    with pytest.raises(ConfigError, match="kind 'global'"):
        SingleGConfig(kind="local", generator="spade").validate()
    # NVIDIA's design stays the default: a config.json without the field loads as before.
    assert GeneratorConfig.from_dict({}).generator == "nvidia"
    assert build_generator(GeneratorConfig(n_scales=1, ngf=8, single_g=None)).scales[0].spade_img is None


def test_lite_spade_costs_the_multiply_adds_of_lite_at_512x256() -> None:
    frames = synthetic_street(512, 256, 3, 0)
    lite = build_generator(preset("lite").replace(single_g=None), seed=0).eval()
    spade = build_generator(preset("lite", "spade").replace(single_g=None), seed=0).eval()
    assert spade.config == preset("lite_spade").replace(single_g=None) and spade.config.generator == "spade"
    lite_gmac, _ = frame_macs(lite, (512, 256), frames)
    spade_gmac, _ = frame_macs(spade, (512, 256), frames)
    assert abs(spade_gmac / lite_gmac - 1) <= 0.05, (spade_gmac, lite_gmac)
    # Other presets take the design with their own widths.
    assert preset("nvidia_1024_g1", "spade").generator == "spade"
    assert preset("nvidia_1024_g1", "spade").label_pyramid == "nearest"
    assert preset("lite_spade", "nvidia") == preset("lite")


def test_a_spade_checkpoint_saves_loads_strictly_and_renders_the_same(tmp_path) -> None:
    generator = build_generator(TINY_SPADE, seed=2).eval()
    assert isinstance(generator.single_g, SpadeGlobalGenerator)
    folder = save_checkpoint(generator, tmp_path / "spade")
    loaded = load_checkpoint(folder).eval()
    assert loaded.config == TINY_SPADE
    frames = synthetic_street(64, 32, 5, 1)
    first = SequentialRenderer(generator, "cpu", (64, 32), start="single_g")
    second = SequentialRenderer(loaded, "cpu", (64, 32), start="single_g")
    for labels, instances in frames:
        a, b = first.step(labels, instances), second.step(labels, instances)
        assert a.shape == (32, 64, 3) and np.array_equal(a, b)
    # A frame's look follows its labels: the same history with other labels renders otherwise.
    assert not np.array_equal(first.step(*frames[0]), second.step(np.full_like(frames[0][0], CAR), frames[0][1]))


def test_training_reaches_every_spade_layer_through_the_dense_label_convs() -> None:
    """With autograd on (training) the label convs run densely inside the graph: every SPADE
    layer's shared, gamma and beta convs, at every resolution of every scale and in the
    single-image generator, get a gradient."""
    generator = build_generator(TINY_SPADE, seed=4).train()
    labels, instances = synthetic_street(64, 32, 1, 2)[0]
    ids = torch.from_numpy(labels.astype(np.int64))[None]
    encoded = encode_label_frame(ids, torch.from_numpy(instances.astype(np.int64))[None])
    stacks = [encoded[..., ::2, ::2].repeat(1, 3, 1, 1), encoded.repeat(1, 3, 1, 1)]
    prevs = [torch.zeros(1, 6, 16, 32), torch.zeros(1, 6, 32, 64)]
    outputs = generator(stacks, prevs)
    (outputs[-1].image.square().mean() + generator.first_frame(encoded[:, :35]).square().mean()).backward()
    layers = [m for m in generator.modules() if isinstance(m, SPADE)]
    # coarse: 1 block (2 layers) + 2 up blocks (3 each); fine: 1 + 1 up; single-image: 1 + 2 up
    assert len(layers) == (2 + 2 * 3) + (2 + 3) + (2 + 2 * 3)
    for layer in layers:
        for conv in (layer.shared, layer.gamma, layer.beta):
            assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
