"""Styles as a user runs them: train with a feature encoder, recompute the clusters, render in a
style or in a photo's style, record a style sweep and compare it, cycle styles while driving."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

CLI = [str(Path(sys.executable).with_name("carla-neural"))]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def _labels_folder(root: Path, frames: int = 4) -> Path:
    folder = root / "labels"
    folder.mkdir(parents=True)
    for t in range(frames):
        labels = np.full((32, 64), 7, np.uint8)
        labels[:10] = 23
        labels[16:26, 8:28] = 26
        cv2.imwrite(str(folder / f"f{t:03d}.png"), labels)  # a static scene
    return folder


def _pngs(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(path)) for path in sorted(folder.glob("*.png"))]


@pytest.mark.slow
def test_train_with_styles_then_recompute_the_clusters(tmp_path: Path, two_colour_dataset: Path) -> None:
    out = tmp_path / "train"
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps({"generator": {
        "ngf": 8, "n_downsampling": 2, "n_blocks": 1, "n_blocks_local": 0, "n_scales": 1,
        "single_g": {"kind": "global", "ngf": 4, "n_downsampling": 2, "n_blocks": 1}}}))
    result = run("train", "--data", str(two_colour_dataset), "--out", str(out), "--model", str(model),
                 "--size", "64x32", "--steps", "2", "--clip-length", "3", "--max-clip-length", "3", "--no-vgg",
                 "--device", "cpu", "--feature-channels", "3", "--style-clusters", "3", "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 styles" in result.stdout
    generator = out / "generator"
    facts = json.loads((generator / "config.json").read_text())
    assert facts["generator"]["feat_nc"] == 3 and facts["metadata"]["styles"]["k"] == 3
    assert (generator / "styles.safetensors").is_file()

    result = run("styles", str(generator), "--data", str(two_colour_dataset), "--k", "2", "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "styles: 2 per class" in result.stdout
    assert json.loads((generator / "config.json").read_text())["metadata"]["styles"]["k"] == 2
    rendered = tmp_path / "rendered"
    result = run("render", "--checkpoint", str(generator), "--labels", str(_labels_folder(tmp_path)),
                 "--out", str(rendered), "--style", "1", "--threads", "1")
    assert result.returncode == 0 and "style 1" in result.stdout, result.stderr[-3000:]


def test_render_in_styles_and_in_a_photos_style(tmp_path: Path, tiny_style_checkpoint: Path,
                                                two_colour_dataset: Path) -> None:
    labels = _labels_folder(tmp_path)
    outputs = {}
    for name, extra in {"s0": ["--style", "0"], "s1": ["--style", "1"], "default": []}.items():
        result = run("render", "--checkpoint", str(tiny_style_checkpoint), "--labels", str(labels),
                     "--out", str(tmp_path / name), "--threads", "1", *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = _pngs(tmp_path / name)
    assert all(np.abs(a.astype(int) - b).mean() > 2.0 for a, b in zip(outputs["s0"], outputs["s1"]))
    assert all(not np.array_equal(a, b) for a, b in zip(outputs["s0"], outputs["default"]))

    photo = sorted((two_colour_dataset / "train_B" / "seq0000").glob("*.jpg"))[0]
    photo_labels = two_colour_dataset / "train_A" / "seq0000" / (photo.stem + ".png")
    for name, extra in {"photo": ["--style-labels", str(photo_labels)], "photo_segmented": []}.items():
        result = run("render", "--checkpoint", str(tiny_style_checkpoint), "--labels", str(labels),
                     "--out", str(tmp_path / name), "--style-from", str(photo), "--threads", "1", *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"photo {photo.name}" in result.stdout
        assert len(_pngs(tmp_path / name)) == 4


def test_bad_styles_are_one_line_errors_and_write_nothing(tmp_path: Path, tiny_style_checkpoint: Path,
                                                         tiny_checkpoint: Path) -> None:
    labels = _labels_folder(tmp_path)
    cases = [
        (["--checkpoint", str(tiny_style_checkpoint), "--style", "5"], "--style 5: checkpoint .* has styles 0..1"),
        (["--checkpoint", str(tiny_checkpoint), "--style", "2"], "--style: checkpoint .* has no styles"),
        (["--checkpoint", "bundled", "--style", "9"], "--style 9: checkpoint bundled has styles 0..7"),
        (["--checkpoint", str(tiny_style_checkpoint), "--style", "0", "--style-from", str(labels / "f000.png")],
         "not both"),
    ]
    for args, message in cases:
        result = run("render", "--labels", str(labels), "--out", str(tmp_path / "out"), *args)
        assert result.returncode == 2, result.stdout
        assert re.search(message, result.stderr), result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_record_a_style_sweep_and_compare_it(tmp_path: Path, tiny_style_checkpoint: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run("record", "urban_day", "--world", "builtin", "--frames", "3", "--checkpoint",
                 str(tiny_style_checkpoint), "--styles", "0,1", "--out", str(sweep), "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    index = json.loads((sweep / "styles.json").read_text())
    assert index["runs"] == ["style_0", "style_1"]
    label_videos = [[cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((sweep / name / "frames" / "label_ids").glob("*.png"))]
                    for name in index["runs"]]
    assert len(label_videos[0]) == 3
    for other in label_videos[1:]:  # identical label video in every style
        assert all(np.array_equal(a, b) for a, b in zip(label_videos[0], other))
    neural = [_pngs(sweep / name / "frames" / "neural") for name in ("style_0", "style_1")]
    assert all(np.abs(a.astype(int) - b).mean() > 1.0 for a, b in zip(*neural))
    assert json.loads((sweep / "style_1" / "run.json").read_text())["style"] == "style 1"

    result = run("compare", str(sweep), "--metrics", "warp,color")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((sweep / "styles_compare.json").read_text())
    assert set(figures["styles"]) == {"0", "1"} and figures["reference"] is None  # no 'default' run in it
    assert max(row["max_rgb_distance"] for row in figures["class_spread"]) > 1.0
    picture = cv2.imread(str(sweep / "styles.png"))
    assert picture is not None and picture.shape[1] > 3 * 64  # labels | style 0 | style 1


def test_drive_cycles_styles_on_y(tiny_style_checkpoint: Path) -> None:
    result = run("drive", "--world", "builtin", "--checkpoint", str(tiny_style_checkpoint), "--size", "64x32",
                 "--headless", "--frames", "12", "--keys", "2:y,6:y", "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("style 1"), result.stdout  # none -> style 0 -> style 1


def test_evaluate_in_several_styles(tmp_path: Path, tiny_style_checkpoint: Path) -> None:
    figures_path = tmp_path / "styles.json"
    result = run("evaluate", "--checkpoint", str(tiny_style_checkpoint), "--sequences", "1", "--frames", "6",
                 "--size", "64x32", "--no-fid", "--no-seg", "--style", "default", "--style", "0", "--style", "1",
                 "--json", str(figures_path), "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "per-class colour spread across styles" in result.stdout
    figures = json.loads(figures_path.read_text())["styles"][str(tiny_style_checkpoint)]
    assert figures["reference"] == "default" and figures["styles"]["default"]["warping_vs_default"] == 1.0
    assert max(row["max_rgb_distance"] for row in figures["class_spread"]) > 2.0  # the two styles differ


def test_evaluate_styles_on_real_data_gives_the_photos_spread_for_scale(tmp_path: Path, tiny_style_checkpoint: Path,
                                                                        two_colour_dataset: Path) -> None:
    figures_path = tmp_path / "styles.json"
    result = run("evaluate", "--checkpoint", str(tiny_style_checkpoint), "--data", str(two_colour_dataset),
                 "--sequences", "seq0001", "--size", "64x32", "--no-fid", "--no-seg", "--style", "default",
                 "--style", "0", "--style", "1", "--json", str(figures_path), "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the photos' across the dataset's sequences in brackets" in result.stdout
    photos = json.loads(figures_path.read_text())["photo_class_spread"]
    assert photos["sequences"] == ["seq0000", "seq0001"]  # every sequence with photos, not only the held-out one
    assert {row["name"] for row in photos["class_spread"]} == {"road", "sky"}


def test_styles_strength_alone_keeps_the_clusters_and_weakens_the_render(tmp_path: Path,
                                                                        tiny_style_checkpoint: Path) -> None:
    import shutil

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_style_checkpoint, checkpoint)  # the fixture is shared: change a copy
    centres = (checkpoint / "styles.safetensors").read_bytes()
    labels = _labels_folder(tmp_path)
    renders = {}
    for name in ("full", "half"):
        if name == "half":
            result = run("styles", str(checkpoint), "--strength", "0.5")
            assert result.returncode == 0, result.stderr[-3000:]
            assert "strength 1 -> 0.5 for the 2 stored styles" in result.stdout
            assert json.loads((checkpoint / "config.json").read_text())["metadata"]["styles"]["strength"] == 0.5
        result = run("render", "--checkpoint", str(checkpoint), "--labels", str(labels), "--out",
                     str(tmp_path / name), "--style", "1", "--threads", "1")
        assert result.returncode == 0, result.stderr[-3000:]
        renders[name] = _pngs(tmp_path / name)
    assert all(np.abs(a.astype(int) - b).mean() > 1.0 for a, b in zip(renders["full"], renders["half"]))
    from safetensors.numpy import load

    assert np.array_equal(load((checkpoint / "styles.safetensors").read_bytes())["centers"],
                          load(centres)["centers"])  # the clusters themselves are kept

    config = json.loads((checkpoint / "config.json").read_text())
    config["metadata"]["styles"]["strength"] = 3
    (checkpoint / "config.json").write_text(json.dumps(config))
    result = run("render", "--checkpoint", str(checkpoint), "--labels", str(labels), "--out",
                 str(tmp_path / "bad"), "--style", "1", "--threads", "1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "config.json: metadata.styles.strength is 3" in result.stderr, result.stderr
    result = run("styles", str(checkpoint), "--strength", "0.5")  # the fix the error names works
    assert result.returncode == 0, result.stderr[-3000:]
    assert "strength 3 -> 0.5" in result.stdout
    result = run("render", "--checkpoint", str(checkpoint), "--labels", str(labels), "--out",
                 str(tmp_path / "mended"), "--style", "1", "--threads", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(np.array_equal(a, b) for a, b in zip(_pngs(tmp_path / "mended"), renders["half"]))


def test_styles_strength_errors_are_one_line(tmp_path: Path, tiny_style_checkpoint: Path,
                                             tiny_checkpoint: Path) -> None:
    cases = [
        ([str(tiny_style_checkpoint)], "give --data DIR to compute the clusters, or --strength S"),
        ([str(tiny_style_checkpoint), "--strength", "0"], "--strength"),
        ([str(tiny_style_checkpoint), "--strength", "1.5"], "--strength"),
        ([str(tiny_checkpoint), "--strength", "0.5"], "has no feature encoder"),
    ]
    for args, message in cases:
        result = run("styles", *args)
        assert result.returncode == 2, result.stdout
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
