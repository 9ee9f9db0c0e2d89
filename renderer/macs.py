"""Multiply-add counting for one generator step, from the operations that actually run.

Counts come from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, transposed
convolutions and matrix products; one multiply-add = 2 FLOPs), so a fast path that skips work
(e.g. convolving only the label channels present in a frame) is counted as what it executes.
Element-wise work (norms, activations, warping) is not counted: it is memory-bound, not MAC-bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class MacCount:
    """Multiply-adds of one call: ``total`` and per module path (``by_module``, nested names)."""

    total: int
    by_module: dict[str, int] = field(default_factory=dict)

    @property
    def gmac(self) -> float:
        """Total in units of 10^9 multiply-adds."""
        return self.total / 1e9

    def top(self, depth: int, limit: int | None = None) -> list[tuple[str, int]]:
        """Module paths exactly ``depth`` levels below the root, largest first."""
        rows = [(name, macs) for name, macs in self.by_module.items() if name.count(".") == depth]
        rows.sort(key=lambda row: -row[1])
        return rows[:limit] if limit is not None else rows


def count_macs(function: Callable[..., Any], *args: Any, depth: int = 4, **kwargs: Any) -> MacCount:
    """Run ``function(*args, **kwargs)`` once under no_grad and count its multiply-adds."""
    counter = FlopCounterMode(display=False, depth=depth)
    with torch.no_grad(), counter:
        function(*args, **kwargs)
    by_module = {
        name: sum(per_op.values()) // 2 for name, per_op in counter.get_flop_counts().items()
    }
    return MacCount(total=counter.get_total_flops() // 2, by_module=by_module)
