"""Our modules against NVIDIA's own vid2vid code on the same weights (CPU, small sizes).

Needs NVIDIA/vid2vid checked out at external/vid2vid (gitignored; not shipped). NVIDIA's code
is run unchanged except for three shims that let it run on a CPU with today's PyTorch:
``.cuda()`` is the identity, ``torch.cuda.ByteTensor`` is a CPU tensor, and ``grid_sample``
defaults to ``align_corners=True`` (the behaviour of the PyTorch the models were trained with).
"""

from __future__ import annotations

import functools
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from renderer.model.composite import fg_mask
from renderer.model.config import GeneratorConfig, SingleGConfig
from renderer.model.generator import build_generator
from renderer.model.inputs import build_pyramid, encode_label_frame, instance_edges
from renderer.model.pix2pixhd import build_single_generator

VID2VID = Path(__file__).resolve().parents[2] / "external" / "vid2vid"
pytestmark = pytest.mark.skipif(
    not (VID2VID / "models" / "networks.py").is_file(),
    reason="needs NVIDIA/vid2vid checked out at external/vid2vid",
)


@pytest.fixture()
def nvidia(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(VID2VID))
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(models=None))
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
    monkeypatch.setattr(torch.cuda, "ByteTensor", lambda *size: torch.zeros(*size, dtype=torch.uint8), raising=False)
    monkeypatch.setattr(F, "grid_sample", functools.partial(F.grid_sample, align_corners=True))
    for name in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
        monkeypatch.delitem(sys.modules, name)
    from models import base_model, networks

    yield types.SimpleNamespace(networks=networks, base=base_model.BaseModel)
    for name in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
        sys.modules.pop(name, None)


def street_stack(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    frames, instances = [], []
    for t in range(3):
        labels = torch.full((1, height, width), 7, dtype=torch.long)
        labels[:, : height // 3] = 23
        labels[:, :, (2 + t) :: 7] = 17
        labels[:, height // 2 :, 6 + t : 20 + t] = 26
        inst = labels.clone()
        inst[:, height // 2 :, 6 + t : 12 + t] = 26001
        frames.append(encode_label_frame(labels, inst))
        instances.append(inst)
    return torch.cat(frames, 1), torch.stack(instances, 1)


@pytest.mark.parametrize("n_down", [2, 3])
def test_composite_scales_match_nvidia(nvidia, n_down: int) -> None:
    config = GeneratorConfig(ngf=16, n_downsampling=n_down, n_blocks=3, n_blocks_local=2, n_scales=2, single_g=None)
    ours = build_generator(config, seed=0)
    opt = types.SimpleNamespace(fp16=False)
    bn = nvidia.networks.get_norm_layer("batch")
    theirs = [
        nvidia.networks.CompositeGenerator(opt, 108, 3, 6, 16, n_down, 3, True, False, bn),
        nvidia.networks.CompositeLocalGenerator(opt, 108, 3, 6, 8, n_down, 2, True, False, bn, scale=1),
    ]
    for module, ref in zip(ours.scales, theirs):
        ref.load_state_dict(module.state_dict())  # strict: same names and shapes
        ref.train()  # NVIDIA's test path never calls eval()
    stack, _ = street_stack(32, 48)
    label_stacks = build_pyramid(stack, 2)[::-1]
    prev = torch.rand(1, 6, 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    prev_stacks = build_pyramid(prev, 2)[::-1]
    with torch.no_grad():
        mine = ours(label_stacks, prev_stacks)
        coarse = [None, None, None]
        for scale, ref in enumerate(theirs):
            mask = fg_mask(label_stacks[scale], config)
            img, flow, weight, raw, img_feat, flow_feat, fg_feat = ref(
                label_stacks[scale], prev_stacks[scale], mask, *coarse, False
            )
            coarse = [img_feat, flow_feat, fg_feat]
            # 1e-3 in [-1, 1] is 0.13 of a uint8 step; the warp's sampling rounding differs a little.
            assert torch.allclose(mine[scale].image, img, atol=1e-3), scale
            assert torch.allclose(mine[scale].raw, raw, atol=1e-4)
            assert torch.allclose(mine[scale].flow, flow, atol=2e-3)
            assert torch.allclose(mine[scale].weight, weight, atol=2e-4)


@pytest.mark.parametrize("single", [SingleGConfig(kind="global", ngf=8, n_downsampling=3, n_blocks=2),
                                    SingleGConfig(kind="local", ngf=4, n_downsampling=2, n_blocks=2, n_blocks_local=1)])
def test_single_image_generators_match_nvidia(nvidia, single: SingleGConfig) -> None:
    torch.manual_seed(0)
    ours = build_single_generator(single)
    norm = nvidia.networks.get_norm_layer("instance")
    if single.kind == "global":
        ref = nvidia.networks.GlobalGenerator(35, 3, single.ngf, single.n_downsampling, single.n_blocks, norm)
    else:
        ref = nvidia.networks.LocalEnhancer(35, 3, single.ngf, single.n_downsampling, single.n_blocks, 1,
                                            single.n_blocks_local, norm)
    ref.load_state_dict(ours.state_dict())
    ref.train()
    stack, _ = street_stack(32, 48)
    with torch.no_grad():
        assert torch.allclose(ours(stack[:, :35]), ref(stack[:, :35]), atol=1e-5)


def test_edges_and_pyramids_match_nvidia(nvidia) -> None:
    stack, instances = street_stack(32, 48)
    model = nvidia.base()
    model.n_scales = 3
    theirs = model.get_edges(instances.unsqueeze(2))  # (1, 3, 1, H, W)
    ours = torch.stack([instance_edges(instances[:, t]) for t in range(3)], 1)
    assert torch.equal(ours, theirs)
    frames = stack.view(1, 3, 36, 32, 48)
    their_pyramid = model.build_pyr(frames)
    our_pyramid = build_pyramid(stack, 3)
    for level in range(3):
        assert torch.allclose(our_pyramid[level], their_pyramid[level].reshape(our_pyramid[level].shape), atol=1e-6)


def run_nvidia_sequence(nvidia, generator, frames: list[torch.Tensor], first: list[torch.Tensor]) -> list[torch.Tensor]:
    """NVIDIA's test-time loop (generate_frame_infer) over NVIDIA's modules, frames 2.. ."""
    config = generator.config
    opt = types.SimpleNamespace(fp16=False)
    bn = nvidia.networks.get_norm_layer("batch")
    nets = [nvidia.networks.CompositeGenerator(opt, 108, 3, 6, config.ngf, config.n_downsampling,
                                               config.n_blocks, True, False, bn)]
    nets += [nvidia.networks.CompositeLocalGenerator(opt, 108, 3, 6, config.scale_ngf(s), config.n_downsampling,
                                                     config.n_blocks_local, True, False, bn, scale=s)
             for s in range(1, config.n_scales)]
    for net, module in zip(nets, generator.scales):
        net.load_state_dict(module.state_dict())
        net.train()
    n = config.n_scales
    history = [list(level) for level in zip(*[build_pyramid(image, n) for image in first])]  # per level
    outputs = []
    with torch.no_grad():
        for t in range(2, len(frames)):
            pyramid = build_pyramid(torch.cat(frames[t - 2 : t + 1], 1), n)
            features = [None, None, None]
            for s, net in enumerate(nets):
                level = n - 1 - s
                image, _, _, _, *features = net(pyramid[level], torch.cat(history[level], 1),
                                                fg_mask(pyramid[level], config), *features, False)
                history[level] = [history[level][1], image]
            outputs.append(image)
    return outputs


def test_sequence_matches_nvidia_bit_for_bit_on_nvidias_op_path(nvidia) -> None:
    """With dense stems and grid_sample (NVIDIA's ops), our renderer reproduces NVIDIA's test loop
    exactly, frame after frame; the first two frames come from the single-image generator."""
    from renderer.sequential import SequentialRenderer, to_uint8_rgb

    config = GeneratorConfig(ngf=16, n_downsampling=2, n_blocks=3, n_blocks_local=1, n_scales=2,
                             single_g=SingleGConfig(ngf=8, n_downsampling=2, n_blocks=1))
    generator = build_generator(config, seed=5).set_fast_paths("dense", "grid_sample")
    height, width = 32, 64
    label_maps, frames = [], []
    for t in range(6):
        labels = torch.full((1, height, width), 7, dtype=torch.long)
        labels[:, :10] = 23
        labels[:, 16:, 5 + 2 * t : 25 + 2 * t] = 26
        labels[:, 8:20, 40 + t : 44 + t] = 11
        label_maps.append(labels)
        frames.append(encode_label_frame(labels, None))
    renderer = SequentialRenderer(generator)
    ours = [renderer.step(labels[0].numpy().astype("uint8")) for labels in label_maps]
    with torch.no_grad():
        first = [generator.first_frame(frame[:, :35]) for frame in frames[:2]]
    theirs = [to_uint8_rgb(image) for image in first]
    theirs += [to_uint8_rgb(image) for image in run_nvidia_sequence(nvidia, generator, frames, first)]
    for index, (a, b) in enumerate(zip(ours, theirs)):
        assert (a == b).all(), f"frame {index}"


def test_one_step_with_fast_paths_is_within_a_uint8_step_of_nvidia(nvidia) -> None:
    """The exact fast paths (lookup stems, present channels) change only float rounding."""
    config = GeneratorConfig(ngf=16, n_downsampling=2, n_blocks=3, n_blocks_local=1, n_scales=2, single_g=None)
    generator = build_generator(config, seed=6)
    stack, _ = street_stack(32, 48)
    prev = [torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in range(2)]
    from renderer.model.stem import frame_codes

    codes = torch.stack([frame_codes(stack[:, 36 * t : 36 * t + 35].argmax(1), stack[:, 36 * t + 35]) for t in range(3)], 1)
    with torch.no_grad():
        mine = generator(build_pyramid(stack, 2)[::-1], build_pyramid(torch.cat(prev, 1), 2)[::-1],
                         label_codes=codes)[-1].image
    theirs = run_nvidia_sequence(nvidia, generator, [stack[:, :36], stack[:, 36:72], stack[:, 72:]], prev)[-1]
    assert (mine - theirs).abs().max() < 1e-3
