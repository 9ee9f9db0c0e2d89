"""Eager PyTorch: fp32 (channels_last for compact models on CPU), or fp16/bf16 autocast where the
device has it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from renderer.engines.base import Engine
from renderer.engines.hardware import DTYPES, resolve_precision


# Measured on a 2-core AVX2 CPU (docs/performance.md): channels_last makes the compact models
# ~25 % faster (lite: 254 vs 321 ms/frame), but for NVIDIA-size models it gave no speed-up and
# oneDNN's channels_last convolutions moved frames ~5x further from NVIDIA's (and from a float64
# reference) than NCHW. So "auto" uses it only for compact generators.
CHANNELS_LAST_MAX_NGF = 32


def default_channels_last(generator: nn.Module, device: torch.device) -> bool:
    """channels_last where it measured faster: on CPU, for generators with ngf <= 32."""
    return device.type == "cpu" and int(generator.config.ngf) <= CHANNELS_LAST_MAX_NGF


def to_channels_last(tensors: Sequence[Tensor]) -> list[Tensor]:
    """4-D tensors in channels_last layout (same values), others unchanged."""
    return [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in tensors]


class TorchEngine(Engine):
    """The body in eager PyTorch.

    ``channels_last`` (None = ``default_channels_last``: CPU and ngf <= 32) keeps activations
    NHWC, which oneDNN convolves faster for compact generators' small-channel layers; it
    converts the generator's conv weights in place (values unchanged; ``save_checkpoint`` stores
    them contiguous). ``precision`` "fp16"/"bf16" runs under autocast (norms stay fp32) and is refused
    where the device has no native support; "auto" picks the fastest native one.
    """

    name = "torch"

    def __init__(
        self,
        generator: nn.Module,
        device: torch.device | str = "cpu",
        size: tuple[int, int] | None = None,
        precision: str = "fp32",
        channels_last: bool | None = None,
    ) -> None:
        super().__init__(generator, device, size)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = self.default_channels_last(generator) if channels_last is None else channels_last
        if self.channels_last:
            generator.to(memory_format=torch.channels_last)
        if self.precision != "fp32" and self.name == "torch":
            self.name = f"torch-{self.precision}"

    def default_channels_last(self, generator: nn.Module) -> bool:
        """The layout "auto" picks (see `default_channels_last`)."""
        return default_channels_last(generator, self.device)

    def describe(self) -> dict[str, Any]:
        """Engine facts, with the memory layout."""
        return {**super().describe(), "channels_last": self.channels_last}

    def forward(self, flat: list[Tensor]) -> Sequence[Tensor]:
        """The body itself, under inference_mode."""
        with torch.inference_mode():
            return self.body(*flat)

    def run(self, flat: list[Tensor]) -> Sequence[Tensor]:
        """The body in the engine's layout and precision (autocast for reduced precision)."""
        if self.channels_last:
            flat = to_channels_last(flat)
        if self.precision == "fp32":
            return self.forward(flat)
        with torch.autocast(self.device.type, dtype=DTYPES[self.precision]):
            return self.forward(flat)
