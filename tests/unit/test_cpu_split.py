"""CPU lists and how the CPUs are split between the pipeline and the render worker."""

from __future__ import annotations

import os

import pytest

from carla_neural.cpu_split import CpuSplit, pinned, plan_split
from renderer.cpus import format_cpus, parse_cpus


@pytest.mark.parametrize(("text", "cpus"), [("1", (1,)), ("2-5", (2, 3, 4, 5)), ("0, 2-3,2", (0, 2, 3))])
def test_cpu_lists_read_like_taskset(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpus(text) == cpus
    assert parse_cpus(format_cpus(cpus)) == cpus


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "1,,2"])
def test_bad_cpu_lists_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="must look like 1, 2-5 or 0,2-3"):
        parse_cpus(text)


def test_the_pipeline_keeps_the_lower_half_and_the_worker_gets_the_rest() -> None:
    assert plan_split([0, 1]) == CpuSplit(pipeline=(0,), worker=(1,))
    assert plan_split([4, 2, 3]) == CpuSplit(pipeline=(2,), worker=(3, 4))
    assert plan_split(range(16)) == CpuSplit(pipeline=tuple(range(8)), worker=tuple(range(8, 16)))
    assert plan_split([0]) is None
    assert plan_split([0, 1]).describe() == "pipeline on CPU 0, worker on CPU 1 (1 thread)"


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux CPU affinity and 2 CPUs")
def test_pinned_moves_every_thread_and_puts_them_back() -> None:
    import threading

    before = os.sched_getaffinity(0)
    first = min(before)
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        with pinned([first]):
            assert os.sched_getaffinity(0) == {first}
            assert os.sched_getaffinity(helper.native_id) == {first}  # started before the block
        assert os.sched_getaffinity(0) == before and os.sched_getaffinity(helper.native_id) == before
    finally:
        stop.set()
        helper.join()
