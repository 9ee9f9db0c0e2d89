"""Building blocks shared by the vid2vid and pix2pixHD generators (layer order = NVIDIA's)."""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

NormFactory = Callable[[int], nn.Module]


class ResnetBlock(nn.Module):
    """Reflect-pad, 3×3 conv, norm, ReLU, reflect-pad, 3×3 conv, norm; plus the identity.

    Parameter names follow NVIDIA's ``ResnetBlock``: ``conv_block.{1,2,5,6}.*``.
    """

    def __init__(self, channels: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm(channels),
        )

    def forward(self, features: Tensor) -> Tensor:
        return features + self.conv_block(features)


def stem(
    in_channels: int, out_channels: int, norm: NormFactory, kernel: int = 7
) -> list[nn.Module]:
    """k×k (NVIDIA: 7×7) reflect-padded conv, norm, ReLU: the first layer of every encoder
    (4 modules)."""
    return [
        nn.ReflectionPad2d(kernel // 2),
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel),
        norm(out_channels),
        nn.ReLU(inplace=True),
    ]


def downsample(in_channels: int, out_channels: int, norm: NormFactory) -> list[nn.Module]:
    """Stride-2 3×3 conv, norm, ReLU (3 modules)."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1),
        norm(out_channels),
        nn.ReLU(inplace=True),
    ]


def upsample(in_channels: int, out_channels: int, norm: NormFactory) -> list[nn.Module]:
    """Stride-2 3×3 transposed conv (doubles H and W), norm, ReLU (3 modules)."""
    return [
        nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size=3, stride=2, padding=1, output_padding=1
        ),
        norm(out_channels),
        nn.ReLU(inplace=True),
    ]


def head(
    in_channels: int, out_channels: int, activation: nn.Module | None, kernel: int = 7
) -> list[nn.Module]:
    """k×k (NVIDIA: 7×7) reflect-padded output conv with an optional activation (Tanh for
    images, Sigmoid for weights, none for flow)."""
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(kernel // 2),
        nn.Conv2d(in_channels, out_channels, kernel),
    ]
    if activation is not None:
        layers.append(activation)
    return layers
