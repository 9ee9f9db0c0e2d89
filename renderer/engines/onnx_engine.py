"""ONNX export of the body (opset ≥ 16: GridSample for the warp) run by ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from renderer.engines.base import BodyStep, Engine, EngineUnavailable

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
EXPORTERS = ("dynamo", "torchscript")


@contextlib.contextmanager
def export_paths(generator: nn.Module, warp_mode: str = "grid_sample") -> Iterator[None]:
    """Temporarily switch every scale to ``warp_mode`` (and the dense label stem, which the body
    never calls but tracing must not see data-dependent shapes in); restores the old modes."""
    scales = list(generator.scales)
    saved = [(scale.label_stem_mode, scale.warp_mode) for scale in scales]
    try:
        for scale in scales:
            scale.label_stem_mode = "dense"
            scale.warp_mode = warp_mode
        yield
    finally:
        for scale, (stem_mode, warp) in zip(scales, saved):
            scale.label_stem_mode = stem_mode
            scale.warp_mode = warp


def export_body_onnx(
    body: BodyStep,
    flat: Sequence[Tensor],
    path: Path,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    warp_mode: str = "grid_sample",
) -> Path:
    """Write the body as ONNX to ``path`` for inputs shaped like ``flat`` (static shapes);
    weights over 2 GB go to an external-data file beside it."""
    if opset < 16:
        raise ValueError(f"opset {opset} has no GridSample; use 16 or later")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    # Plain (non-inference, NCHW-contiguous) copies: tracing must not see inference tensors.
    example = tuple(tensor.detach().clone().contiguous() for tensor in flat)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The exporter prints its progress to stdout; keep it for the debug log instead.
    progress = io.StringIO()
    with export_paths(body.generator, warp_mode), torch.no_grad(), contextlib.redirect_stdout(progress):
        if exporter == "dynamo":
            program = torch.onnx.export(
                body,
                example,
                input_names=body.input_names(),
                output_names=body.output_names(),
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
            program.save(str(path), external_data=_too_large_for_protobuf(body))
        else:
            torch.onnx.export(
                body,
                example,
                str(path),
                input_names=body.input_names(),
                output_names=body.output_names(),
                opset_version=opset,
                dynamo=False,
            )
    log.debug("ONNX export of %s:\n%s", path.name, progress.getvalue())
    return path


def _too_large_for_protobuf(module: nn.Module) -> bool:
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    return size > (1 << 31) - (1 << 26)


def onnxruntime_providers(device: torch.device) -> list[str]:
    """ONNX Runtime execution providers for ``device``; EngineUnavailable if none fits."""
    try:
        import onnxruntime
    except ImportError as error:
        raise EngineUnavailable("the onnx engine needs onnxruntime (pip install onnxruntime)") from error
    available = onnxruntime.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise EngineUnavailable(
                f"onnxruntime here has no CUDAExecutionProvider (has {available}); "
                "install onnxruntime-gpu or use device='cpu'"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxEngine(Engine):
    """The body exported to ONNX and run by ONNX Runtime (fp32).

    The model file lives in a temporary folder removed with the engine, or in ``export_dir`` when
    given (kept). ``threads`` defaults to PyTorch's intra-op thread count.
    """

    name = "onnx"

    def __init__(
        self,
        generator: nn.Module,
        device: torch.device | str = "cpu",
        size: tuple[int, int] | None = None,
        opset: int = DEFAULT_OPSET,
        exporter: str = "dynamo",
        warp_mode: str = "grid_sample",
        threads: int | None = None,
        export_dir: str | Path | None = None,
    ) -> None:
        super().__init__(generator, device, size)
        try:
            import onnx  # noqa: F401
        except ImportError as error:
            raise EngineUnavailable("the onnx engine needs the onnx package (pip install onnx)") from error
        self.providers = onnxruntime_providers(self.device)
        self.opset = opset
        self.exporter = exporter
        self.warp_mode = warp_mode
        self.threads = threads if threads is not None else torch.get_num_threads()
        if export_dir is None:
            self._folder = Path(tempfile.mkdtemp(prefix="carla-neural-onnx-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._folder, True)
        else:
            self._folder = Path(export_dir)
            self._cleanup = None
        self.model_path: Path | None = None
        self._session: Any = None

    def describe(self) -> dict[str, Any]:
        """Engine facts, with the export settings and providers."""
        return {
            **super().describe(),
            "opset": self.opset,
            "exporter": self.exporter,
            "warp": self.warp_mode,
            "providers": self.providers,
            "threads": self.threads,
        }

    def build(self, flat: list[Tensor]) -> None:
        """Export for these shapes and open an ONNX Runtime session."""
        import onnxruntime

        shape = "x".join(str(d) for d in flat[-1].shape[-2:])
        self.model_path = export_body_onnx(
            self.body, flat, self._folder / f"body_{shape}.onnx", self.opset, self.exporter, self.warp_mode
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(
            str(self.model_path), options, providers=self.providers
        )
        self._input_names = self.body.input_names()

    def run(self, flat: list[Tensor]) -> Sequence[Tensor]:
        """One ONNX Runtime call; tensors cross as NumPy arrays (CPU memory)."""
        feed = {
            name: tensor.detach().cpu().contiguous().numpy()
            for name, tensor in zip(self._input_names, flat)
        }
        outputs = self._session.run(None, feed)
        return [torch.from_numpy(array).to(self.device) for array in outputs]

    def close(self) -> None:
        """Drop the session and the temporary model file."""
        self._session = None
        if self._cleanup is not None:
            self._cleanup()
