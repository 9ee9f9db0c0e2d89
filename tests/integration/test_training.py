"""Training on a tiny exported built-in-world dataset: loss falls, PSNR rises; resume continues the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from carla_neural.dataset_export import ExportConfig, export_dataset
from renderer.model.config import GeneratorConfig, SingleGConfig
from renderer.training.config import ConfigError, TrainConfig
from renderer.training.datasets import ClipDataset, DatasetError, scan_dataset
from renderer.training.losses import LossWeights
from renderer.training.trainer import Trainer

TINY = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=1, n_scales=2,
                       single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_dataset")
    export_dataset(ExportConfig(out=str(root), world="builtin", sequences=1, frames=6, width=64, height=32, seed=3,
                                warmup=3))
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.json"
    path.write_text(json.dumps({"generator": TINY.to_dict()}))
    return path


def _config(data: Path, model: Path, out: Path, **changes) -> TrainConfig:
    values = dict(datasets=[str(data)], crop_width=64, crop_height=32, model=str(model), steps=4, clip_length=4,
                  max_clip_length=4, d_channels=8, d_layers=2, d_scales=1, temporal_strides=1,
                  weights=LossWeights(l1=10.0), out_dir=str(out), seed=0, device="cpu", save_every=2,
                  image_every=1000, log_every=1)
    values.update(changes)
    return TrainConfig(**values).validate()


@pytest.mark.slow
def test_short_overfit_run_loss_falls_and_psnr_rises(tiny_dataset, tiny_model, tmp_path) -> None:
    config = _config(tiny_dataset, tiny_model, tmp_path / "run", steps=24, flip=False, lr=1e-3, decay_start=24,
                     save_every=100)
    trainer = Trainer(config)
    history = trainer.train(progress=False)
    trainer.close()
    psnr = [record.values["PSNR"] for record in history]
    l1 = [record.values["G_L1"] for record in history]
    assert sum(psnr[-4:]) / 4 > sum(psnr[:4]) / 4 + 1.0, psnr
    assert sum(l1[-4:]) / 4 < 0.8 * sum(l1[:4]) / 4, l1
    assert (tmp_path / "run" / "generator" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "train_log.jsonl").read_text().count("\n") == 24
    assert list((tmp_path / "run" / "tensorboard").iterdir())


def test_resume_continues_the_same_run(tiny_dataset, tiny_model, tmp_path) -> None:
    straight = Trainer(_config(tiny_dataset, tiny_model, tmp_path / "straight"))
    straight.train(progress=False)
    straight.close()

    interrupted = Trainer(_config(tiny_dataset, tiny_model, tmp_path / "resumed"))
    interrupted.train(progress=False, until=2)
    saved_state = {k: v.clone() for k, v in interrupted.opt_g.state_dict()["state"][0].items()}
    interrupted.close()

    resumed = Trainer(_config(tiny_dataset, tiny_model, tmp_path / "resumed"))
    assert resumed.step == 2
    restored = resumed.opt_g.state_dict()["state"][0]
    for key, value in saved_state.items():
        assert torch.equal(restored[key], value), key
    resumed.train(progress=False)
    resumed.close()
    assert resumed.step == 4
    for (name, a), (_, b) in zip(straight.generator.state_dict().items(), resumed.generator.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), name
    lines = (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def test_frame_by_frame_baseline_trains_and_saves_its_kind(tiny_dataset, tiny_model, tmp_path) -> None:
    trainer = Trainer(_config(tiny_dataset, tiny_model, tmp_path / "base", temporal=False, steps=2))
    history = trainer.train(progress=False)
    trainer.close()
    assert "F_Flow" not in history[-1].values and "PSNR" in history[-1].values
    meta = json.loads((tmp_path / "base" / "generator" / "config.json").read_text())
    assert meta["metadata"]["temporal"] is False and meta["generator"]["single_g"] is None


def test_temporal_model_warm_starts_frame_by_frame_then_trains_its_temporal_path(tiny_dataset, tiny_model,
                                                                               tmp_path) -> None:
    config = _config(tiny_dataset, tiny_model, tmp_path / "warm", steps=4, frame_steps=2)
    trainer = Trainer(config)
    start = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    history = trainer.train(progress=False, until=2)
    after_frames = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    trainer.train(progress=False)
    trainer.close()

    def changed(before: dict, after: dict, part: str) -> bool:
        return any(not torch.equal(before[k], after[k]) for k in before if part in k)

    # Frame phase: the baseline's objective on every frame; the hallucination path learns, the flow
    # head does not (it is not used yet), and the single-image generator keeps learning on frame 0.
    assert all("B_PSNR" in r.values and "S_PSNR" in r.values and "F_Flow" not in r.values for r in history[:2])
    assert changed(start, after_frames, "model_final_img") and changed(start, after_frames, "single_g.")
    assert not changed(start, after_frames, "model_final_flow")
    # Then temporal clips: flow, warping and the temporal discriminator come in.
    assert all("F_Flow" in r.values and "D_temporal" in r.values and "B_PSNR" not in r.values
               for r in trainer.history[2:])
    assert changed(after_frames, trainer.generator.state_dict(), "model_final_flow")
    assert json.loads((tmp_path / "warm" / "train_config.json").read_text())["frame_steps"] == 2


def test_discriminator_warm_up_keeps_the_generator_still_while_the_discriminators_learn(tiny_dataset, tiny_model,
                                                                                      tmp_path) -> None:
    config = _config(tiny_dataset, tiny_model, tmp_path / "dwarm", steps=3, d_warmup_steps=2)
    trainer = Trainer(config)
    g_start = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    d_start = {k: v.clone() for k, v in trainer.image_d.state_dict().items()}
    dt_start = {k: v.clone() for k, v in trainer.temporal_d.state_dict().items()}
    trainer.train(progress=False, until=2)
    g_warm = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    assert all(torch.equal(g_start[k], g_warm[k]) for k in g_start)
    assert any(not torch.equal(d_start[k], v) for k, v in trainer.image_d.state_dict().items())
    assert any(not torch.equal(dt_start[k], v) for k, v in trainer.temporal_d.state_dict().items())
    trainer.train(progress=False)
    trainer.close()
    assert any(not torch.equal(g_warm[k], v) for k, v in trainer.generator.state_dict().items())
    with pytest.raises(ConfigError, match="d_warmup_steps"):
        _config(tiny_dataset, tiny_model, tmp_path / "x", steps=3, d_warmup_steps=3)


def test_a_teacher_segmenter_term_teaches_the_generator_the_layout(two_colour_dataset, two_colour_segmenter,
                                                                   tiny_model, tmp_path) -> None:
    """weights.segmentation alone: the frozen teacher's cross-entropy falls, and the trained model's
    frames read as their labels to it, where the untrained model's do not."""
    from renderer.checkpoint import save_checkpoint
    from renderer.loading import load_renderer
    from renderer.model import build_generator
    from renderer.segmenter import label_ids_to_train_ids, load_segmenter, predict_train_ids

    # The photos' colours must not reach the generator by any other term: L1 only as a token weight.
    semantic = LossWeights(l1=1e-6, gan=0.0, feature_matching=0.0, temporal_gan=0.0, temporal_feature_matching=0.0,
                           flow=0.0, flow_warp=0.0, output_warp=0.0, segmentation=1.0)
    values = dict(steps=60, lr=2e-3, decay_start=60, clip_length=3, max_clip_length=3, weights=semantic,
                  use_vgg=False, save_every=100, load_width=64)
    with pytest.raises(ConfigError, match="seg_teacher"):
        _config(two_colour_dataset, tiny_model, tmp_path / "bad", **values)
    with pytest.raises(ConfigError, match="seg_teacher"):
        _config(two_colour_dataset, tiny_model, tmp_path / "bad", seg_teacher=str(two_colour_segmenter))
    with pytest.raises(ConfigError, match="seg_teacher.*non-empty list"):
        _config(two_colour_dataset, tiny_model, tmp_path / "bad", seg_teacher=[], **values)
    with pytest.raises(ValueError, match="seg_teacher: .*not a segmenter folder"):
        Trainer(_config(two_colour_dataset, tiny_model, tmp_path / "bad", seg_teacher=str(tmp_path), **values))
    # In an ensemble, each teacher is checked.
    with pytest.raises(ValueError, match="seg_teacher: .*not a segmenter folder"):
        Trainer(_config(two_colour_dataset, tiny_model, tmp_path / "bad",
                        seg_teacher=[str(two_colour_segmenter), str(tmp_path)], **values))

    config = _config(two_colour_dataset, tiny_model, tmp_path / "sem", seg_teacher=str(two_colour_segmenter), **values)
    trainer = Trainer(config)
    assert trainer.frame_width == 64  # the frames crops come from: the teacher's own scale
    history = trainer.train(progress=False)
    trainer.close()
    temporal = [record.values["G_Seg"] for record in history]
    assert all("S_G_Seg" in record.values for record in history)
    assert sum(temporal[-5:]) / 5 < 0.5 * sum(temporal[:5]) / 5, temporal

    teacher = load_segmenter(two_colour_segmenter)
    labels = np.full((32, 64), 7, np.uint8)  # road on the left ...
    labels[:, 40:] = 23  # ... sky from column 40, as the two-colour frames split them
    target = label_ids_to_train_ids(labels)

    def accuracy(folder: Path) -> float:
        renderer = load_renderer(str(folder), engine="torch", device="cpu", size=(64, 32))
        frames = [renderer.step(labels) for _ in range(3)]
        return float(np.mean([(p == target).mean() for p in predict_train_ids(teacher, frames)]))

    base = save_checkpoint(build_generator(TINY, seed=0), tmp_path / "untrained")
    assert accuracy(tmp_path / "sem" / "generator") > 0.9 > accuracy(base)


def test_frame_steps_must_leave_temporal_clips(tiny_dataset, tiny_model, tmp_path) -> None:
    with pytest.raises(ConfigError, match="frame_steps"):
        _config(tiny_dataset, tiny_model, tmp_path / "x", steps=4, frame_steps=4)
    with pytest.raises(ConfigError, match="frame_steps"):
        _config(tiny_dataset, tiny_model, tmp_path / "x", steps=4, frame_steps=2, temporal=False)


def test_dataset_clips_flip_and_errors(tiny_dataset) -> None:
    sequences = scan_dataset(tiny_dataset)
    plain = ClipDataset(sequences, 3, (64, 32), flip=False)[0]
    assert plain["label_ids"].shape == (3, 32, 64) and plain["rgb"].shape == (3, 3, 32, 64)
    assert plain["has_flow"].tolist() == [False, True, True]
    flipped = None
    for index in range(20):
        item = ClipDataset(sequences, 3, (64, 32), flip=True)[index]
        first = ClipDataset(sequences, 3, (64, 32), flip=False)[index]
        if not torch.equal(item["rgb"], first["rgb"]):
            flipped, unflipped = item, first
            break
    assert flipped is not None
    assert torch.equal(flipped["label_ids"], unflipped["label_ids"].flip(-1))
    assert torch.allclose(flipped["flow"][:, 0], -unflipped["flow"][:, 0].flip(-1))
    with pytest.raises(DatasetError, match="long enough"):
        ClipDataset(sequences, 50, (64, 32))
    with pytest.raises(DatasetError, match="train_A"):
        scan_dataset(tiny_dataset / "train_A" / "seq0000")
    with pytest.raises(ConfigError, match="gan_mode"):
        TrainConfig(datasets=["x"], gan_mode="wgan").validate()


def test_mismatched_sequence_is_a_clear_error(tiny_dataset, tmp_path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    next((broken / "train_B" / "seq0000").iterdir()).unlink()
    with pytest.raises(DatasetError, match="mismatched frame counts"):
        scan_dataset(broken)


def test_fine_tune_starts_from_an_nvidia_checkpoint(tiny_dataset, tmp_path) -> None:
    from renderer.model.generator import build_generator

    source = build_generator(TINY.replace(single_g=None), seed=11)
    folder = tmp_path / "nvidia"
    folder.mkdir()
    for scale, module in enumerate(source.scales):
        torch.save(module.state_dict(), folder / f"latest_net_G{scale}.pth")
    model = tmp_path / "unused.json"
    model.write_text(json.dumps({"generator": TINY.to_dict()}))
    trainer = Trainer(_config(tiny_dataset, model, tmp_path / "finetune", init_from=str(folder), steps=1))
    for key, value in source.state_dict().items():
        assert torch.equal(trainer.generator.net.state_dict()[key], value), key
    history = trainer.train(progress=False)
    trainer.close()
    assert "F_Flow" in history[0].values


def test_recorder_run_folders_are_read_as_sequences(tiny_dataset, tmp_path) -> None:
    import shutil

    run = tmp_path / "runs" / "drive_001"
    for kind, folder in (("A", "label_ids"), ("B", "raw"), ("inst", "instance_ids"), ("flow", "flow")):
        shutil.copytree(tiny_dataset / f"train_{kind}" / "seq0000", run / "frames" / folder)
    (run / "frames" / "neural").mkdir()
    sequences = scan_dataset(tmp_path / "runs")
    assert [s.name for s in sequences] == ["drive_001"] and len(sequences[0]) == 6
    assert sequences[0].flow_paths is not None
    item = ClipDataset(sequences, 3, (64, 32), flip=False)[0]
    reference = ClipDataset(scan_dataset(tiny_dataset), 3, (64, 32), flip=False)[0]
    assert torch.equal(item["rgb"], reference["rgb"]) and torch.equal(item["flow"], reference["flow"])
    shutil.rmtree(run / "frames" / "raw")
    with pytest.raises(DatasetError, match="frames/raw"):
        scan_dataset(run)


def test_evaluation_renders_exactly_what_the_renderer_shows(tiny_dataset, tmp_path) -> None:
    from renderer.loading import load_renderer
    from renderer.model.generator import build_generator
    from renderer.training.datasets import read_instance_ids, read_label_ids
    from renderer.training.evaluation import SequenceRenderer
    from renderer.training.generator import TrainableGenerator, load_trainable

    TrainableGenerator(build_generator(TINY, seed=4)).save(tmp_path / "ckpt")
    ours = SequenceRenderer(load_trainable(tmp_path / "ckpt"), torch.device("cpu"))
    theirs = load_renderer(str(tmp_path / "ckpt"), engine="torch", device="cpu", size=(64, 32))
    sequence = scan_dataset(tiny_dataset)[0]
    for label_path, inst_path in zip(sequence.label_paths, sequence.instance_paths):
        label_ids, instance_ids = read_label_ids(label_path), read_instance_ids(inst_path)
        expected = theirs.step(label_ids, instance_ids)
        got = ours.step(label_ids, instance_ids)
        assert abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_styles_only_trains_the_style_parts_and_renders_as_the_model_without_a_style(tiny_dataset, tiny_model,
                                                                                   tmp_path) -> None:
    """`train --init-from M --feature-channels 3 --styles-only`: only the encoder and the style
    convolutions learn, an L1-only run trains no discriminator, and the result without a style
    renders exactly as M, while a style changes the frames."""
    import numpy as np

    from renderer.checkpoint import read_weights, save_checkpoint
    from renderer.loading import load_renderer
    from renderer.model import build_generator
    from renderer.protocol import StyleChoice

    base = save_checkpoint(build_generator(TINY, seed=1), tmp_path / "base")
    no_gan = LossWeights(l1=10.0, gan=0.0, feature_matching=0.0, temporal_gan=0.0, temporal_feature_matching=0.0,
                         region_colour=10.0)
    with pytest.raises(ConfigError, match="styles_only"):
        _config(tiny_dataset, tiny_model, tmp_path / "bad", styles_only=True, feature_channels=3)
    with pytest.raises(ConfigError, match="colour_jitter"):
        _config(tiny_dataset, tiny_model, tmp_path / "bad", colour_jitter=0.3)
    with pytest.raises(ConfigError, match="at least one image term"):
        _config(tiny_dataset, tiny_model, tmp_path / "bad", weights=LossWeights(gan=0.0, feature_matching=0.0),
                use_vgg=False)
    config = _config(tiny_dataset, tiny_model, tmp_path / "styled", init_from=str(base), feature_channels=3,
                     styles_only=True, style_clusters=2, weights=no_gan, lr=5e-2, steps=3, use_vgg=False,
                     colour_jitter=0.3)
    trainer = Trainer(config)
    history = trainer.train(progress=False)
    trainer.close()
    assert all(not any(name.endswith(("D_image", "G_GAN", "G_FM")) for name in record.values) for record in history)
    assert all(record.values["G_Region"] > 0 for record in history)

    folder = tmp_path / "styled" / "generator"
    before, after = read_weights(base / "model.safetensors"), read_weights(folder / "model.safetensors")
    style_keys = set(after) - set(before)
    assert style_keys and all(torch.equal(before[key], after[key]) for key in before)
    assert any(after[key].abs().sum() > 0 for key in style_keys if ".style_stem." in key)
    assert json.loads((folder / "config.json").read_text())["metadata"]["styles_added_to"] == str(base)

    styled = load_renderer(folder, size=(64, 32))
    assert styled.style_bank is not None and styled.style_bank.frozen_base
    plain = load_renderer(base, size=(64, 32))
    labels = np.full((32, 64), 7, np.uint8)
    labels[:12] = 23
    labels[16:26, 8:28] = 26
    for _ in range(3):
        assert np.array_equal(plain.step(labels), styled.step(labels))
    # Vectors that differ from class to class (a style shared by every class is normalised away).
    styled.apply_style(StyleChoice(vectors=np.random.default_rng(0).uniform(-1, 1, (35, 3)).astype(np.float32)))
    plain.reset()
    assert not np.array_equal(plain.step(labels), styled.step(labels))


@pytest.mark.slow
def test_a_tone_added_to_a_frozen_model_trains_on_single_frames_and_leaves_its_frames_alone(
        tiny_dataset, tiny_model, tmp_path) -> None:
    """`train --styles-only --style-input tone`: only the encoder and the tone learn, on the
    single-image generator's frames (no temporal step); the result renders M's own frames without a
    style, and with one the same frames with each class's colour changed."""
    import numpy as np

    from renderer.checkpoint import read_weights, save_checkpoint
    from renderer.loading import load_renderer
    from renderer.model import build_generator
    from renderer.protocol import StyleChoice

    base = save_checkpoint(build_generator(TINY, seed=1), tmp_path / "base")
    no_gan = LossWeights(l1=10.0, gan=0.0, feature_matching=0.0, temporal_gan=0.0, temporal_feature_matching=0.0,
                         region_colour=20.0)
    with pytest.raises(ConfigError, match="style_input"):
        _config(tiny_dataset, tiny_model, tmp_path / "bad", feature_channels=3, style_input="tone")
    config = _config(tiny_dataset, tiny_model, tmp_path / "toned", init_from=str(base), feature_channels=3,
                     styles_only=True, style_input="tone", style_clusters=2, weights=no_gan, lr=5e-2, steps=3,
                     use_vgg=False, colour_jitter=0.5)
    trainer = Trainer(config)
    history = trainer.train(progress=False)
    trainer.close()
    # Every frame of each clip trains the single-image generator's output; nothing temporal runs.
    assert all(set(record.values) == {"S_G_L1", "S_G_Region", "S_G_total", "S_PSNR"} for record in history)

    folder = tmp_path / "toned" / "generator"
    before, after = read_weights(base / "model.safetensors"), read_weights(folder / "model.safetensors")
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert {key.split(".")[0] for key in set(after) - set(before)} == {"encoder", "style_tone"}
    assert after["style_tone.weight"].abs().sum() > 0
    assert json.loads((folder / "config.json").read_text())["generator"]["style_input"] == "tone"

    toned, plain = load_renderer(folder, size=(64, 32)), load_renderer(base, size=(64, 32))
    labels = np.full((32, 64), 7, np.uint8)
    labels[:12] = 23
    labels[16:26, 8:28] = 26
    for _ in range(3):
        assert np.array_equal(plain.step(labels), toned.step(labels))
    toned.apply_style(StyleChoice(index=1))
    plain.reset()
    shown = [toned.step(labels).astype(int) for _ in range(3)]
    own = [plain.step(labels).astype(int) for _ in range(3)]
    assert all(np.abs(a - b).mean() > 0.5 for a, b in zip(shown, own))
