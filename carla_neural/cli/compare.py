"""`carla-neural compare RUN`: metrics between raw and synthesized frames, and an HTML report."""

from __future__ import annotations

import time
from pathlib import Path

import click

from carla_neural.cli.options import threads_option


def _parse_metrics(value: str) -> tuple[str, ...]:
    from carla_neural.compare import ALL_METRICS

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = sorted(set(names) - set(ALL_METRICS))
    if unknown or not names:
        raise click.BadParameter(f"unknown {unknown}; choose from {','.join(ALL_METRICS)}", param_hint="--metrics")
    return names


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--real", "real_dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder of real photographs: adds FID/KID of neural and raw vs real.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where metrics.json, report.html and plots/ go (default: the run folder).")
@click.option("--metrics", "metrics", default="warp,tof,fid,color,seg", show_default=True,
              help="Comma-separated: warp (warping error), tof, fid (FID and KID), color (per class), "
                   "seg (segmenter mIoU / pixel accuracy against the label ids).")
@click.option("--fid-stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Feed every n-th frame to InceptionV3 (~0.25 s per image on a CPU).")
@click.option("--fid-max-frames", type=click.IntRange(min=0), default=500, show_default=True,
              help="Raise the stride so at most this many frames per stream reach InceptionV3 (0: no cap).")
@click.option("--fid-frames", type=click.IntRange(min=2), default=None,
              help="A quick FID/KID: feed exactly N frames per stream, spread evenly over the run "
                   "(instead of --fid-stride / --fid-max-frames).")
@click.option("--max-real", type=click.IntRange(min=2), default=None, help="Use at most this many --real images.")
@click.option("--dis-preset", type=click.Choice(["ultrafast", "fast", "medium"]), default="fast",
              show_default=True, help="OpenCV DIS optical-flow preset for tOF.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for InceptionV3 (cpu, cuda).")
@click.option("--segmenter", default="bundled", show_default=True,
              help="Segmenter for seg: bundled, or a folder from `carla-neural train-segmenter`.")
@click.option("--gap/--no-gap", "with_gap", default=True, show_default=True,
              help="Also report the gap metrics of the run's label maps vs real ones (carla-neural gap), "
                   "and after its label transform when it was recorded with one.")
@click.option("--gap-reference", type=click.Path(path_type=Path), default=None,
              help="Statistics JSON for the gap metrics (default: the shipped Cityscapes statistics).")
@threads_option
def command(run: Path, real_dir: Path | None, out_dir: Path | None, metrics: str, fid_stride: int,
            fid_max_frames: int, fid_frames: int | None, max_real: int | None, dis_preset: str, device: str,
            segmenter: str, with_gap: bool, gap_reference: Path | None, threads: int | None) -> None:
    """Compare raw and neural frames of the run folder RUN (from `carla-neural record`).

    RUN may be a style sweep (`record --styles`): every style's run is compared, and RUN gets
    styles_compare.json (per style and per class) and styles.png (the same frames in each style).
    """
    if "fid" in metrics:  # InceptionV3 is the only torch compare runs
        from renderer.cpus import set_torch_threads

        set_torch_threads(threads)
    from carla_neural.compare import CompareOptions
    from carla_neural.compare.style_sweep import is_style_sweep

    try:
        options = CompareOptions(metrics=_parse_metrics(metrics), real_dir=real_dir, max_real=max_real,
                                 fid_stride=fid_stride, fid_max_frames=fid_max_frames or None, fid_frames=fid_frames,
                                 dis_preset=dis_preset, device=device, segmenter=segmenter)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    gap = (gap_reference,) if with_gap else None
    if is_style_sweep(run):
        _compare_sweep(run, options, out_dir, gap)
    else:
        _compare_one(run, options, out_dir, gap)


def _compare_sweep(sweep: Path, options, out_dir: Path | None, gap: tuple[Path | None] | None) -> None:
    """Compare every style run of a sweep, then write the sweep's figures and picture."""
    import json

    from carla_neural.compare.style_sweep import sweep_picture, sweep_runs, sweep_summary
    from carla_neural.pictures import write_png

    try:
        runs = sweep_runs(sweep)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    metrics = {style: _compare_one(run, options, None if out_dir is None else out_dir / run.name, gap)
               for style, run in runs.items()}
    target = out_dir or sweep
    target.mkdir(parents=True, exist_ok=True)
    summary = sweep_summary(metrics)
    summary_path = target / "styles_compare.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    picture = write_png(sweep_picture(runs), target / "styles.png")
    spread = ", ".join(f"{row['name']} {row['max_rgb_distance']:.0f}" for row in
                       sorted(summary["class_spread"], key=lambda row: -row["max_rgb_distance"])[:4])
    click.echo(f"compare: style sweep of {len(runs)} runs; largest per-class colour spread (RGB distance) "
               f"{spread or '-'}; wrote {summary_path}, {picture}")


def _compare_one(run: Path, options, out_dir: Path | None, gap: tuple[Path | None] | None) -> dict:
    """Compare one run folder, write its report and print the closing line; returns its metrics.
    ``gap``: (the gap statistics, None for the shipped ones) to add the label-map gap, or None."""
    with_gap = gap is not None
    gap_reference = gap[0] if gap is not None else None
    from tqdm import tqdm

    from carla_neural.compare import RunFolder, RunFolderError, compare_run, write_report
    from carla_neural.compare.compute import check_inputs
    from carla_neural.compare.run_folder import count_images

    started = time.perf_counter()
    try:
        run_folder = RunFolder(run)
        check_inputs(run_folder, options)  # before the progress bar, so errors stand alone
        if with_gap:
            from domain_adapt.gap import DEFAULT_REFERENCE, load_stats

            gap_reference = gap_reference or DEFAULT_REFERENCE
            load_stats(gap_reference)  # a bad reference fails here, before anything is computed
        total = len(run_folder)
        if options.real_dir is not None:
            real_count = count_images(options.real_dir)
            total += min(real_count, options.max_real) if options.max_real else real_count
        with tqdm(total=total, unit="frame", desc="frames", dynamic_ncols=True) as progress:
            result = compare_run(run, options, progress)
        if with_gap:
            from domain_adapt.run_gap import run_gap

            result.metrics["label_gap"] = run_gap(run, gap_reference)
        paths = write_report(result, run_folder, out_dir or run)
    except (RunFolderError, ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    summary = result.metrics
    parts = [f"{summary['frames']} frames"]
    if "warping_error" in summary:
        parts.append(f"warp raw {summary['warping_error']['raw']:.4g} neural {summary['warping_error']['neural']:.4g}")
    if "tof" in summary and summary["tof"]["mean_px"] is not None:
        parts.append(f"tOF {summary['tof']['mean_px']:.3g} px")
    if "segmentation" in summary and summary["segmentation"]["neural"]["miou"] is not None:
        seg = summary["segmentation"]
        parts.append(f"seg mIoU neural {seg['neural']['miou']:.3f} raw {seg['raw']['miou']:.3f}")
    if "fid" in summary:
        parts.append(f"FID neural-raw {summary['fid']['neural_vs_raw']:.1f}")
    if "label_gap" in summary:
        label_gap = summary["label_gap"]
        if "absent" in label_gap:
            parts.append("no gap metrics (no label PNGs)")
        else:
            js = {variant: gap["classes"]["js_divergence"] for variant, gap in label_gap["gap"].items()}
            parts.append("label gap class JS " + ", ".join(f"{variant.replace('_', ' ')} {value}"
                                                         for variant, value in js.items()))
    click.echo(f"compare: {', '.join(parts)} in {time.perf_counter() - started:.1f} s; wrote "
               f"{paths.metrics_json}, {paths.report_html}, {len(paths.plots)} plots in {paths.report_html.parent / 'plots'}")
    return summary
