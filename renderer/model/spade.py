"""SPADE: spatially adaptive denormalisation (Park et al., "Semantic Image Synthesis with
Spatially-Adaptive Normalization", CVPR 2019), as the image decoders of ``generator: spade``.

A plain normalisation layer followed by a learnt per-channel affine map gives every pixel of a
uniform label region the same activation after normalisation: the label information fed in at
the input is washed out. SPADE keeps the normalisation but drops its learnt affine parameters,
and instead scales and shifts every activation by a per-pixel ``gamma`` and ``beta`` predicted
from the label map itself, resized (nearest) to the layer's resolution:

    out = norm(x) · (1 + gamma(m)) + beta(m),   h = ReLU(shared(m)),  gamma, beta = conv(h)

with ``shared``, ``gamma`` and ``beta`` 3×3 convolutions (reflect-padded, as every conv of this
package). ``m`` is the current frame's one-hot labels plus its instance-edge channel.

Statistics. The parameter-free norm is ``FrameStatNorm2d(affine=False)``: in "frame" mode (what
training and inference both use, ``TrainableGenerator`` sets it) every frame is normalised with
its own per-channel mean and variance over H×W, never with running averages. Consecutive frames
of a video hold nearly the same classes in nearly the same places, so these statistics move
slowly from frame to frame; and because the look of a region is restored by its own label's
gamma and beta after normalisation, it does not hinge on the statistics of the frame as a whole.

The shared label conv of a layer reads one-hot labels only, so at inference it runs outside the
engines' graphs as an exact table lookup (``stem.lookup_stem``), like the label stems: the
engines' body receives its output, one tensor per decoder resolution holding the shared convs of
every SPADE layer at that resolution, and applies ReLU, gamma and beta itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from renderer.model.norm import FrameStatNorm2d, NormMode

LEAKY_SLOPE = 0.2  # SPADE's activation inside its residual blocks


def _reflect(features: Tensor) -> Tensor:
    return F.pad(features, (1, 1, 1, 1), mode="reflect")


class SPADE(nn.Module):
    """Parameter-free norm of ``channels`` features, modulated by labels of ``label_channels``
    through a ``hidden``-channel shared conv and two convs (gamma, beta)."""

    def __init__(self, channels: int, label_channels: int, hidden: int, norm_mode: NormMode = "frame") -> None:
        super().__init__()
        self.norm = FrameStatNorm2d(channels, norm_mode, affine=False)
        self.shared = nn.Conv2d(label_channels, hidden, kernel_size=3)
        self.gamma = nn.Conv2d(hidden, channels, kernel_size=3)
        self.beta = nn.Conv2d(hidden, channels, kernel_size=3)

    def forward(self, features: Tensor, shared: Tensor) -> Tensor:
        """(B, C, h, w) features and the shared conv's output before its ReLU (B, hidden, h, w)
        -> (B, C, h, w)."""
        padded = _reflect(F.relu(shared))
        # gamma and beta read the same input: one conv with both weights, the 1 of (1 + gamma)
        # folded into gamma's bias, and one fused multiply-add (two passes over the features fewer).
        both = F.conv2d(
            padded,
            torch.cat([self.gamma.weight, self.beta.weight]),
            torch.cat([self.gamma.bias + 1, self.beta.bias]),  # type: ignore[operator]
        )
        scale, beta = both.split(self.gamma.out_channels, dim=1)
        return torch.addcmul(beta, self.norm(features), scale)


class SPADEResBlock(nn.Module):
    """SPADE, LeakyReLU, 3×3 conv, twice; plus the identity, or, when the channels change, a
    learnt shortcut (SPADE then a 1×1 conv without bias)."""

    def __init__(
        self, in_channels: int, out_channels: int, label_channels: int, hidden: int, norm_mode: NormMode = "frame"
    ) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm_0 = SPADE(in_channels, label_channels, hidden, norm_mode)
        self.conv_0 = nn.Conv2d(in_channels, middle, kernel_size=3)
        self.norm_1 = SPADE(middle, label_channels, hidden, norm_mode)
        self.conv_1 = nn.Conv2d(middle, out_channels, kernel_size=3)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, label_channels, hidden, norm_mode)
            self.conv_s = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def spade_layers(self) -> list[SPADE]:
        """Its SPADE layers in the order ``forward`` takes their shared outputs."""
        layers = [self.norm_0, self.norm_1]
        return layers + [self.norm_s] if self.learned_shortcut else layers

    def forward(self, features: Tensor, shared: Sequence[Tensor]) -> Tensor:
        """(B, Cin, h, w) and one shared output per SPADE layer -> (B, Cout, h, w)."""
        # In place: the modulated features are fresh tensors nothing else reads.
        out = self.conv_0(_reflect(F.leaky_relu(self.norm_0(features, shared[0]), LEAKY_SLOPE, inplace=True)))
        out = self.conv_1(_reflect(F.leaky_relu(self.norm_1(out, shared[1]), LEAKY_SLOPE, inplace=True)))
        shortcut = self.conv_s(self.norm_s(features, shared[2])) if self.learned_shortcut else features
        return shortcut + out


class SPADEDecoder(nn.Module):
    """``n_blocks`` SPADE residual blocks at ``width`` channels (resolution 0), then ``n_up``
    times a nearest ×2 upsampling and a block halving the channels (resolution 1 … n_up), then a
    LeakyReLU: (B, width, h, w) -> (B, width / 2^n_up, h·2^n_up, w·2^n_up)."""

    def __init__(
        self,
        width: int,
        n_blocks: int,
        n_up: int,
        label_channels: int,
        hidden: int,
        norm_mode: NormMode = "frame",
        max_channels: int | None = None,
    ) -> None:
        super().__init__()

        def channels(level: int) -> int:
            value = width // 2**level
            return min(value, max_channels) if max_channels is not None else value

        blocks: list[nn.Module] = []
        levels: list[int] = []
        for _ in range(n_blocks):
            blocks.append(SPADEResBlock(channels(0), channels(0), label_channels, hidden, norm_mode))
            levels.append(0)
        for level in range(1, n_up + 1):
            blocks.append(SPADEResBlock(channels(level - 1), channels(level), label_channels, hidden, norm_mode))
            levels.append(level)
        self.blocks = nn.ModuleList(blocks)
        self.levels = levels
        self.n_up = n_up
        self.hidden = hidden
        self.out_channels = channels(n_up)

    @property
    def resolutions(self) -> list[int]:
        """Resolutions (0 = the input's, n_up = the output's) that hold SPADE layers, in order."""
        return sorted(set(self.levels))

    def factor(self, resolution: int) -> int:
        """How many times smaller than the output ``resolution`` is, per side."""
        return 2 ** (self.n_up - resolution)

    def shared_convs(self, resolution: int) -> list[nn.Conv2d]:
        """The shared label convs of every SPADE layer at ``resolution``, in forward order: their
        outputs, stacked, are that resolution's input to ``forward``."""
        return [
            layer.shared
            for block, level in zip(self.blocks, self.levels)
            if level == resolution
            for layer in block.spade_layers()
        ]

    def embed(self, labels: Tensor) -> list[Tensor]:
        """Dense shared convs on ``labels`` (B, label_channels, H, W) at the output resolution:
        one (B, layers·hidden, H/f, W/f) tensor per resolution of ``resolutions``, nearest-resized
        (every f-th row and column)."""
        outputs = []
        for resolution in self.resolutions:
            step = self.factor(resolution)
            convs = self.shared_convs(resolution)
            outputs.append(
                F.conv2d(
                    _reflect(labels[..., ::step, ::step]),
                    torch.cat([conv.weight for conv in convs]),
                    torch.cat([conv.bias for conv in convs]),  # type: ignore[misc]
                )
            )
        return outputs

    def forward(self, features: Tensor, shared: Sequence[Tensor]) -> Tensor:
        """(B, width, h, w) features and the stacked shared outputs of each resolution (as
        ``embed`` returns them) -> (B, out_channels, h·2^n_up, w·2^n_up)."""
        resolutions = self.resolutions
        if len(shared) != len(resolutions):
            raise ValueError(f"expected {len(resolutions)} label modulation inputs, got {len(shared)}")
        per_layer = {
            resolution: list(stacked.split(self.hidden, dim=1)) for resolution, stacked in zip(resolutions, shared)
        }
        level = 0
        for block, block_level in zip(self.blocks, self.levels):
            if block_level > level:
                features = F.interpolate(features, scale_factor=2.0, mode="nearest")
                level = block_level
            layers = len(block.spade_layers())
            taken, per_layer[block_level] = per_layer[block_level][:layers], per_layer[block_level][layers:]
            features = block(features, taken)
        for _ in range(level, self.n_up):  # no blocks at the finest resolutions
            features = F.interpolate(features, scale_factor=2.0, mode="nearest")
        return F.leaky_relu(features, LEAKY_SLOPE)
