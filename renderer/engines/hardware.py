"""What reduced precision a device runs natively, so engines never pick an emulated one.

On a CPU without AVX-512 BF16 or AMX, bf16 convolutions fall back to emulation that is hundreds of
times slower than fp32 (measured on the project's AVX2 AMD EPYC machines), and fp16 likewise
without AVX-512 FP16 or AMX-FP16. On CUDA, fp16 runs on tensor cores from compute capability 7.0
and bf16 from 8.0.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class PrecisionSupport:
    """Whether ``precision`` runs natively on a device, and why (or why not)."""

    precision: str
    native: bool
    reason: str


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where that file does not exist)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return frozenset()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def _torch_cpu_check(name: str) -> bool:
    check = getattr(torch.cpu, name, None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def cpu_precision_support(precision: str) -> PrecisionSupport:
    """Native support of ``precision`` ("fp32", "fp16", "bf16") on this CPU."""
    flags = cpu_flags()
    if precision == "fp32":
        return PrecisionSupport("fp32", True, "always native")
    if precision == "bf16":
        native = (
            "avx512_bf16" in flags
            or "amx_bf16" in flags
            or _torch_cpu_check("_is_avx512_bf16_supported")
            or _torch_cpu_check("_is_amx_tile_supported")
        )
        why = "AVX-512 BF16 / AMX present" if native else "no AVX-512 BF16 or AMX: emulated, far slower than fp32"
        return PrecisionSupport("bf16", native, why)
    if precision == "fp16":
        native = "avx512_fp16" in flags or "amx_fp16" in flags or _torch_cpu_check("_is_amx_fp16_supported")
        why = "AVX-512 FP16 / AMX-FP16 present" if native else "no AVX-512 FP16 or AMX-FP16: emulated, far slower than fp32"
        return PrecisionSupport("fp16", native, why)
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def cuda_precision_support(precision: str, device: torch.device) -> PrecisionSupport:
    """Native support of ``precision`` on a CUDA device (tensor cores)."""
    if precision == "fp32":
        return PrecisionSupport("fp32", True, "always native")
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    if precision == "fp16":
        native = major >= 7
        return PrecisionSupport("fp16", native, f"{name} sm_{major}{minor}: tensor cores from sm_70")
    if precision == "bf16":
        native = major >= 8
        return PrecisionSupport("bf16", native, f"{name} sm_{major}{minor}: bf16 tensor cores from sm_80")
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def precision_support(precision: str, device: torch.device | str = "cpu") -> PrecisionSupport:
    """Native support of ``precision`` ("fp32", "fp16", "bf16") on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return cuda_precision_support(precision, device)
    if device.type == "cpu":
        return cpu_precision_support(precision)
    return PrecisionSupport(precision, precision == "fp32", f"unknown device type {device.type}")


def best_precision(device: torch.device | str = "cpu") -> str:
    """The fastest native precision: fp16 on tensor-core GPUs, bf16 on AMX/AVX-512-BF16 CPUs,
    otherwise fp32."""
    device = torch.device(device)
    order = ("fp16", "bf16") if device.type == "cuda" else ("bf16", "fp16")
    for precision in order:
        if precision_support(precision, device).native:
            return precision
    return "fp32"


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """"auto" -> ``best_precision``; a named reduced precision must be native, else ValueError."""
    if precision == "auto":
        return best_precision(device)
    support = precision_support(precision, device)
    if not support.native:
        raise ValueError(
            f"{precision} is not native on {torch.device(device)} ({support.reason}); "
            "use precision='fp32' or 'auto'"
        )
    return precision
