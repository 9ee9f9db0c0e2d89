"""CPU lists ('0,2-3') and pinning every thread of this process to a set of CPUs (Linux)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


def parse_cpus(text: str) -> tuple[int, ...]:
    """'1' / '2-5' / '0,2-3' -> sorted CPU numbers; ValueError naming the expected form otherwise."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            low, high = int(first), int(last or first)
            if low < 0 or high < low:
                raise ValueError
            cpus.update(range(low, high + 1))
    except ValueError:
        raise ValueError(f"CPUs must look like 1, 2-5 or 0,2-3, got {text!r}") from None
    return tuple(sorted(cpus))


def format_cpus(cpus: Iterable[int]) -> str:
    """(0, 2, 3) -> '0,2,3'."""
    return ",".join(str(cpu) for cpu in sorted(set(cpus)))


def can_pin() -> bool:
    """Whether this system can pin threads to CPUs."""
    return hasattr(os, "sched_setaffinity")


def pin_process(cpus: Iterable[int]) -> None:
    """Pin every thread of this process to `cpus`; threads started later inherit it.

    ValueError when the machine has no such CPU; OSError when the system refuses (e.g. a container's
    CPU set).
    """
    cpus = set(cpus)
    count = os.cpu_count() or 1
    if not cpus or max(cpus) >= count:
        raise ValueError(f"CPUs {format_cpus(cpus)}: this machine has CPUs 0-{count - 1}")
    # sched_setaffinity(0) pins only the calling thread: pin each one there is.
    tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]
    for task in tasks:
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def available_cpus() -> set[int]:
    """The CPUs this process may run on."""
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def default_threads() -> int:
    """The renderer's default CPU threads: half the CPUs this process may use, at least 1.

    torch's own default (one per core) is fine on an idle machine and ruinous on a shared one: on
    the 2-core VM, with another process busy on one core, `render` with 2 threads took 8x longer
    per frame than with 1 (see docs/performance.md, "Threads").
    """
    return max(1, len(available_cpus()) // 2)


def set_torch_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None: `default_threads()`); return the count in force."""
    import torch

    count = default_threads() if threads is None else int(threads)
    if count < 1:
        raise ValueError(f"threads must be at least 1, got {count}")
    torch.set_num_threads(count)
    return count


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to `threads` (None: leave it), then restore it."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    set_torch_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
