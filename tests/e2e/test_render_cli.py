"""`carla-neural render` and `carla-neural convert` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

CLI = [str(Path(sys.executable).with_name("carla-neural"))]


@pytest.fixture(scope="module")
def nvidia_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An NVIDIA-style checkpoint folder (tiny random weights) with label2city_single beside it."""
    from renderer.model.config import GeneratorConfig, SingleGConfig
    from renderer.model.generator import build_generator

    config = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=2, n_blocks_local=1, n_scales=2,
                             single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1))
    generator = build_generator(config, seed=0)
    root = tmp_path_factory.mktemp("checkpoints")
    folder = root / "label2city_tiny"
    folder.mkdir()
    for scale, module in enumerate(generator.scales):
        torch.save(module.state_dict(), folder / f"latest_net_G{scale}.pth")
    (root / "label2city_single").mkdir()
    torch.save(generator.single_g.state_dict(), root / "label2city_single" / "latest_net_G_1024.pth")
    return folder


def write_test_a(root: Path, sequences: dict[str, int], size=(64, 32)) -> tuple[Path, Path]:
    """NVIDIA's test_A / test_inst layout: labelId and instance-id PNGs, one folder per sequence."""
    width, height = size
    labels_dir, inst_dir = root / "test_A", root / "test_inst"
    for name, n in sequences.items():
        (labels_dir / name).mkdir(parents=True)
        (inst_dir / name).mkdir(parents=True)
        for t in range(n):
            labels = np.full((height, width), 7, np.uint8)
            labels[: height // 3] = 23
            labels[height // 2 :, 10 + t : 30 + t] = 26
            instances = labels.astype(np.uint16)
            instances[height // 2 :, 10 + t : 20 + t] = 26001
            cv2.imwrite(str(labels_dir / name / f"frame_{t:04d}.png"), labels)
            cv2.imwrite(str(inst_dir / name / f"frame_{t:04d}.png"), instances)
    return labels_dir, inst_dir


def test_render_test_a_layout_writes_one_png_per_input(tmp_path: Path, nvidia_folder: Path) -> None:
    labels_dir, inst_dir = write_test_a(tmp_path, {"seq_a": 4, "seq_b": 3})
    out = tmp_path / "out"
    result = subprocess.run(
        [*CLI, "render", "--checkpoint", str(nvidia_folder), "--labels", str(labels_dir),
         "--instances", str(inst_dir), "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name, n in {"seq_a": 4, "seq_b": 3}.items():
        written = sorted(p.name for p in (out / name).iterdir())
        assert written == [f"frame_{t:04d}.png" for t in range(n)]
        rgb = cv2.imread(str(out / name / written[-1]), cv2.IMREAD_UNCHANGED)
        assert rgb.shape == (32, 64, 3) and rgb.dtype == np.uint8
    assert "rendered 7 frames in 2 sequence(s) at 64x32" in result.stdout


def test_render_single_folder_with_size_and_our_converted_checkpoint(tmp_path: Path, nvidia_folder: Path) -> None:
    labels_dir, _ = write_test_a(tmp_path, {"only": 3}, size=(96, 48))
    ours = tmp_path / "ours"
    converted = subprocess.run([*CLI, "convert", str(nvidia_folder), str(ours)],
                               capture_output=True, text=True, timeout=120)
    assert converted.returncode == 0, converted.stderr
    assert "ngf 8, 2 downsamplings, 2 scales, fg on, single G global ngf 4" in converted.stdout
    assert (ours / "config.json").is_file() and (ours / "model.safetensors").is_file()
    out = tmp_path / "out"
    result = subprocess.run(
        [*CLI, "render", "--checkpoint", str(ours), "--labels", str(labels_dir / "only"),
         "--out", str(out), "--size", "64x32", "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    frames = sorted(out.iterdir())
    assert [p.name for p in frames] == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    assert cv2.imread(str(frames[0])).shape == (48, 96, 3)  # back at the input size
    assert "at 64x32" in result.stdout


def test_render_reports_bad_inputs_clearly(tmp_path: Path, nvidia_folder: Path) -> None:
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    cv2.imwrite(str(labels_dir / "a.png"), np.full((32, 64), 255, np.uint8))
    result = subprocess.run(
        [*CLI, "render", "--checkpoint", str(nvidia_folder), "--labels", str(labels_dir),
         "--out", str(tmp_path / "out"), "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "label id 255 is outside 0..34" in result.stderr


def test_adapt_labels_renders_the_transformed_maps(tmp_path: Path, nvidia_folder: Path) -> None:
    from domain_adapt.transform import LabelTransform, load_transform_config

    labels_dir, _ = write_test_a(tmp_path / "sim", {"seq": 3})
    for path in (labels_dir / "seq").iterdir():
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        labels[-6:, :] = 6  # ground, which the real maps never hold
        cv2.imwrite(str(path), labels)
    # The same maps transformed here, to render without the option.
    transform = LabelTransform(load_transform_config())
    by_hand = tmp_path / "by_hand" / "seq"
    by_hand.mkdir(parents=True)
    for path in sorted((labels_dir / "seq").iterdir()):
        cv2.imwrite(str(by_hand / path.name), transform(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)))

    def render(labels: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "render", "--checkpoint", str(nvidia_folder), "--labels", str(labels),
                               "--out", str(out), "--device", "cpu", *extra],
                              capture_output=True, text=True, timeout=120)

    adapted = render(labels_dir, tmp_path / "adapted", "--adapt-labels")
    assert adapted.returncode == 0, adapted.stderr
    assert "label transform" in adapted.stdout and "ms/frame" in adapted.stdout
    # The by-hand maps differ from the inputs (ground became sidewalk), so equal frames mean the
    # renderer got the transformed maps.
    assert render(by_hand.parent, tmp_path / "reference").returncode == 0
    for name in sorted(p.name for p in (labels_dir / "seq").iterdir()):
        ours = cv2.imread(str(tmp_path / "adapted" / "seq" / name))
        assert np.array_equal(ours, cv2.imread(str(tmp_path / "reference" / "seq" / name)))
    bad = tmp_path / "bad.json"
    bad.write_text('{"median_kernel": 2}')
    failed = render(labels_dir, tmp_path / "bad", "--transform-config", str(bad))
    assert failed.returncode == 1 and str(bad) in failed.stderr and "'median_kernel'" in failed.stderr
    assert "Traceback" not in failed.stderr and not (tmp_path / "bad").exists()


def test_render_with_the_openvino_engine_matches_pytorch(
    tmp_path: Path, tiny_checkpoint: Path, openvino_cache: Path
) -> None:
    from renderer.engines import engine_status

    usable, reason = engine_status("openvino", "cpu")
    if not usable:
        pytest.skip(reason)
    labels_dir, inst_dir = write_test_a(tmp_path, {"seq": 3})
    env = {**os.environ, "CARLA_NEURAL_CACHE": str(openvino_cache), "OMP_NUM_THREADS": "1"}
    frames = {}
    for engine in ("torch", "openvino"):
        out = tmp_path / engine
        result = subprocess.run(
            [*CLI, "render", "--checkpoint", str(tiny_checkpoint), "--labels", str(labels_dir),
             "--instances", str(inst_dir), "--out", str(out), "--device", "cpu", "--engine", engine],
            capture_output=True, text=True, timeout=600, env=env,
        )
        assert result.returncode == 0, result.stderr
        assert f"engine {engine}" in result.stdout
        frames[engine] = [cv2.imread(str(path)).astype(int) for path in sorted((out / "seq").iterdir())]
    assert len(frames["openvino"]) == 3
    # Frame 0 is the single-image start; frames 1-2 run the engine from the same history.
    for got, expected in zip(frames["openvino"], frames["torch"]):
        assert np.abs(got - expected).max() <= 1
