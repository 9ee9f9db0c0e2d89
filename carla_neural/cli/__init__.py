"""The `carla-neural` command: one click group whose subcommands load on first use."""

from __future__ import annotations

import importlib
import logging

import click

# Subcommand name -> "module:attribute". Loading lazily keeps `carla-neural --help` fast and
# lets a worker host run `carla-neural worker` without the client-side dependencies.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("carla_neural.cli.demo", "Built-in world -> worker -> display and recorder."),
    "drive": ("carla_neural.cli.drive", "Drive a car with live neural rendering."),
    "record": ("carla_neural.cli.record", "Run a scenario in lock-step mode and record every stream."),
    "sweep": ("carla_neural.cli.sweep", "Record a grid of scenario variations (one run per cell) on Ray."),
    "compare": ("carla_neural.cli.compare", "Metrics and an HTML report: raw vs synthesized frames."),
    "worker": ("carla_neural.cli.worker", "Serve the renderer over ZeroMQ."),
    "render": ("carla_neural.cli.render", "Render folders of label PNGs to RGB PNGs."),
    "convert": ("carla_neural.cli.convert", "Convert an NVIDIA checkpoint to safetensors + JSON."),
    "bench": ("carla_neural.cli.bench", "Benchmark renderer engines, sizes and configurations."),
    "bench-stages": ("carla_neural.stage_bench", "Cost per frame of each pipeline stage, and end-to-end fps."),
    "bench-transport": ("carla_neural.bench_transport", "Round trip of one frame over ZeroMQ, zero-copy vs copying."),
    "bench-world": ("carla_neural.sources.world.bench", "ms per frame of the built-in world, per stage."),
    "dataset": ("carla_neural.cli.dataset", "Export datasets in NVIDIA's vid2vid layout."),
    "train": ("carla_neural.cli.train", "Train or fine-tune a vid2vid generator."),
    "train-bundled": ("carla_neural.cli.train_bundled", "Train the bundled lite model (make model)."),
    "adapt": ("carla_neural.cli.adapt", "Fine-tune a generator on simulator label maps against unpaired real video."),
    "gap": ("carla_neural.cli.gap", "Label-map gap metrics of a run vs real maps -> gap.json + report.html."),
    "gap-reference": ("carla_neural.cli.gap_reference", "Make the reference statistics of real label maps."),
    "train-segmenter": ("carla_neural.cli.train_segmenter", "Train the segmenter for semantic consistency."),
    "evaluate": ("carla_neural.cli.evaluate", "PSNR, FID/KID and warping error on held-out real or built-in data."),
    "pictures": ("carla_neural.cli.pictures", "Strips of rendered frames beside their labels and photos."),
    "styles": ("carla_neural.cli.styles", "Cluster a style checkpoint's training features into styles."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when they are invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="carla-neural")
def main(verbose: int) -> None:
    """Neural rendering for the CARLA driving simulator (vid2vid)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
