"""Normalisation layers with an explicit choice between per-frame and batch statistics.

NVIDIA's vid2vid test code never switches its BatchNorm layers to eval mode and renders one frame
at a time, so at inference every layer normalises with the statistics of the current frame. We
reproduce that as a mode of its own instead of leaving modules in training mode (which would also
keep updating running statistics).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

NormMode = Literal["frame", "batch"]


class FrameStatNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with the same parameters and buffers, and an explicit statistics mode.

    - ``"frame"``: always normalise each sample with its own per-channel mean and (biased)
      variance over H×W, then apply BN's affine weight and bias. Running statistics are neither
      used nor updated. For a batch of one this is exactly BatchNorm in training mode.
    - ``"batch"``: ordinary ``nn.BatchNorm2d`` behaviour (batch statistics and running-statistics
      updates in ``train()``, running statistics in ``eval()``); used for training.

    ``affine=False``: no weight and bias at all (SPADE's parameter-free normalisation, whose
    scale and bias come from the labels instead; ``renderer.model.spade``).
    """

    def __init__(self, num_features: int, mode: NormMode = "frame", affine: bool = True) -> None:
        super().__init__(num_features, affine=affine)
        self.mode: NormMode = mode

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.mode == "frame":
            if features.shape[0] == 1:
                # Exactly NVIDIA's op (BatchNorm statistics of a batch of one), without the
                # running-statistics update and cheaper than instance_norm's per-sample repeat.
                return F.batch_norm(features, None, None, self.weight, self.bias, True, 0.0, self.eps)
            return F.instance_norm(features, weight=self.weight, bias=self.bias, eps=self.eps)
        return super().forward(features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode}"


class InstanceNormNoAffine(nn.InstanceNorm2d):
    """pix2pixHD's instance norm (no affine) as vid2vid builds it for the single-image generator.

    vid2vid constructs it with ``track_running_stats=True`` so that the released
    ``label2city_single`` files, which carry ``running_mean``/``running_var`` buffers, load
    strictly; NVIDIA never calls ``eval()``, so those buffers are never used. We keep the buffers
    for key compatibility and always normalise with the current input's own statistics.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False, track_running_stats=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(features, eps=self.eps)


def set_norm_mode(module: nn.Module, mode: NormMode) -> nn.Module:
    """Set every FrameStatNorm2d inside ``module`` to ``mode`` ("frame" or "batch"); returns it."""
    if mode not in ("frame", "batch"):
        raise ValueError(f"norm mode must be 'frame' or 'batch', got {mode!r}")
    for layer in module.modules():
        if isinstance(layer, FrameStatNorm2d):
            layer.mode = mode
    return module
