"""OpenVINO engine: the body's ONNX export, compiled by OpenVINO's CPU plugin.

The body is exported with the same path as the ``onnx`` engine (``export_body_onnx``) and read
by OpenVINO. Measured against ``openvino.convert_model`` straight from the PyTorch module (lite
body at 512×256, 2 threads, contended 2-core machine): export + read + compile took 27 s against
57 s, and the compiled ONNX graph ran faster (248 vs 409 ms per call), so the ONNX route is used
(docs/performance.md, "The openvino engine").

Exporting takes up to minutes (under contention on 2 cores: lite 100 s, NVIDIA's 1024_g1 164 s), so
the converted model (OpenVINO IR, fp32 weights) is kept in a cache folder keyed by the weights,
the architecture, the input shapes, the model code and the library versions; a later start with
the same model skips the export and OpenVINO's own ``CACHE_DIR`` skips recompiling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from renderer.engines.base import Engine, EngineUnavailable
from renderer.engines.hardware import resolve_precision
from renderer.engines.onnx_engine import DEFAULT_OPSET, export_body_onnx

log = logging.getLogger(__name__)

# OpenVINO's names for our precisions (its INFERENCE_PRECISION_HINT).
OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
CACHE_ENV = "CARLA_NEURAL_CACHE"


def openvino_unavailable_reason(device: torch.device | str = "cpu") -> str | None:
    """Why the openvino engine cannot run on ``device`` here, or None when it can."""
    device = torch.device(device)
    if device.type != "cpu":
        return f"the openvino engine runs on the CPU; got device {device}"
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "the openvino engine needs the openvino package (pip install openvino, or the [openvino] extra)"
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return "the openvino engine exports through ONNX: it needs onnx and onnxscript (the [onnx] extra)"
    return None


def cpu_config(threads: int, precision: str = "fp32") -> dict[str, Any]:
    """OpenVINO CPU compile settings: ``threads`` inference threads, one stream with the latency
    hint (frames come one at a time), and an explicit precision hint (see ``OpenVinoEngine``)."""
    return {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": OV_PRECISIONS[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }


def default_cache_dir() -> Path:
    """Where converted models are kept: ``$CARLA_NEURAL_CACHE/openvino``, else
    ``$XDG_CACHE_HOME/carla-neural/openvino`` (``~/.cache`` when unset)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "openvino"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "carla-neural" / "openvino"


def _model_code_digest() -> str:
    """Digest of the model package's source: a cached export is stale once the code changes."""
    digest = hashlib.sha256()
    model_dir = Path(__file__).resolve().parents[1] / "model"
    for path in sorted(model_dir.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def body_cache_key(generator: nn.Module, flat: Sequence[Tensor], **settings: Any) -> str:
    """A digest naming one exported body: weights and buffers, architecture, input shapes, model
    code, torch and OpenVINO versions and the export ``settings``."""
    import openvino

    digest = hashlib.blake2b(digest_size=16)
    facts = {
        "config": repr(generator.config),
        "shapes": [list(tensor.shape) for tensor in flat],
        "code": _model_code_digest(),
        "torch": torch.__version__,
        "openvino": openvino.__version__,
        **settings,
    }
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    for name, tensor in generator.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class OpenVinoEngine(Engine):
    """The body run by OpenVINO on the CPU, fp32.

    ``threads`` (default: PyTorch's intra-op thread count) sets ``INFERENCE_NUM_THREADS``; one
    stream and the latency hint, since frames come one at a time. ``precision`` "fp32" sets the
    f32 inference-precision hint explicitly: OpenVINO's CPU plugin otherwise picks bf16 by itself
    on CPUs with AVX-512 BF16 or AMX, which would move frames away from PyTorch fp32; on an AVX2
    CPU bf16 is not native at all (emulated, far slower), and "bf16" is refused there like the
    ``torch-bf16`` engine. ``cache_dir`` keeps converted models (None: ``default_cache_dir()``);
    ``cache=False`` exports into a temporary folder every time.
    """

    name = "openvino"

    def __init__(
        self,
        generator: nn.Module,
        device: torch.device | str = "cpu",
        size: tuple[int, int] | None = None,
        threads: int | None = None,
        precision: str = "fp32",
        cache: bool = True,
        cache_dir: str | Path | None = None,
        opset: int = DEFAULT_OPSET,
        warp_mode: str = "grid_sample",
    ) -> None:
        reason = openvino_unavailable_reason(device)
        if reason is not None:
            raise EngineUnavailable(reason)
        super().__init__(generator, device, size)
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads if threads is not None else torch.get_num_threads()
        self.precision = resolve_precision(precision, self.device)
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.opset = opset
        self.warp_mode = warp_mode
        self.model_path: Path | None = None
        self.cache_hit = False
        self._request: Any = None

    def describe(self) -> dict[str, Any]:
        """Engine facts, with the OpenVINO version, threads and whether the cache served the model."""
        import openvino

        return {
            **super().describe(),
            "openvino": openvino.__version__,
            "threads": self.threads,
            "opset": self.opset,
            "warp": self.warp_mode,
            "cache_hit": self.cache_hit,
            "model": str(self.model_path) if self.model_path else None,
        }

    def _convert(self, flat: list[Tensor], ir_path: Path) -> None:
        """Export ONNX, read it with OpenVINO and write it as IR to ``ir_path`` (fp32 weights)."""
        import openvino

        with tempfile.TemporaryDirectory(prefix="carla-neural-openvino-") as scratch:
            onnx_path = export_body_onnx(
                self.body, flat, Path(scratch) / "body.onnx", self.opset, "dynamo", self.warp_mode
            )
            model = openvino.Core().read_model(str(onnx_path))
            # Written beside the final folder and renamed into place, so that a run stopped
            # half-way (or another process converting the same body) never leaves a torn model.
            ir_path.parent.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=ir_path.parent.parent))
            try:
                openvino.save_model(model, str(staging / ir_path.name), compress_to_fp16=False)
                try:
                    staging.rename(ir_path.parent)
                except OSError:  # another process won the race: its copy is the same model
                    pass
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def build(self, flat: list[Tensor]) -> None:
        """Convert (or find in the cache) the body for these shapes and compile it."""
        import openvino

        settings = {"opset": self.opset, "warp": self.warp_mode}
        core = openvino.Core()
        config = cpu_config(self.threads, self.precision)
        if self.cache:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                log.warning("openvino: cannot use the cache folder %s (%s); converting without it "
                            "(set %s to a writable folder)", self.cache_dir, error, CACHE_ENV)
                self.cache = False
        if self.cache:
            folder = self.cache_dir / body_cache_key(self.generator, flat, **settings)
            self.model_path = folder / "body.xml"
            self.cache_hit = self.model_path.exists()
            if not self.cache_hit:
                self._convert(flat, self.model_path)
            config["CACHE_DIR"] = str(self.cache_dir / "compiled")
            compiled = core.compile_model(str(self.model_path), "CPU", config)
        else:
            with tempfile.TemporaryDirectory(prefix="carla-neural-openvino-") as scratch:
                path = Path(scratch) / "model" / "body.xml"
                self._convert(flat, path)
                compiled = core.compile_model(str(path), "CPU", config)
            self.model_path = None
        self._request = compiled.create_infer_request()
        self._input_names = self.body.input_names()
        self._n_outputs = len(compiled.outputs)
        log.info("openvino: %s model, %d threads, %s", "cached" if self.cache_hit else "converted",
                 self.threads, self.precision)

    def run(self, flat: list[Tensor]) -> Sequence[Tensor]:
        """One synchronous inference; tensors cross as NumPy arrays (CPU memory)."""
        inputs = {
            name: np.ascontiguousarray(tensor.detach().cpu().numpy())
            for name, tensor in zip(self._input_names, flat)
        }
        self._request.infer(inputs)
        # The request reuses its output buffers on the next call: copy out.
        return [
            torch.from_numpy(np.array(self._request.get_output_tensor(index).data))
            for index in range(self._n_outputs)
        ]

    def close(self) -> None:
        """Drop the compiled model (the cache folder stays for the next start)."""
        self._request = None
