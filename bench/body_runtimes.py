"""ONNX Runtime against OpenVINO on the same exported body: the generator step without the label
stems and the renderer around it, which is what the two runtimes actually run differently.

The body of a preset (random weights) is exported once, as the ``onnx`` and ``openvino`` engines
export it, and both runtimes run that file on the same random inputs, OpenVINO with the openvino
engine's compile settings. Prints the median wall and process CPU time per call for each,
alternating the runtimes, and their largest output difference.

    python bench/body_runtimes.py --config lite --size 512x256 --threads 2 --calls 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def timed(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """(median wall ms, median process CPU ms) of ``calls`` calls after one untimed call."""
    call()
    wall, cpu = [], []
    for _ in range(calls):
        tick, cpu_tick = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - tick)
        cpu.append(time.process_time() - cpu_tick)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    """Export the body, run both runtimes, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="lite", help="preset: lite, nvidia_1024_g1, nvidia_2048")
    parser.add_argument("--size", default="512x256", help="WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()

    import onnxruntime
    import openvino

    from renderer.engines import BodyStep, example_stacks
    from renderer.engines.onnx_engine import export_body_onnx
    from renderer.engines.openvino_engine import cpu_config
    from renderer.model import build_generator, preset

    torch.set_num_threads(args.threads)
    width, height = (int(part) for part in args.size.split("x"))
    generator = build_generator(preset(args.config).replace(single_g=None), seed=0).eval()
    label_stacks, prev_stacks = example_stacks(generator.config, (width, height))
    body = BodyStep(generator)
    with torch.inference_mode():
        flat = body.flatten(generator.stems(label_stacks, None), generator.masks(label_stacks, None), prev_stacks)
    with tempfile.TemporaryDirectory() as folder:
        path = export_body_onnx(body, flat, Path(folder) / "body.onnx")
        rng = np.random.default_rng(0)
        feed = {name: rng.uniform(-1, 1, tuple(t.shape)).astype(np.float32)
                for name, t in zip(body.input_names(), flat)}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        compiled = openvino.Core().compile_model(str(path), "CPU", cpu_config(args.threads))
        request = compiled.create_infer_request()
        expected = session.run(None, feed)
        request.infer(feed)
        got = [request.get_output_tensor(i).data for i in range(len(expected))]
        diff = max(float(np.abs(a - b).max()) for a, b in zip(got, expected))
        print(f"{args.config} body at {width}x{height}, {args.threads} threads; "
              f"max |openvino - onnxruntime| {diff:.2e} of [-1, 1]")
        runs = {"onnxruntime": lambda: session.run(None, feed), "openvino": lambda: request.infer(feed)}
        for _ in range(2):  # alternate, so that a change in the machine's load hits both
            for name, call in runs.items():
                wall, cpu = timed(call, args.calls)
                print(f"  {name:12s} wall {wall:8.1f} ms   CPU {cpu:8.1f} ms")


if __name__ == "__main__":
    main()
