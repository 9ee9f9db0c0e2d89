"""Discriminators: shapes of the patch maps and features, scales and strides, one update step."""

from __future__ import annotations

import pytest
import torch

from renderer.training.discriminators import MultiScaleDiscriminator, PatchDiscriminator, TemporalDiscriminators
from renderer.training.losses import GANLoss


def test_patch_discriminator_returns_every_layer_and_a_patch_map() -> None:
    disc = PatchDiscriminator(in_channels=39, base_channels=8, n_layers=3)
    activations = disc(torch.randn(2, 39, 64, 128))
    assert len(activations) == 5
    assert activations[-1].shape[:2] == (2, 1)
    # Three stride-2 layers: the patch map is about 1/8 of the input.
    assert 6 <= activations[-1].shape[2] <= 11 and 14 <= activations[-1].shape[3] <= 19


def test_multiscale_discriminator_scales_halve() -> None:
    disc = MultiScaleDiscriminator(in_channels=6, base_channels=8, n_layers=2, num_scales=3)
    outputs = disc(torch.randn(1, 6, 64, 64))
    assert len(outputs) == 3
    widths = [scale[-1].shape[-1] for scale in outputs]
    assert widths[0] > widths[1] > widths[2]
    with pytest.raises(ValueError, match="num_scales"):
        MultiScaleDiscriminator(6, num_scales=0)


def test_temporal_discriminators_take_frames_and_flows_at_strides() -> None:
    temporal = TemporalDiscriminators(n_frames=3, num_strides=3, base_channels=8, n_layers=2, num_scales=1)
    assert [temporal.stride(i) for i in range(3)] == [1, 3, 9]
    frames = torch.randn(2, 3, 3, 32, 32)
    flows = torch.randn(2, 2, 2, 32, 32)
    outputs = temporal([(frames, flows), None, (frames, flows)])
    assert outputs[1] is None and outputs[0] is not None and outputs[2] is not None
    assert outputs[0][0][-1].shape[:2] == (2, 1)
    # 3 RGB frames + 2 flows = 13 input channels.
    assert temporal.discriminators[0].discriminators[0].layers[0][0].in_channels == 13
    with pytest.raises(ValueError, match="n_frames"):
        TemporalDiscriminators(n_frames=1)


def test_one_discriminator_step_separates_real_from_fake() -> None:
    torch.manual_seed(0)
    disc = MultiScaleDiscriminator(in_channels=3, base_channels=8, n_layers=2, num_scales=2)
    optimizer = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.999))
    gan = GANLoss("lsgan")
    real = torch.ones(4, 3, 32, 32) * 0.8
    fake = -torch.ones(4, 3, 32, 32) * 0.8

    def loss() -> torch.Tensor:
        return 0.5 * (gan(disc(real), True, True) + gan(disc(fake), False, True))

    first = loss()
    for _ in range(5):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert loss().item() < first.item()
