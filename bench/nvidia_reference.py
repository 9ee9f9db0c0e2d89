"""Time NVIDIA's own vid2vid test-time code against our engines on the same weights, and compare
the frames.

NVIDIA's code is not part of this project: give the path of a checkout of NVIDIA/vid2vid that you
fetched yourself (``--vid2vid``). This script imports its ``models`` and ``options`` packages
from there and runs ``Vid2VidModelG.inference`` — label encoding, instance edges, pyramids, the
three composite generators with BatchNorm on per-frame statistics, warping and composition —
exactly as its ``test.py`` does, with the options of its ``scripts/street/test_*.sh``.

Both sides start from the same two previous frames (NVIDIA's ``--use_real_img``: smooth random
images standing in for real frames), see the same synthetic street labels and instance maps, and
then each feeds back its own outputs. Weights: random (NVIDIA's init, ``--seed``) written to a
temporary folder in NVIDIA's checkpoint format, or an NVIDIA checkpoint folder (``--checkpoint``).

To run NVIDIA's CUDA-only code on a CPU, three things are shimmed while it runs, and only then:
``Tensor.cuda`` returns the tensor itself and ``torch.cuda.FloatTensor``/``ByteTensor`` make CPU
tensors. ``grid_sample`` gets ``align_corners=True`` by default: NVIDIA's call passes no
``align_corners``, and the PyTorch it was written for (< 1.3) behaved that way, which is what the
released models were trained with (``--grid-sample modern`` shows the difference). If
``torchvision`` is missing, a placeholder module stands in for the import at the bottom of
NVIDIA's ``networks.py`` (used only by its VGG loss, never at test time).

    python bench/nvidia_reference.py --vid2vid external/vid2vid --config nvidia_1024_g1 --size 512x256

Controls: ``--control-fp64`` reruns NVIDIA's steps in float64 (how far fp32 itself, NVIDIA's and
ours, is from the exact result on these weights); ``--control-threads N`` reruns them with another
thread count. ``--nchw``, ``--label-stem`` and ``--warp`` select our variants for diagnosis.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import logging
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from renderer.bench import machine_facts, synthetic_street  # noqa: E402
from renderer.engines import EngineUnavailable, build_engine  # noqa: E402
from renderer.model import build_generator, preset  # noqa: E402
from renderer.model.inputs import build_pyramid, encode_label_frame  # noqa: E402
from renderer.model.stem import frame_codes  # noqa: E402

log = logging.getLogger("nvidia_reference")


# ---------------------------------------------------------------------------------------------
# NVIDIA's side
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def nvidia_runtime(grid_sample: str = "legacy", cpu: bool = True) -> Iterator[None]:
    """Shims under which NVIDIA's CUDA-only test path runs on this machine (restored after)."""
    saved_cuda = torch.Tensor.cuda
    saved_float = getattr(torch.cuda, "FloatTensor", None)
    saved_byte = getattr(torch.cuda, "ByteTensor", None)
    saved_grid_sample = F.grid_sample
    original_grid_sample = F.grid_sample

    @functools.wraps(original_grid_sample)
    def legacy_grid_sample(*args: Any, **kwargs: Any) -> torch.Tensor:
        if kwargs.get("align_corners") is None:
            kwargs["align_corners"] = True
        return original_grid_sample(*args, **kwargs)

    try:
        if cpu:
            torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
            torch.cuda.FloatTensor = lambda *size: torch.zeros(*size, dtype=torch.get_default_dtype())  # type: ignore[attr-defined]
            torch.cuda.ByteTensor = lambda *size: torch.zeros(*size, dtype=torch.uint8)  # type: ignore[attr-defined]
        if grid_sample == "legacy":
            F.grid_sample = legacy_grid_sample  # type: ignore[assignment]
        yield
    finally:
        torch.Tensor.cuda = saved_cuda  # type: ignore[method-assign]
        if saved_float is not None:
            torch.cuda.FloatTensor = saved_float  # type: ignore[attr-defined]
        if saved_byte is not None:
            torch.cuda.ByteTensor = saved_byte  # type: ignore[attr-defined]
        F.grid_sample = saved_grid_sample  # type: ignore[assignment]


def import_nvidia(vid2vid: Path) -> tuple[Any, Any]:
    """NVIDIA's ``TestOptions`` class and ``Vid2VidModelG`` class, imported from ``vid2vid``."""
    if not (vid2vid / "models" / "vid2vid_model_G.py").is_file():
        raise SystemExit(
            f"{vid2vid} is not a checkout of NVIDIA/vid2vid (no models/vid2vid_model_G.py); fetch it "
            "yourself, e.g. git clone https://github.com/NVIDIA/vid2vid external/vid2vid"
        )
    if str(vid2vid) not in sys.path:
        sys.path.insert(0, str(vid2vid))
    try:
        importlib.import_module("torchvision")
    except ImportError:
        placeholder = types.ModuleType("torchvision")
        placeholder.models = types.ModuleType("torchvision.models")  # type: ignore[attr-defined]
        placeholder.is_placeholder = True  # type: ignore[attr-defined]
        placeholder.models.is_placeholder = True  # type: ignore[attr-defined]
        sys.modules["torchvision"] = placeholder
        sys.modules["torchvision.models"] = placeholder.models  # type: ignore[attr-defined]
        log.info("torchvision missing: placeholder for networks.py's VGG import (unused at test time)")
    options = importlib.import_module("options.test_options")
    model_g = importlib.import_module("models.vid2vid_model_G")
    # networks.py has bound its name; take the placeholder back out so that nothing else (the ONNX
    # exporter looks for torchvision) mistakes it for the real package.
    for name in ("torchvision", "torchvision.models"):
        if getattr(sys.modules.get(name), "is_placeholder", False):
            del sys.modules[name]
    return options.TestOptions, model_g.Vid2VidModelG


def nvidia_options(test_options: Any, config: Any, checkpoints_dir: Path, name: str, cpu: bool) -> Any:
    """NVIDIA's option namespace for ``config``, as its street test scripts set it."""
    parser_owner = test_options()
    parser_owner.initialize()
    args = [
        "--name", name, "--checkpoints_dir", str(checkpoints_dir), "--label_nc", str(config.label_nc),
        "--ngf", str(config.ngf), "--n_downsample_G", str(config.n_downsampling),
        "--n_blocks", str(config.n_blocks), "--n_blocks_local", str(config.n_blocks_local),
        "--n_scales_spatial", str(config.n_scales), "--n_frames_G", str(config.n_frames),
        "--fg_labels", ",".join(str(label) for label in config.fg_labels),
        "--use_real_img", "--gpu_ids", "-1" if cpu else "0",
    ]
    if config.use_instance:
        args.append("--use_instance")
    if config.use_fg:
        args.append("--fg")
    opt = parser_owner.parser.parse_args(args)
    # What BaseOptions.parse does after parsing (without printing or writing opt.txt).
    opt.isTrain = False
    opt.fg_labels = [int(label) for label in opt.fg_labels.split(",")]
    opt.gpu_ids = [] if cpu else [0]
    opt.n_gpus_gen = len(opt.gpu_ids)
    return opt


def write_nvidia_checkpoint(generator: Any, folder: Path) -> None:
    """Our generator's scales as NVIDIA's ``latest_net_G{s}.pth`` state dicts."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, scale in enumerate(generator.scales):
        state = {key: value.detach().contiguous().clone() for key, value in scale.state_dict().items()}
        torch.save(state, folder / f"latest_net_G{index}.pth")


def check_same_weights(nvidia_model: Any, generator: Any) -> None:
    """Every NVIDIA parameter equals ours, key for key (so the comparison is on the same weights)."""
    for index, scale in enumerate(generator.scales):
        theirs = getattr(nvidia_model, f"netG{index}").state_dict()
        ours = scale.state_dict()
        if set(theirs) != set(ours):
            raise SystemExit(f"G{index}: key sets differ: {sorted(set(theirs) ^ set(ours))[:10]}")
        for key, value in theirs.items():
            if key.endswith("running_mean") or key.endswith("running_var") or key.endswith("num_batches_tracked"):
                continue  # NVIDIA's train-mode BatchNorm updates these on every call; never read
            if not torch.equal(value, ours[key].contiguous()):
                raise SystemExit(f"G{index}.{key}: NVIDIA's loaded weight differs from ours")


# ---------------------------------------------------------------------------------------------
# Our side
# ---------------------------------------------------------------------------------------------


class OurSequence:
    """Our sequential step driven like NVIDIA's test loop: given the two first frames, each call
    encodes the new label frame and runs one engine step; the encodings of earlier frames are
    kept (a renderer does that too)."""

    def __init__(self, generator: Any, engine: Any, first_images: list[torch.Tensor]) -> None:
        self.generator = generator
        self.config = generator.config
        self.engine = engine
        n_scales = self.config.n_scales
        self.previous = [
            [build_pyramid(image, n_scales)[::-1][s] for image in first_images] for s in range(n_scales)
        ]
        self.labels: list[list[torch.Tensor]] = []
        self.codes: list[torch.Tensor] = []

    def add_labels(self, label_ids: torch.Tensor, instance_ids: torch.Tensor) -> None:
        """Encode one frame: (1, H, W) int64 label ids and instance ids."""
        config = self.config
        encoded = encode_label_frame(label_ids, instance_ids, config.label_nc, config.use_instance)
        edges = encoded[:, config.label_nc] if config.use_instance else None
        self.labels.append(build_pyramid(encoded, config.n_scales)[::-1])
        self.codes.append(frame_codes(label_ids, edges))
        self.labels = self.labels[-config.n_frames :]
        self.codes = self.codes[-config.n_frames :]

    def step(self, label_ids: torch.Tensor, instance_ids: torch.Tensor) -> torch.Tensor:
        """One frame: (1, H, W) labels and instances in, (1, 3, H, W) image in [-1, 1] out."""
        self.add_labels(label_ids, instance_ids)
        n_scales = self.config.n_scales
        label_stacks = [torch.cat([frame[s] for frame in self.labels], 1) for s in range(n_scales)]
        prev_stacks = [torch.cat(self.previous[s][-(self.config.n_frames - 1) :], 1) for s in range(n_scales)]
        images = self.engine(label_stacks, prev_stacks, torch.stack(self.codes, 1))
        for s in range(n_scales):
            self.previous[s] = self.previous[s][-(self.config.n_frames - 2) :] + [images[s]]
        return images[-1]


# ---------------------------------------------------------------------------------------------


def smooth_images(count: int, width: int, height: int, seed: int) -> list[torch.Tensor]:
    """Smooth random (1, 3, H, W) images in [-1, 1], standing in for real first frames."""
    generator = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(count):
        coarse = torch.rand(1, 3, max(2, height // 16), max(2, width // 16), generator=generator) * 2 - 1
        images.append(F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False))
    return images


def to_255(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 255] float, as NVIDIA's tensor2im scales (before its truncation)."""
    return (image.float() + 1.0) / 2.0 * 255.0


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(part) for part in text.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vid2vid", type=Path, required=True, help="checkout of NVIDIA/vid2vid")
    parser.add_argument("--config", default="nvidia_1024_g1", choices=["nvidia_1024_g1", "nvidia_2048"])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="NVIDIA checkpoint folder (latest_net_G*.pth); default: random weights")
    parser.add_argument("--size", default="512x256", help="WIDTHxHEIGHT (default 512x256)")
    parser.add_argument("--steps", type=int, default=4, help="frames after the two given ones; "
                        "the first is warm-up, not timed (default 4)")
    parser.add_argument("--engines", default="torch,compile,onnx")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid-sample", choices=["legacy", "modern"], default="legacy",
                        help="NVIDIA's grid_sample default: legacy = align_corners=True (PyTorch < 1.3, "
                        "what the models were trained with); modern = today's default (False)")
    parser.add_argument("--label-stem", choices=["lookup", "present", "dense"], default=None,
                        help="our label-stem path (default: the model's, lookup)")
    parser.add_argument("--warp", choices=["pixel", "grid_sample"], default=None,
                        help="our warp implementation (default: the model's)")
    parser.add_argument("--nchw", action="store_true",
                        help="run our torch/compile engines in NCHW instead of channels_last")
    parser.add_argument("--control-fp64", action="store_true",
                        help="also run NVIDIA's steps in float64 and report how far NVIDIA's fp32 frames "
                        "and ours are from that exact result")
    parser.add_argument("--control-threads", type=int, default=0,
                        help="also rerun NVIDIA's steps with this many threads and report how far its "
                        "own frames move (the float-order noise floor on these weights)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx", "torch._dynamo", "torch._inductor"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (one warm-up, one timed)")
    width, height = parse_size(args.size)
    cpu = not torch.cuda.is_available()
    device = "cpu" if cpu else "cuda"

    test_options, model_class = import_nvidia(args.vid2vid.resolve())
    with tempfile.TemporaryDirectory(prefix="nvidia-ref-") as scratch:
        if args.checkpoint is not None:
            from renderer.checkpoint import load_nvidia_checkpoint

            generator = load_nvidia_checkpoint(args.checkpoint, None, "cpu")
            checkpoints_dir, name = args.checkpoint.resolve().parent, args.checkpoint.resolve().name
        else:
            generator = build_generator(preset(args.config).replace(single_g=None), seed=args.seed)
            checkpoints_dir, name = Path(scratch), "weights"
            write_nvidia_checkpoint(generator, checkpoints_dir / name)
        generator = generator.to(device).eval()
        if args.label_stem or args.warp:
            current = generator.scales[0]
            generator.set_fast_paths(args.label_stem or current.label_stem_mode, args.warp or current.warp_mode)
        config = generator.config
        if width % config.size_multiple or height % config.size_multiple:
            parser.error(f"--size must be a multiple of {config.size_multiple}")

        opt = nvidia_options(test_options, config, checkpoints_dir, name, cpu)
        with nvidia_runtime(args.grid_sample, cpu):
            nvidia = model_class()
            nvidia.initialize(opt)
        check_same_weights(nvidia, generator)

        frames = 2 + args.steps
        sequence = synthetic_street(width, height, frames, args.seed)
        labels = [torch.from_numpy(l.astype(np.int64))[None] for l, _ in sequence]
        instances = [torch.from_numpy(i.astype(np.int64))[None] for _, i in sequence]
        first = smooth_images(2, width, height, args.seed)

        # NVIDIA: A, inst (1, tG, 1, H, W) float as its test loader gives them; B the first frames.
        tG = config.n_frames
        real_b = torch.stack([image[0] for image in first], 0)[None].to(device)
        nvidia_frames, nvidia_ms, nvidia_prev, nvidia_cpu_ms, nvidia_inputs = [], [], [], [], []
        with nvidia_runtime(args.grid_sample, cpu):
            nvidia.fake_B_prev = None
            for t in range(tG - 1, frames):
                if nvidia.fake_B_prev is not None:
                    # NVIDIA's history before this step, per scale, finest first (tG-1, 3, h, w).
                    nvidia_prev.append([prev.detach().clone() for prev in nvidia.fake_B_prev])
                a = torch.stack([labels[k].float() for k in range(t - tG + 1, t + 1)], 1)[:, :, None].to(device)
                inst = torch.stack([instances[k].float() for k in range(t - tG + 1, t + 1)], 1)[:, :, None].to(device)
                nvidia_inputs.append((a, inst))
                started, cpu_started = time.perf_counter(), time.process_time()
                fake_b, _ = nvidia.inference(a, real_b, inst)
                if not cpu:
                    torch.cuda.synchronize()
                nvidia_ms.append((time.perf_counter() - started) * 1000)
                nvidia_cpu_ms.append((time.process_time() - cpu_started) * 1000)
                nvidia_frames.append(fake_b.detach().float().cpu())
                log.info("NVIDIA frame %d: %.0f ms", t, nvidia_ms[-1])

        rows: list[dict[str, Any]] = [{
            "side": "nvidia", "engine": "NVIDIA test path (eager, NCHW)",
            "ms_median": statistics.median(nvidia_ms[1:]), "frames_timed": len(nvidia_ms) - 1,
            "cpu_ms_median": statistics.median(nvidia_cpu_ms[1:]),
        }]
        if args.control_threads:
            # NVIDIA against itself with another thread count, step by step from its own history:
            # the float-order noise floor of the reference on these weights.
            threads = torch.get_num_threads()
            torch.set_num_threads(args.control_threads)
            control = []
            with nvidia_runtime(args.grid_sample, cpu), torch.no_grad():
                for index, (a, inst) in enumerate(nvidia_inputs):
                    nvidia.fake_B_prev = None if index == 0 else [p.clone() for p in nvidia_prev[index - 1]]
                    fake_b, _ = nvidia.inference(a, real_b, inst)
                    control.append(float((to_255(fake_b.float().cpu()) - to_255(nvidia_frames[index])).abs().max()))
            torch.set_num_threads(threads)
            rows.append({"side": "nvidia", "engine": f"NVIDIA, {args.control_threads} threads (control)",
                         "max_abs_diff_255_same_history": max(control)})
            log.info("NVIDIA with %d threads vs %d, per step: %s /255", args.control_threads, threads,
                     ", ".join(f"{d:.3f}" for d in control))
        truth: list[torch.Tensor] = []
        if args.control_fp64:
            # NVIDIA's own code in float64, step by step from its fp32 history: how far fp32 itself
            # (NVIDIA's and ours) is from the exact result on these weights.
            saved_dtype = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            for index in range(config.n_scales):
                getattr(nvidia, f"netG{index}").double()
            try:
                with nvidia_runtime(args.grid_sample, cpu), torch.no_grad():
                    for index, (a, inst) in enumerate(nvidia_inputs):
                        nvidia.fake_B_prev = (
                            None if index == 0 else [p.double() for p in nvidia_prev[index - 1]]
                        )
                        fake_b, _ = nvidia.inference(a.double(), real_b.double(), inst.double())
                        truth.append(fake_b.cpu())
            finally:
                torch.set_default_dtype(saved_dtype)
                for index in range(config.n_scales):
                    getattr(nvidia, f"netG{index}").float()
            error = [float((to_255(t) - to_255(f.double())).abs().max()) for t, f in zip(truth, nvidia_frames)]
            rows.append({"side": "nvidia", "engine": "NVIDIA fp32 vs NVIDIA fp64 (control)",
                         "max_abs_diff_255_same_history": max(error)})
            log.info("NVIDIA fp32 vs fp64, per step: %s /255", ", ".join(f"{d:.3f}" for d in error))
        for engine_name in [name.strip() for name in args.engines.split(",") if name.strip()]:
            try:
                options = {"channels_last": False} if args.nchw and engine_name in ("torch", "compile") else {}
                engine = build_engine(engine_name, generator, device, **options)
            except EngineUnavailable as error:
                rows.append({"side": "ours", "engine": engine_name, "skipped": str(error)})
                continue
            ours = OurSequence(generator, engine, [image.to(device) for image in first])
            for k in range(tG - 1):
                ours.add_labels(labels[k].to(device), instances[k].to(device))
            ms, cpu_ms, diffs, over, forced, forced_vs_truth = [], [], [], [], [], []
            for index, t in enumerate(range(tG - 1, frames)):
                if index >= 1:
                    # Teacher-forced check: the same step from NVIDIA's own history.
                    forced_run = OurSequence(generator, engine, [image.to(device) for image in first])
                    forced_run.labels, forced_run.codes = list(ours.labels), list(ours.codes)
                    forced_run.previous = [
                        list(nvidia_prev[index - 1][config.n_scales - 1 - s].to(device).split(1, 0))
                        for s in range(config.n_scales)
                    ]
                    forced_image = forced_run.step(labels[t].to(device), instances[t].to(device))
                    forced.append(float((to_255(forced_image.cpu()) - to_255(nvidia_frames[index])).abs().max()))
                    if truth:
                        forced_vs_truth.append(
                            float((to_255(forced_image.cpu().double()) - to_255(truth[index])).abs().max())
                        )
                started, cpu_started = time.perf_counter(), time.process_time()
                image = ours.step(labels[t].to(device), instances[t].to(device))
                if not cpu:
                    torch.cuda.synchronize()
                ms.append((time.perf_counter() - started) * 1000)
                cpu_ms.append((time.process_time() - cpu_started) * 1000)
                diff = (to_255(image.cpu()) - to_255(nvidia_frames[index])).abs()
                diffs.append(float(diff.max()))
                over.append(float((diff > 2.0).float().mean()))
                log.info("%s frame %d: %.0f ms, max |diff| %.3f /255 free-running, %s /255 from NVIDIA's "
                         "history", engine_name, t, ms[-1], diffs[-1], f"{forced[-1]:.3f}" if index else "-")
            engine.close()
            median = statistics.median(ms[1:])
            rows.append({
                "side": "ours", "engine": engine_name, "ms_median": median, "frames_timed": len(ms) - 1,
                "cpu_ms_median": statistics.median(cpu_ms[1:]),
                "cpu_speedup_vs_nvidia": rows[0]["cpu_ms_median"] / statistics.median(cpu_ms[1:]),
                "speedup_vs_nvidia": rows[0]["ms_median"] / median, "max_abs_diff_255": max(diffs),
                "max_abs_diff_255_same_history": max([diffs[0], *forced]),
                **({"max_abs_diff_255_vs_fp64_same_history": max(forced_vs_truth)} if forced_vs_truth else {}),
                "fraction_over_2_255": max(over), "build_s": engine.build_seconds,
            })

    print(f"\n{args.config} at {width}x{height}, {torch.get_num_threads()} threads, "
          f"{'CPU' if cpu else 'CUDA'}, grid_sample {args.grid_sample}, "
          f"{'checkpoint ' + str(args.checkpoint) if args.checkpoint else 'random weights seed %d' % args.seed}")
    print(f"{'engine':34s} {'ms/frame':>9s} {'speedup':>8s} {'CPU ms':>8s} {'CPU speedup':>11s} "
          f"{'step |diff|/255':>16s} {'free-run |diff|/255':>20s}")
    for row in rows:
        if "skipped" in row:
            print(f"{row['engine']:34s} skipped: {row['skipped']}")
            continue
        if "ms_median" not in row:
            print(f"{row['engine']:34s} {'':>9s} {'':>8s} {'':>8s} {'':>11s} "
                  f"{row['max_abs_diff_255_same_history']:16.3f}")
            continue
        speedup = f"{row['speedup_vs_nvidia']:.2f}x" if "speedup_vs_nvidia" in row else "1.00x"
        diff = f"{row['max_abs_diff_255']:.3f}" if "max_abs_diff_255" in row else "-"
        step = f"{row['max_abs_diff_255_same_history']:.3f}" if "max_abs_diff_255" in row else "-"
        cpu_speedup = f"{row['cpu_speedup_vs_nvidia']:.2f}x" if "cpu_speedup_vs_nvidia" in row else "1.00x"
        print(f"{row['engine']:34s} {row['ms_median']:9.0f} {speedup:>8s} {row['cpu_ms_median']:8.0f} "
              f"{cpu_speedup:>11s} {step:>16s} {diff:>20s}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "config": args.config, "width": width, "height": height, "grid_sample": args.grid_sample,
            "checkpoint": str(args.checkpoint) if args.checkpoint else None, "seed": args.seed,
            "machine": machine_facts(), "rows": rows,
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
