"""TensorRT engine built from the body's ONNX export; needs a CUDA GPU and the tensorrt package."""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from renderer.engines.base import Engine, EngineUnavailable
from renderer.engines.hardware import resolve_precision
from renderer.engines.onnx_engine import DEFAULT_OPSET, export_body_onnx

log = logging.getLogger(__name__)


def tensorrt_unavailable_reason(device: torch.device) -> str | None:
    """Why TensorRT cannot run on ``device`` here, or None when it can."""
    if device.type != "cuda":
        return f"the tensorrt engine needs a CUDA device, got {device}"
    if not torch.cuda.is_available():
        return "the tensorrt engine needs a CUDA GPU (torch.cuda.is_available() is False)"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt engine needs the tensorrt package (pip install tensorrt)"
    return None


class TensorRTEngine(Engine):
    """ONNX export of the body, parsed and built by TensorRT for the first call's shapes.

    ``precision`` "auto" (default) builds fp16 kernels where the GPU has tensor cores, else fp32.
    Inputs and outputs stay on the GPU as PyTorch tensors bound by address.
    """

    name = "tensorrt"

    def __init__(
        self,
        generator: nn.Module,
        device: torch.device | str = "cuda",
        size: tuple[int, int] | None = None,
        precision: str = "auto",
        opset: int = DEFAULT_OPSET,
        workspace_gib: float = 4.0,
    ) -> None:
        device = torch.device(device)
        reason = tensorrt_unavailable_reason(device)
        if reason is not None:
            raise EngineUnavailable(reason)
        super().__init__(generator, device, size)
        self.precision = resolve_precision(precision, self.device)
        if self.precision == "bf16":
            self.precision = "fp16"  # TensorRT's reduced-precision builder flag used here is fp16
        self.opset = opset
        self.workspace_bytes = int(workspace_gib * (1 << 30))
        self._folder = Path(tempfile.mkdtemp(prefix="carla-neural-trt-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._folder, True)
        self._context: Any = None
        self._engine: Any = None

    def describe(self) -> dict[str, Any]:
        """Engine facts, with the TensorRT version."""
        import tensorrt

        return {**super().describe(), "tensorrt": tensorrt.__version__, "opset": self.opset}

    def build(self, flat: list[Tensor]) -> None:
        """Export ONNX, parse it and build a serialized TensorRT engine for these shapes."""
        import tensorrt as trt

        onnx_path = export_body_onnx(self.body, flat, self._folder / "body.onnx", self.opset)
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse the exported ONNX: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT failed to build an engine (see its log above)")
        runtime = trt.Runtime(logger)
        self._engine = runtime.deserialize_cuda_engine(serialized)
        self._context = self._engine.create_execution_context()
        self._input_names = self.body.input_names()
        self._output_names = self.body.output_names()

    def run(self, flat: list[Tensor]) -> Sequence[Tensor]:
        """Bind inputs and fresh outputs by address and execute on the current CUDA stream."""
        inputs = [tensor.detach().float().contiguous() for tensor in flat]
        for name, tensor in zip(self._input_names, inputs):
            self._context.set_tensor_address(name, tensor.data_ptr())
        outputs = []
        for name in self._output_names:
            shape = tuple(self._engine.get_tensor_shape(name))
            output = torch.empty(shape, device=self.device, dtype=torch.float32)
            self._context.set_tensor_address(name, output.data_ptr())
            outputs.append(output)
        stream = torch.cuda.current_stream(self.device)
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return outputs

    def close(self) -> None:
        """Drop the engine and its temporary files."""
        self._context = None
        self._engine = None
        self._cleanup()
