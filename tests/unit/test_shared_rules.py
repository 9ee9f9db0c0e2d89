"""Rules with one home: WxH sizes, the renderer's default threads, nearest resize of label maps,
instance edges in numpy and torch."""

from __future__ import annotations

import click
import cv2
from click.testing import CliRunner
import numpy as np
import pytest
import torch

from renderer.cpus import available_cpus, default_threads, set_torch_threads
from renderer.edges import instance_edges
from renderer.model.inputs import instance_edges as torch_instance_edges
from renderer.resize import resize_nearest
from renderer.sizes import WxH, WxHList, parse_size


def test_sizes_read_widthxheight_and_name_the_limits() -> None:
    assert parse_size("512x256") == (512, 256) and parse_size(" 64 X 32 ") == (64, 32)
    for text in ("512", "512x", "ax256", "512 256"):
        with pytest.raises(ValueError, match="is not WIDTHxHEIGHT, e.g. 512x256"):
            parse_size(text)
    with pytest.raises(ValueError, match="must be 16..4096"):
        parse_size("8x8", min_side=16, max_side=4096)
    with pytest.raises(ValueError, match="must be even"):
        parse_size("33x32", even=True)


def test_the_click_type_turns_a_bad_size_into_a_usage_error() -> None:
    @click.command()
    @click.option("--size", type=WxH(min_side=16), default="512x256")
    def show(size: tuple[int, int]) -> None:
        click.echo(f"{size[0]} {size[1]}")

    runner = CliRunner()
    assert runner.invoke(show, []).output == "512 256\n"
    assert runner.invoke(show, ["--size", "128x64"]).output == "128 64\n"
    result = runner.invoke(show, ["--size", "8x8"])
    assert result.exit_code == 2 and "8x8: each side must be at least 16" in result.output


def test_the_list_type_reads_comma_separated_sizes_with_the_same_limits() -> None:
    @click.command()
    @click.option("--sizes", type=WxHList(min_side=16), default="512x256,1024x512")
    def show(sizes: list[tuple[int, int]]) -> None:
        click.echo(repr(sizes))

    runner = CliRunner()
    assert runner.invoke(show, []).output == "[(512, 256), (1024, 512)]\n"
    assert runner.invoke(show, ["--sizes", " 64x32 ,"]).output == "[(64, 32)]\n"
    for text, message in (("64x32,8x8", "8x8: each side must be at least 16"), (",", "at least one WIDTHxHEIGHT"),
                          ("64x32,big", "'big' is not WIDTHxHEIGHT")):
        result = runner.invoke(show, ["--sizes", text])
        assert result.exit_code == 2 and message in result.output, text


def test_every_command_line_of_the_package_is_click() -> None:
    """No argparse CLI in carla_neural/ or renderer/ beside the click group (bench/nvidia_reference.py
    runs NVIDIA's code, outside the package)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = [str(path.relative_to(root)) for package in ("carla_neural", "renderer")
             for path in (root / package).rglob("*.py") if "import argparse" in path.read_text()]
    assert found == []


def test_default_threads_are_half_the_cpus_we_may_use() -> None:
    assert default_threads() == max(1, len(available_cpus()) // 2)
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(None) == default_threads() == torch.get_num_threads()
        assert set_torch_threads(1) == 1 == torch.get_num_threads()
        with pytest.raises(ValueError, match="at least 1"):
            set_torch_threads(0)
    finally:
        torch.set_num_threads(before)


def test_nearest_resize_samples_pixel_centres_like_pil_not_opencvs_corner_rule() -> None:
    rng = np.random.default_rng(0)
    label_ids = rng.integers(0, 34, (96, 160), dtype=np.uint8)
    for width, height in ((40, 24), (80, 48), (64, 32), (160, 96)):  # down by 4, 2, 2.5x3, 1
        ours = resize_nearest(label_ids, width, height)
        assert np.array_equal(ours, cv2.resize(label_ids, (width, height), interpolation=cv2.INTER_NEAREST_EXACT))
    # Downscaled 4x the rule picks the second of each 4 pixels, where INTER_NEAREST picks the first.
    ramp = np.arange(16, dtype=np.uint8)[None].repeat(2, 0)
    assert resize_nearest(ramp, 4, 2)[0].tolist() == [2, 6, 10, 14]
    assert cv2.resize(ramp, (4, 2), interpolation=cv2.INTER_NEAREST)[0].tolist() == [0, 4, 8, 12]


def test_instance_edges_are_one_rule_in_numpy_and_torch() -> None:
    rng = np.random.default_rng(1)
    instance_ids = rng.integers(0, 4, (3, 12, 17)).astype(np.int32)
    ours = np.stack([instance_edges(ids) for ids in instance_ids])
    assert np.array_equal(torch_instance_edges(torch.from_numpy(instance_ids))[:, 0].bool().numpy(), ours)
    single = np.zeros((4, 4), np.int32)
    single[1:3, 1:3] = 26001
    assert instance_edges(single).sum() == 12  # the 2x2 object and its 8 4-neighbours
