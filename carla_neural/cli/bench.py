"""`carla-neural bench`: ms/frame, fps, peak memory and multiply-adds per engine × size × config."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from carla_neural.cli.options import WxHList, threads_option

# compile is left out of the default list only for its first-frame compile time (1-4 minutes per
# configuration on a 2-core CPU); name it to include it.
DEFAULT_ENGINES = "torch,onnx,openvino,torch-fp16,torch-bf16,tensorrt"
DEFAULT_CONFIGS = "lite,nvidia_1024_g1"
# On-paper multiply-adds for these (config, size) pairs are always printed; timing them on a CPU
# takes minutes per frame (the 2048 model is ~2.5 TMAC/frame at 2048x1024).
PAPER = (("nvidia_2048", (2048, 1024)), ("nvidia_1024_g1", (1024, 512)), ("lite", (1024, 512)))


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@click.command()
@click.option("--engines", default=DEFAULT_ENGINES, show_default=True,
              help="Comma-separated engines: torch, torch-fp16, torch-bf16, compile, onnx, openvino, tensorrt. "
                   "Ones this machine cannot run are listed as skipped, with the reason. "
                   "compile is not in the default list (it compiles for minutes on a small CPU).")
@click.option("--configs", default=DEFAULT_CONFIGS, show_default=True,
              help="Comma-separated presets: lite, lite_spade, nvidia_1024_g1, nvidia_2048 (random weights).")
@click.option("--sizes", "size_list", type=WxHList(), default="512x256", show_default=True,
              help="Comma-separated WIDTHxHEIGHT.")
@click.option("--frames", default=5, show_default=True, type=click.IntRange(1),
              help="Timed frames per case (fewer if --max-seconds runs out; at least 2).")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(0),
              help="Untimed engine frames first (they include export/compile).")
@click.option("--max-seconds", default=30.0, show_default=True, type=float,
              help="Stop timing a case after this long (build time not counted).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@threads_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every result, the machine and the on-paper figures as JSON here.")
@click.option("--paper/--no-paper", default=True, show_default=True,
              help="Print on-paper multiply-adds of the full-size NVIDIA models.")
def command(engines: str, configs: str, size_list: list[tuple[int, int]], frames: int, warmup: int,
            max_seconds: float, device: str, threads: int | None, json_path: Path | None, paper: bool) -> None:
    """Benchmark renderer engines, sizes and configurations on a synthetic street sequence.

    Each case renders through SequentialRenderer.step (labels in, RGB out) with random weights;
    start frames and warm-up frames are excluded. Defaults finish in a few minutes on a 2-core
    CPU; time the 2048 model with e.g. --configs nvidia_2048 --sizes 256x128.
    """
    import torch

    from renderer.bench import dense_gmac, format_table, machine_facts, run_bench
    from renderer.engines import ENGINE_NAMES
    from renderer.model import PRESETS

    engine_list, config_list = _split(engines), _split(configs)
    for name in engine_list:
        if name not in ENGINE_NAMES:
            raise click.BadParameter(f"unknown engine {name!r}; choose from {', '.join(ENGINE_NAMES)}",
                                     param_hint="--engines")
    for name in config_list:
        if name not in PRESETS:
            raise click.BadParameter(f"unknown config {name!r}; choose from {', '.join(sorted(PRESETS))}",
                                     param_hint="--configs")
    from renderer.cpus import set_torch_threads

    set_torch_threads(threads)

    machine = machine_facts()
    click.echo(f"machine: {machine.get('cpu', '?')}, {machine['cpu_count']} cores, "
               f"{machine['threads']} threads, {machine['cpu_capability']}, torch {machine['torch']}"
               + (f", GPU {machine['gpu']}" if "gpu" in machine else ""))
    started = time.perf_counter()

    def progress(result) -> None:
        figure = (f"{result.ms_median:.1f} ms/frame, {result.fps:.2f} fps" if result.status == "ok"
                  else f"{result.status}: {result.reason}")
        click.echo(f"  {result.config} {result.engine} {result.width}x{result.height}: {figure}", err=True)

    results = run_bench(config_list, engine_list, size_list, frames, warmup, max_seconds, device, progress)
    click.echo(format_table(results))

    paper_rows = []
    if paper:
        click.echo("\nOn paper (dense architecture, multiply-adds per frame):")
        for name, size in PAPER:
            gmac = dense_gmac(name, size)
            paper_rows.append({"config": name, "width": size[0], "height": size[1], "gmac_dense": gmac})
            click.echo(f"  {name} at {size[0]}x{size[1]}: {gmac / 1000:.2f} TMAC")

    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": machine,
            "command": {"engines": engine_list, "configs": config_list, "sizes": size_list,
                        "frames": frames, "warmup": warmup, "device": device},
            "results": [result.to_dict() for result in results],
            "paper": paper_rows,
        }
        json_path.write_text(json.dumps(payload, indent=2))
    ok = sum(result.status == "ok" for result in results)
    click.echo(f"bench: {ok}/{len(results)} cases timed in {time.perf_counter() - started:.0f} s"
               + (f"; wrote {json_path}" if json_path is not None else ""))
