"""Which CPUs the render worker gets and which the pipeline keeps when both run on one machine.

Left to the scheduler, the world tick, the video encoders and the renderer's threads take turns on
the same cores and slow each other down. Split, the renderer runs on its own CPUs at the speed it
has alone, and the pipeline (world, remap, display, recorder) keeps up on the others while the
renderer works.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from renderer.cpus import available_cpus, can_pin, format_cpus, pin_process


@dataclass(frozen=True)
class CpuSplit:
    """CPU numbers for this process (the pipeline) and for the render worker (one thread each)."""

    pipeline: tuple[int, ...]
    worker: tuple[int, ...]

    def describe(self) -> str:
        """'pipeline on CPU 0, worker on CPU 1 (1 thread)', for logs and run.json."""
        threads = len(self.worker)
        return (f"pipeline on CPU {format_cpus(self.pipeline)}, worker on CPU {format_cpus(self.worker)} "
                f"({threads} thread{'s' if threads > 1 else ''})")


def plan_split(available: Iterable[int] | None = None) -> CpuSplit | None:
    """The lower half of the CPUs (at least one) for the pipeline, the rest for the worker.

    None where there are fewer than 2 CPUs or the system cannot pin threads.
    """
    if available is None:
        if not can_pin():
            return None
        available = available_cpus()
    cpus = sorted(set(available))
    if len(cpus) < 2:
        return None
    keep = len(cpus) // 2
    return CpuSplit(tuple(cpus[:keep]), tuple(cpus[keep:]))


def worker_cpu_options(split: CpuSplit | None) -> dict[str, Any]:
    """WorkerSupervisor keywords for a split: the worker's CPUs and one renderer thread each."""
    return {"cpus": split.worker, "threads": len(split.worker)} if split is not None else {}


@contextlib.contextmanager
def pinned(cpus: Iterable[int] | None) -> Iterator[None]:
    """Run the block with every thread of this process (and those it starts) on `cpus`; restore after."""
    if not cpus or not can_pin():
        yield
        return
    previous = available_cpus()
    pin_process(cpus)
    try:
        yield
    finally:
        pin_process(previous)
