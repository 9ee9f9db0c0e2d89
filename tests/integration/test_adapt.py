"""Unpaired fine-tuning (`domain_adapt.finetune`) on tiny simulator maps and tiny real video, in process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from domain_adapt.adapt_config import AdaptConfig, AdaptWeights
from domain_adapt.adapt_losses import anchor_terms, flow_trust_mask
from domain_adapt.finetune import Adapter, AdaptInputError, check_inputs
from renderer.checkpoint import save_checkpoint
from renderer.model.config import GeneratorConfig
from renderer.model.generator import build_generator


def _config(tiny_checkpoint: Path, sim: Path, real: Path, segmenter: Path, out: Path, **changes) -> AdaptConfig:
    values = dict(checkpoint=str(tiny_checkpoint), sim=[str(sim)], real=str(real), segmenter=str(segmenter),
                  out_dir=str(out), crop_width=64, crop_height=32, clip_length=3, steps=1, d_channels=8, d_layers=2,
                  d_scales=1, device="cpu", save_every=1, image_every=1, flip=False)
    values.update(changes)
    return AdaptConfig(**values).validate()


@pytest.fixture
def inputs(tiny_checkpoint, two_colour_dataset, two_colour_segmenter, make_two_colour_run, tmp_path):
    torch.set_num_threads(1)
    sim = make_two_colour_run(tmp_path / "run")
    return dict(tiny_checkpoint=tiny_checkpoint, sim=sim, real=two_colour_dataset, segmenter=two_colour_segmenter)


def test_one_step_logs_every_term_and_writes_the_run_folder(inputs, tmp_path) -> None:
    adapter = Adapter(_config(**inputs, out=tmp_path / "out"))
    history = adapter.train(progress=False)
    adapter.close()
    assert {"G_GAN", "G_T_GAN0", "G_Seg", "G_Warp", "A_L1", "A_FM", "G_total", "D_image", "D_temporal"} <= set(history[0])
    assert all(np.isfinite(value) for value in history[0].values())
    out = tmp_path / "out"
    logged = json.loads((out / "adapt_log.jsonl").read_text().splitlines()[0])
    assert logged["step"] == 1 and logged["G_Seg"] == pytest.approx(history[0]["G_Seg"])
    assert json.loads((out / "train_config.json").read_text())["weights"] == AdaptWeights().__dict__
    assert list((out / "tensorboard").iterdir()) and (out / "samples" / "step_0000001.png").is_file()
    assert (out / "generator" / "model.safetensors").is_file()
    metadata = json.loads((out / "generator" / "config.json").read_text())["metadata"]
    assert metadata["adapt_steps"] == 1 and metadata["working_size"] == [64, 32] and metadata["temporal"] is True


def test_a_resumed_run_continues_the_step_count_and_matches_a_straight_one(inputs, tmp_path) -> None:
    straight = Adapter(_config(**inputs, out=tmp_path / "straight", steps=2))
    straight.train(progress=False)
    straight.close()

    interrupted = Adapter(_config(**inputs, out=tmp_path / "resumed", steps=2))
    interrupted.train(progress=False, until=1)
    interrupted.close()
    assert not (tmp_path / "resumed" / "generator").exists()  # only the finished run exports generator/
    resumed = Adapter(_config(**inputs, out=tmp_path / "resumed", steps=2))
    assert resumed.step == 1
    resumed.train(progress=False)
    resumed.close()
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "adapt_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    for (name, a), (_, b) in zip(straight.generator.state_dict().items(), resumed.generator.state_dict().items()):
        assert torch.equal(a, b), name
    for (name, a), (_, b) in zip(straight.image_d.state_dict().items(), resumed.image_d.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_anchor_is_zero_while_the_adapted_model_is_the_source(inputs, tmp_path) -> None:
    adapter = Adapter(_config(**inputs, out=tmp_path / "out"))
    real = {key: value.unsqueeze(0) for key, value in adapter.real_data[0].items()}
    labels = adapter._encode(real)

    def anchors() -> list[tuple[float, float]]:
        history, found = [], []
        with torch.no_grad():
            for t in range(labels.shape[1]):
                source = adapter._frame(adapter.source, labels, t, history)
                adapted = adapter._frame(adapter.generator, labels, t, history).image
                found.append(tuple(float(v) for v in anchor_terms(adapted, source.image, adapter.image_d)))
                history.append(source.scale_images)
        return found

    assert anchors() == [(0.0, 0.0)] * labels.shape[1]
    torch.manual_seed(0)
    with torch.no_grad():  # the single-image and the sequential generator both move
        for param in adapter.generator.parameters():
            param.add_(0.05 * torch.randn_like(param))
    assert all(l1 > 0 and feature > 0 for l1, feature in anchors())


def test_the_segmentation_term_falls_when_it_is_the_only_one(inputs, tmp_path) -> None:
    only_seg = AdaptWeights(gan=0, temporal_gan=0, segmentation=1, warp=0, anchor_l1=0, anchor_feature=0)
    adapter = Adapter(_config(**inputs, out=tmp_path / "out", steps=6, lr=2e-3, weights=only_seg,
                              save_every=100, image_every=100))
    history = adapter.train(progress=False)
    adapter.close()
    seg = [values["G_Seg"] for values in history]
    assert seg[-1] < 0.8 * seg[0], seg


def test_flow_is_trusted_where_it_lands_on_the_same_class() -> None:
    prev = torch.full((1, 8, 16), 7, dtype=torch.long)
    prev[:, 2:6, 4:8] = 26
    cur = torch.full((1, 8, 16), 7, dtype=torch.long)
    cur[:, 2:6, 6:10] = 26  # the car moved 2 px right
    flow = torch.zeros(1, 2, 8, 16)
    flow[:, 0, 2:6, 6:10] = -2.0
    flow[:, 0, 0, :] = -3.0  # the top row's flow leaves the frame at the left edge
    one_hot = torch.nn.functional.one_hot(prev, 35).permute(0, 3, 1, 2).float()
    mask = flow_trust_mask(one_hot, cur, flow, 35)[0, 0]
    assert mask[2:6, 6:10].all() and mask[7].all()  # the car and the still road below it
    assert not mask[2:6, 4:6].any()  # road that the car uncovered: its flow (0) points at the car
    assert not mask[0, :3].any() and mask[0, 3:].all()


def test_runs_without_flow_skip_the_warp_loss_and_require_refuses(inputs, make_two_colour_run, tmp_path, caplog) -> None:
    no_flow = make_two_colour_run(tmp_path / "no_flow", flow=False)
    values = {**inputs, "sim": no_flow}
    with pytest.raises(AdaptInputError, match="no flow PNGs .* --flow require"):
        check_inputs(_config(**values, out=tmp_path / "refused", flow="require"))
    with caplog.at_level(logging.WARNING, logger="domain_adapt.finetune"):
        adapter = Adapter(_config(**values, out=tmp_path / "out"))
    assert "no flow PNGs in no_flow/no_flow" in caplog.text and "G_Warp" in caplog.text
    history = adapter.train(progress=False)
    adapter.close()
    assert "G_Warp" not in history[0] and "G_Seg" in history[0]
    assert not (tmp_path / "refused").exists()


def test_bad_inputs_name_the_file_and_write_nothing(inputs, tiny_checkpoint, make_two_colour_run, tmp_path) -> None:
    empty_run = tmp_path / "empty_run"
    (empty_run / "frames" / "label_ids").mkdir(parents=True)
    (empty_run / "run.json").write_text("{}")
    with pytest.raises(AdaptInputError, match=r"--maps: .*label_ids/ holds no label PNGs"):
        check_inputs(_config(**{**inputs, "sim": empty_run}, out=tmp_path / "a"))

    colour_ids = make_two_colour_run(tmp_path / "colour_ids")
    label_png = colour_ids / "frames" / "label_ids" / "000000.png"
    cv2.imwrite(str(label_png), np.full((32, 64), 40, np.uint8))
    with pytest.raises(AdaptInputError, match=r"--maps: .*000000.png: label id 40 >= 35; .*Cityscapes labelIds"):
        check_inputs(_config(**{**inputs, "sim": colour_ids}, out=tmp_path / "e"))

    labels_only = tmp_path / "labels_only"
    (labels_only / "train_A" / "seq0000").mkdir(parents=True)
    with pytest.raises(AdaptInputError, match=r"--real: .*train_B is missing"):
        check_inputs(_config(**{**inputs, "real": labels_only}, out=tmp_path / "b"))

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_checkpoint / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AdaptInputError, match=r"--checkpoint .*broken.*(truncated or corrupt|safetensors)"):
        check_inputs(_config(**{**inputs, "tiny_checkpoint": broken}, out=tmp_path / "c"))

    # A generator on 20 label channels (trainIds), as other projects train them.
    train_ids_model = tmp_path / "train_ids_model"
    document = json.loads((tiny_checkpoint / "config.json").read_text())
    document["generator"].update(label_nc=20, fg_labels=[13])
    document["generator"]["single_g"]["label_nc"] = 20
    save_checkpoint(build_generator(GeneratorConfig.from_dict(document["generator"]), seed=0), train_ids_model)
    with pytest.raises(AdaptInputError, match=r"generator.label_nc is 20, not 35.*Cityscapes labelIds"):
        check_inputs(_config(**{**inputs, "tiny_checkpoint": train_ids_model}, out=tmp_path / "d"))
    assert not any((tmp_path / name).exists() for name in "abcde")


def test_adapt_labels_trains_on_the_transformed_maps_and_says_so(inputs, tmp_path) -> None:
    from carla_neural.label_transform import LabelTransform, load_transform_config

    label_dir = inputs["sim"] / "frames" / "label_ids"
    raw = []
    for path in sorted(label_dir.glob("*.png")):
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        labels[28:, :20] = 6  # ground: a class the real maps never hold, which the transform maps away
        cv2.imwrite(str(path), labels)
        raw.append(labels)
    plain = Adapter(_config(**inputs, out=tmp_path / "plain"))
    assert plain.inputs.label_transform is None and (plain.sim_data[0]["label_ids"] == 6).any()
    plain.close()

    adapter = Adapter(_config(**inputs, out=tmp_path / "out", adapt_labels=True))
    clip = adapter.sim_data[0]["label_ids"].numpy()
    transform = LabelTransform(load_transform_config())
    assert not (clip == 6).any()
    start = next(t for t in range(len(raw)) if np.array_equal(clip[0], transform(raw[t])))
    assert all(np.array_equal(clip[k], transform(raw[start + k])) for k in range(len(clip)))
    adapter.train(progress=False)
    adapter.close()
    metadata = json.loads((tmp_path / "out" / "generator" / "config.json").read_text())["metadata"]
    assert metadata["adapt_label_transform"]["median_kernel"] == load_transform_config().median_kernel


def test_a_bad_transform_config_names_the_file(inputs, tmp_path) -> None:
    bad = tmp_path / "transform.json"
    bad.write_text('{"median_kernel": 4}')
    with pytest.raises(AdaptInputError, match=r"--transform-config: .*transform\.json.*median_kernel"):
        check_inputs(_config(**inputs, out=tmp_path / "out", adapt_labels=True, transform_config=str(bad)))
    assert not (tmp_path / "out").exists()


def test_styles_added_to_a_frozen_model_ride_along_and_others_are_refused(inputs, tiny_style_checkpoint,
                                                                          tmp_path) -> None:
    """adapt trains no style input: a model whose styles `train --styles-only` added keeps its style
    weights and clusters, and adapts exactly as the same model without styles; a model whose
    styles trained with its generator is refused in one line."""
    from renderer.checkpoint import read_weights
    from renderer.styles import STYLES_FILE, StyleBank, load_styles, save_styles
    from renderer.training.generator import TrainableGenerator

    styled = TrainableGenerator.build(init_from=str(inputs["tiny_checkpoint"]), feature_channels=3)
    for param in styled.style_parameters():
        torch.nn.init.normal_(param, std=0.1)
    folder = styled.save(tmp_path / "styled", extra={"styles_added_to": str(inputs["tiny_checkpoint"])})
    rng = np.random.default_rng(0)
    save_styles(folder, StyleBank(rng.uniform(-1, 1, (35, 2, 3)).astype(np.float32), np.zeros((35, 3), np.float32),
                                  np.full(35, 4, np.int64), strength=0.5), source="test")

    runs = {}
    for name, checkpoint in (("plain", inputs["tiny_checkpoint"]), ("styled", folder)):
        adapter = Adapter(_config(**{**inputs, "tiny_checkpoint": checkpoint}, out=tmp_path / name, steps=2))
        adapter.train(progress=False)
        adapter.close()
        runs[name] = read_weights(tmp_path / name / "generator" / "model.safetensors")
    source = read_weights(folder / "model.safetensors")
    assert all(torch.equal(runs["plain"][key], runs["styled"][key]) for key in runs["plain"])
    assert any(not torch.equal(runs["plain"][key], source[key]) for key in runs["plain"])
    assert all(torch.equal(runs["styled"][key], source[key]) for key in set(source) - set(runs["plain"]))
    out = tmp_path / "styled" / "generator"
    bank = load_styles(out, 35, 3)
    assert bank is not None and bank.frozen_base and bank.strength == 0.5
    assert (out / STYLES_FILE).read_bytes() == (folder / STYLES_FILE).read_bytes()

    with pytest.raises(AdaptInputError, match="styles_added_to"):
        check_inputs(_config(**{**inputs, "tiny_checkpoint": tiny_style_checkpoint}, out=tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
