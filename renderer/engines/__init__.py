"""Engines: one interface (``Engine``) that runs one generator step, several back ends.

==============  ================================================================================
``torch``       eager PyTorch fp32, channels_last on CPU
``torch-fp16``  eager PyTorch under fp16 autocast — only where the device has native fp16
``torch-bf16``  eager PyTorch under bf16 autocast — only where the device has native bf16
``compile``     ``torch.compile`` (Inductor) of the same body
``onnx``        ONNX export (opset 18, GridSample warp) run by ONNX Runtime
``openvino``    the same ONNX export compiled by OpenVINO for the CPU — needs ``openvino``
``tensorrt``    TensorRT engine built from that ONNX — needs a CUDA GPU and ``tensorrt``
``auto``        ``openvino`` on a CPU where it is installed (else ``torch``), ``torch`` on a GPU
==============  ================================================================================

``build_engine(name, generator, device=..., size=...)`` returns an engine or raises
``EngineUnavailable`` saying what it needs; ``engine_status(name, device)`` says so without
building anything.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from renderer.engines.base import BodyStep, Engine, EngineUnavailable, example_stacks
from renderer.engine_names import AUTO, ENGINE_CHOICES, ENGINE_NAMES
from renderer.engines.hardware import precision_support


__all__ = [
    "AUTO",
    "ENGINE_CHOICES",
    "ENGINE_NAMES",
    "BodyStep",
    "Engine",
    "EngineUnavailable",
    "build_engine",
    "engine_status",
    "example_stacks",
    "pick_engine",
]


def pick_engine(name: str, device: torch.device | str = "cpu") -> str:
    """``name`` itself, or for "auto" the engine to run on ``device``: on a CPU ``openvino`` when it
    is installed (the fastest CPU engine whose start-up stays short, docs/performance.md), else
    ``torch``; on a GPU ``torch``."""
    if name != AUTO:
        return name
    if torch.device(device).type == "cpu" and engine_status("openvino", device)[0]:
        return "openvino"
    return "torch"


def engine_status(name: str, device: torch.device | str = "cpu") -> tuple[bool, str]:
    """(usable, reason) for engine ``name`` on ``device``, without building it."""
    device = torch.device(device)
    if name == AUTO:
        return True, f"auto: {pick_engine(name, device)} here"
    if name not in ENGINE_NAMES:
        return False, f"unknown engine {name!r}; choose one of {', '.join(ENGINE_CHOICES)}"
    if name in ("torch-fp16", "torch-bf16"):
        support = precision_support(name.split("-")[1], device)
        return support.native, support.reason
    if name == "compile":
        from renderer.engines.compile_engine import compiler_available

        return compiler_available(device)
    if name == "onnx":
        from renderer.engines.onnx_engine import onnxruntime_providers

        try:
            providers = onnxruntime_providers(device)
        except EngineUnavailable as error:
            return False, str(error)
        return True, f"onnxruntime {providers[0]}"
    if name == "openvino":
        from renderer.engines.openvino_engine import openvino_unavailable_reason

        reason = openvino_unavailable_reason(device)
        return reason is None, reason or "openvino on the CPU"
    if name == "tensorrt":
        from renderer.engines.tensorrt_engine import tensorrt_unavailable_reason

        reason = tensorrt_unavailable_reason(device)
        return reason is None, reason or "tensorrt and a CUDA GPU present"
    return True, "always available"


def build_engine(
    name: str,
    generator: nn.Module,
    device: torch.device | str = "cpu",
    size: tuple[int, int] | None = None,
    **options: Any,
) -> Engine:
    """Engine ``name`` for ``generator`` on ``device``; ``size`` (W, H) builds it ahead of the
    first frame (else it builds on its first call). ``options`` go to the engine class."""
    device = torch.device(device)
    name = pick_engine(name, device)
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_CHOICES)}")
    engine: Engine
    if name == "torch" or name.startswith("torch-"):
        from renderer.engines.torch_engine import TorchEngine

        precision = name.split("-")[1] if "-" in name else options.pop("precision", "fp32")
        ok, reason = engine_status(name, device) if "-" in name else (True, "")
        if not ok:
            raise EngineUnavailable(f"{name}: {reason}")
        engine = TorchEngine(generator, device, size, precision=precision, **options)
    elif name == "compile":
        from renderer.engines.compile_engine import CompileEngine

        engine = CompileEngine(generator, device, size, **options)
    elif name == "onnx":
        from renderer.engines.onnx_engine import OnnxEngine

        engine = OnnxEngine(generator, device, size, **options)
    elif name == "openvino":
        from renderer.engines.openvino_engine import OpenVinoEngine

        engine = OpenVinoEngine(generator, device, size, **options)
    else:
        from renderer.engines.tensorrt_engine import TensorRTEngine

        engine = TensorRTEngine(generator, device, size, **options)
    if size is not None:
        label_stacks, prev_stacks = example_stacks(generator.config, size, device)
        engine(label_stacks, prev_stacks)
    return engine
