"""Discriminators: a multi-scale PatchGAN on (labels, image) and temporal ones on frame triplets.

Each discriminator returns, per image scale, the list of its layers' activations; the last entry
is the patch map of real/fake scores. Feature matching compares the other entries.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchDiscriminator(nn.Module):
    """pix2pixHD's N-layer PatchGAN: 4x4 convolutions, instance norm, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, base_channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True))]
        channels = base_channels
        for index in range(1, n_layers + 1):
            previous, channels = channels, min(channels * 2, 512)
            stride = 2 if index < n_layers else 1
            layers.append(nn.Sequential(
                nn.Conv2d(previous, channels, 4, stride=stride, padding=2),
                nn.InstanceNorm2d(channels), nn.LeakyReLU(0.2, True)))
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=2))
        self.layers = nn.ModuleList(layers)

    def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W) -> activations of every layer, the patch scores (B, 1, h, w) last."""
        activations = []
        for layer in self.layers:
            inputs = layer(inputs)
            activations.append(inputs)
        return activations


class MultiScaleDiscriminator(nn.Module):
    """`num_scales` PatchGANs on the input downsampled by 1, 2, 4, ..."""

    def __init__(self, in_channels: int, base_channels: int = 64, n_layers: int = 3, num_scales: int = 2) -> None:
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}")
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, base_channels, n_layers) for _ in range(num_scales))

    def forward(self, inputs: torch.Tensor) -> list[list[torch.Tensor]]:
        """(B, C, H, W) -> per scale (finest first), the layer activations."""
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            if index > 0:
                inputs = F.avg_pool2d(inputs, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(inputs))
        return outputs


class TemporalDiscriminators(nn.Module):
    """One multi-scale discriminator per frame stride (1, n, n^2, ...) on n frames + n-1 flows.

    The input of stride s is frames t-(n-1)s ... t and the ground-truth flows between them.
    """

    def __init__(self, n_frames: int = 3, num_strides: int = 2, base_channels: int = 64, n_layers: int = 3,
                 num_scales: int = 2) -> None:
        super().__init__()
        if n_frames < 2:
            raise ValueError(f"temporal discriminators need n_frames >= 2, got {n_frames}")
        self.n_frames = n_frames
        in_channels = 3 * n_frames + 2 * (n_frames - 1)
        self.discriminators = nn.ModuleList(
            MultiScaleDiscriminator(in_channels, base_channels, n_layers, num_scales) for _ in range(num_strides))

    def stride(self, index: int) -> int:
        """The frame stride of discriminator `index`: n_frames ** index."""
        return self.n_frames ** index

    def score(self, index: int, frames: torch.Tensor, flows: torch.Tensor) -> list[list[torch.Tensor]]:
        """Discriminator `index` on (B, n, 3, H, W) frames and (B, n-1, 2, H, W) flows (pixels / 20)."""
        batch, _, _, height, width = frames.shape
        stacked = torch.cat([frames.reshape(batch, -1, height, width), flows.reshape(batch, -1, height, width)], 1)
        return self.discriminators[index](stacked)

    def forward(self, inputs: list[tuple[torch.Tensor, torch.Tensor] | None]) -> list[list[list[torch.Tensor]] | None]:
        """Every stride in one call (one forward per backward under DDP); None where a stride has no input."""
        return [None if pair is None else self.score(index, *pair) for index, pair in enumerate(inputs)]
