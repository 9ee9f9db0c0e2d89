"""torch.compile (Inductor) of the body: fuses the element-wise work (norms, ReLUs, padding,
composition) around oneDNN convolutions on CPU, or Triton kernels on CUDA."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from renderer.engines.base import EngineUnavailable
from renderer.engines.torch_engine import TorchEngine

log = logging.getLogger(__name__)


def compiler_available(device: torch.device) -> tuple[bool, str]:
    """Inductor needs a C++ compiler on CPU (and Triton on CUDA)."""
    if device.type == "cpu":
        for compiler in ("g++", "c++", "clang++"):
            if shutil.which(compiler):
                return True, f"C++ compiler {compiler}"
        return False, "torch.compile on CPU needs a C++ compiler (g++ or clang++) on PATH"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False, "torch.compile on CUDA needs the triton package"
        return True, "triton"
    return False, f"no torch.compile backend for device type {device.type}"


class CompileEngine(TorchEngine):
    """The body compiled once per input shape with ``torch.compile(dynamic=False)``; precision and
    layout as TorchEngine's.

    ``mode`` is torch.compile's (None = default; "max-autotune" searches kernels, minutes on a
    CPU). ``freezing`` lets Inductor constant-fold the weights (pre-packed oneDNN weights on CPU).
    """

    name = "compile"

    def __init__(
        self,
        generator: nn.Module,
        device: torch.device | str = "cpu",
        size: tuple[int, int] | None = None,
        precision: str = "fp32",
        channels_last: bool | None = None,
        mode: str | None = None,
        freezing: bool = False,
    ) -> None:
        ok, why = compiler_available(torch.device(device))
        if not ok:
            raise EngineUnavailable(why)
        self.mode = mode
        self.freezing = freezing
        self._compiled: Any = None
        super().__init__(generator, device, size, precision=precision, channels_last=channels_last)

    def default_channels_last(self, generator: nn.Module) -> bool:
        # Inductor keeps its own layouts; channels_last inputs measured faster on CPU for both the
        # compact and the NVIDIA-size models, with frames as close to NVIDIA's as NCHW eager.
        return self.device.type == "cpu"

    def describe(self) -> dict[str, Any]:
        """Engine facts, with the compile options."""
        return {**super().describe(), "mode": self.mode or "default", "freezing": self.freezing}

    def build(self, flat: list[Tensor]) -> None:
        """Compile and run once (Inductor compiles lazily, on the first call)."""
        options = {"freezing": True} if self.freezing else None
        self._compiled = torch.compile(self.body, dynamic=False, mode=self.mode, options=options)
        self.run(flat)

    def forward(self, flat: list[Tensor]) -> Sequence[Tensor]:
        """The compiled body under no_grad."""
        with torch.no_grad():
            return self._compiled(*flat)
