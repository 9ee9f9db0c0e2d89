"""A compact encoder-decoder for Cityscapes' 19 train classes (RGB -> logits at 1/4, upsampled).

Encoder: a stride-2 stem and three stride-2 stages with residual blocks (the deepest one dilated, at
1/16), a global-pooling context branch, and a decoder that joins the 1/8 and 1/4 skips. BatchNorm
throughout: the model is used in eval mode outside training, so its statistics are fixed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from renderer.segmenter.classes import NUM_CLASSES

# ImageNet statistics: the input is normalised with them so the net trains from a sane scale.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SegmenterConfig:
    """Widths of the stem and the three stages, decoder width, and the working size (width, height)."""

    stem: int = 32
    widths: tuple[int, int, int] = (48, 96, 160)
    deep_blocks: int = 2
    decoder: int = 64
    num_classes: int = NUM_CLASSES
    input_width: int = 512
    input_height: int = 256

    def __post_init__(self) -> None:
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError(f"widths must be three positive channel counts, got {self.widths}")
        for name in ("stem", "deep_blocks", "decoder", "num_classes", "input_width", "input_height"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.input_width % 16 or self.input_height % 16:
            raise ValueError(f"input size must be a multiple of 16, got {self.input_width}x{self.input_height}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        values = asdict(self)
        values["widths"] = list(self.widths)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SegmenterConfig:
        """Inverse of to_dict; unknown fields raise ValueError naming them and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown segmenter config fields {unknown}; known: {sorted(known)}")
        values = dict(values)
        if "widths" in values:
            values["widths"] = tuple(int(v) for v in values["widths"])
        return cls(**values)


def _conv_bn(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):
    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class Segmenter(nn.Module):
    """(N, 3, H, W) float RGB in [0, 1] -> (N, classes, H, W) logits; H, W multiples of 16."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SegmenterConfig()
        w1, w2, w3 = config.widths
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Sequential(_conv_bn(3, config.stem // 2 or 1, 2), _conv_bn(config.stem // 2 or 1, config.stem))
        self.stage1 = nn.Sequential(_conv_bn(config.stem, w1, 2), _Residual(w1))  # 1/4
        self.stage2 = nn.Sequential(_conv_bn(w1, w2, 2), _Residual(w2))  # 1/8
        self.stage3 = nn.Sequential(  # 1/16, dilated so the deepest features see most of the frame
            _conv_bn(w2, w3, 2), *[_Residual(w3, dilation=2 ** (i % 3)) for i in range(config.deep_blocks)])
        self.context = nn.Sequential(nn.Conv2d(w3, w3, 1, bias=False), nn.BatchNorm2d(w3), nn.ReLU(inplace=True))
        self.up8 = _conv_bn(w3 + w2, w2)
        self.up4 = _conv_bn(w2 + w1, config.decoder)
        self.classifier = nn.Conv2d(config.decoder, config.num_classes, 1)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        height, width = rgb.shape[-2:]
        x = (rgb - self.mean) / self.std
        x4 = self.stage1(self.stem(x))
        x8 = self.stage2(x4)
        x16 = self.stage3(x8)
        # Global context: the pooled frame tells sky from road where local texture cannot.
        x16 = x16 + self.context(x16.mean(dim=(2, 3), keepdim=True))
        y = self.up8(torch.cat([F.interpolate(x16, size=x8.shape[-2:], mode="bilinear", align_corners=False), x8], 1))
        y = self.up4(torch.cat([F.interpolate(y, size=x4.shape[-2:], mode="bilinear", align_corners=False), x4], 1))
        return F.interpolate(self.classifier(y), size=(height, width), mode="bilinear", align_corners=False)


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
