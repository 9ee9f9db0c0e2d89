"""Multimodal styles: instance pooling, the style stems, style banks with the checkpoint, and the
renderer's style (fixed per sequence, distinct between styles, absent for models without styles)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from renderer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from renderer.loading import load_renderer
from renderer.model import GeneratorConfig, SingleGConfig, build_generator
from renderer.model.config import ConfigError
from renderer.model.stem import frame_codes
from renderer.model.style import class_means, features_from_vectors, pool_by_instance, region_ids
from renderer.protocol import StyleChoice
from renderer.sequential import SequentialRenderer
from renderer.styles import STYLES_FILE, StyleBank, cluster_styles, load_styles, region_samples, save_styles

ROAD, SKY, CAR = 7, 23, 26


def _scene(height: int = 32, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full((height, width), ROAD, np.uint8)
    labels[: height // 2] = SKY
    labels[height // 2:height // 2 + 6, 8:20] = CAR
    labels[height // 2:height // 2 + 6, 40:52] = CAR
    instances = labels.astype(np.int32)
    instances[height // 2:height // 2 + 6, 8:20] = CAR * 1000
    instances[height // 2:height // 2 + 6, 40:52] = CAR * 1000 + 1
    return labels, instances


def test_pooling_is_the_instance_mean_and_constant_within_each_instance() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 3, 32, 64, requires_grad=True)
    _, instances = _scene()
    ids = torch.from_numpy(np.stack([instances, instances[:, ::-1].copy()])).long()
    pooled = pool_by_instance(features, ids)
    for sample in range(2):
        for instance in torch.unique(ids[sample]):
            mask = ids[sample] == instance
            region = pooled[sample][:, mask]
            expected = features[sample][:, mask].mean(1, keepdim=True)
            assert torch.allclose(region, expected.expand_as(region), atol=1e-6)
    # The two cars of one class are pooled apart: per instance, not per class.
    car_a, car_b = pooled[0, :, 18, 10], pooled[0, :, 18, 45]
    assert not torch.allclose(car_a, car_b)
    pooled.sum().backward()  # the encoder trains through the pooling
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_regions_are_label_instance_pairs_in_either_instance_format() -> None:
    """NVIDIA's sample ships 8-bit instance maps (255 for every stuff pixel): regions must still
    split road from sky, and a Cityscapes instance map keeps exactly its own regions."""
    labels, cityscapes_instances = _scene()
    eight_bit = np.full_like(cityscapes_instances, 255)
    eight_bit[cityscapes_instances == CAR * 1000] = 1
    eight_bit[cityscapes_instances == CAR * 1000 + 1] = 2
    regions = region_ids(torch.from_numpy(labels), torch.from_numpy(eight_bit)).numpy()
    assert regions[0, 0] != regions[-1, 0]  # sky and road, both instance 255
    assert len(np.unique(regions)) == 4  # sky, road, two cars
    own = region_ids(torch.from_numpy(labels), torch.from_numpy(cityscapes_instances)).numpy()
    pairs = {(int(a), int(b)) for a, b in zip(own.ravel(), cityscapes_instances.ravel())}
    assert len(pairs) == len(np.unique(own)) == len(np.unique(cityscapes_instances))

    features = torch.from_numpy(np.stack([labels == SKY, labels == CAR, labels == ROAD]).astype(np.float32))[None]
    classes, region_features, _ = region_samples(features, labels, eight_bit, np.zeros((*labels.shape, 3), np.uint8))
    assert sorted(classes.tolist()) == [ROAD, SKY, CAR, CAR]
    assert np.allclose(region_features[classes == SKY], [1, 0, 0])
    assert np.allclose(region_features[classes == ROAD], [0, 0, 1])


def test_class_means_and_features_from_vectors() -> None:
    labels, _ = _scene()
    features = torch.randn(1, 3, 32, 64)
    means, present = class_means(features, torch.from_numpy(labels).long()[None], 35)
    assert present.nonzero().flatten().tolist() == [ROAD, SKY, CAR]
    sky = torch.from_numpy(labels == SKY)
    assert torch.allclose(means[SKY], features[0][:, sky].mean(1), atol=1e-6)
    built = features_from_vectors(means, torch.from_numpy(labels)[None])
    assert built.shape == (1, 3, 32, 64)
    assert torch.equal(built[0, :, 0, 0], means[SKY])


STYLED = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=1, n_scales=2, feat_nc=3, feat_ngf=4,
                         single_g=SingleGConfig(kind="global", ngf=4, n_downsampling=2, n_blocks=1))


def test_the_style_input_is_extra_stem_input_channels() -> None:
    """The style stem added to the label stem equals one conv over [labels, features]: the
    features are extra input channels, also through the exact lookup stem."""
    net = build_generator(STYLED, seed=1)
    scale = net.scales[1]  # the finest scale, full resolution, lookup stem
    labels, instances = _scene()
    label_ids = torch.from_numpy(labels).long()[None]
    from renderer.model.inputs import encode_label_frame, instance_edges

    encoded = encode_label_frame(label_ids, torch.from_numpy(instances)[None], 35)
    stack = torch.cat([encoded] * 3, 1)
    codes = torch.stack([frame_codes(label_ids, instance_edges(torch.from_numpy(instances)[None])[:, 0])] * 3, 1)
    features = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        seg, fg = scale.styled_stems(*scale.label_stems(None, codes, 0), features)
        padded = torch.nn.functional.pad(torch.cat([stack, features], 1), (3, 3, 3, 3), mode="reflect")
        style_weight = scale.style_stem.conv.weight
        for stem, conv, part in ((seg, scale.model_down_seg[1], style_weight[:seg.shape[1]]),
                                 (fg, scale.indv_down[1], style_weight[seg.shape[1]:])):
            dense = torch.nn.functional.conv2d(padded, torch.cat([conv.weight, part], 1), conv.bias)
            assert torch.allclose(stem, dense, atol=1e-4)


def test_no_styles_means_no_new_parameters() -> None:
    plain = build_generator("lite")
    keys = set(plain.state_dict())
    assert not any(key.startswith(("encoder.", "style_single.")) or ".style_stem." in key for key in keys)
    styled = build_generator(plain.config.replace(feat_nc=3))
    new = set(styled.state_dict()) - keys
    assert new and all(k.startswith(("encoder.", "style_single.")) or ".style_stem." in k for k in new)
    # config.json of a checkpoint without styles is what it was before styles existed
    assert "feat_nc" not in plain.config.to_dict() and "feat_ngf" not in plain.config.to_dict()
    assert GeneratorConfig.from_dict(plain.config.to_dict()) == plain.config
    assert GeneratorConfig.from_dict(styled.config.to_dict()).feat_nc == 3
    with pytest.raises(ConfigError, match="feat_nc"):
        GeneratorConfig(feat_nc=3, single_g=SingleGConfig(kind="local")).validate()


@pytest.mark.parametrize("name", ["bundled", "bundled-adapted"])
def test_bundled_models_carry_styles_and_render_as_before_without_one(name: str, tmp_path: Path) -> None:
    """The shipped styles were added to the frozen models: without a style the frames are those
    of the same weights without the style parts, bit for bit; a style changes them."""
    from renderer.checkpoint import read_weights
    from renderer.checkpoint_ref import resolve_checkpoint

    renderer = load_renderer(name, size=(128, 64))
    assert renderer.generator.has_styles and renderer.style_bank is not None and renderer.style_bank.frozen_base
    assert renderer.style_bank.k >= 4
    plain = build_generator(renderer.generator.config.replace(feat_nc=0, style_input="stems"))
    weights = read_weights(resolve_checkpoint(name) / "model.safetensors")
    plain.load_state_dict({key: value for key, value in weights.items() if key in plain.state_dict()}, strict=True)
    plain_renderer = load_renderer(save_checkpoint(plain, tmp_path / "plain"), size=(128, 64))
    labels, instances = _scene(64, 128)
    for _ in range(3):
        assert np.array_equal(renderer.step(labels, instances), plain_renderer.step(labels, instances))
    renderer.apply_style(StyleChoice(index=0))
    plain_renderer.reset()
    styled = [renderer.step(labels, instances) for _ in range(3)]
    before = [plain_renderer.step(labels, instances) for _ in range(3)]
    assert all(np.abs(a.astype(int) - b).mean() > 1.0 for a, b in zip(styled, before))
    with pytest.raises(ValueError, match="does not exist"):
        renderer.apply_style(StyleChoice(index=renderer.style_bank.k))


def test_bank_round_trip_with_the_checkpoint(tmp_path: Path) -> None:
    folder = save_checkpoint(build_generator(STYLED, seed=0), tmp_path / "ckpt")
    rng = np.random.default_rng(0)
    bank = StyleBank(rng.uniform(-1, 1, (35, 4, 3)).astype(np.float32), rng.uniform(-1, 1, (35, 3)).astype(np.float32),
                     np.arange(35, dtype=np.int64))
    save_styles(folder, bank, source="test")
    facts = json.loads((folder / "config.json").read_text())["metadata"]["styles"]
    assert facts["k"] == 4 and facts["feat_nc"] == 3 and facts["file"] == STYLES_FILE
    load_checkpoint(folder)  # the checkpoint itself still loads strictly
    loaded = load_styles(folder, 35, 3)
    assert loaded is not None and np.array_equal(loaded.centers, bank.centers)
    assert np.array_equal(loaded.vectors(3), bank.centers[:, 3])
    renderer = load_renderer(folder)
    assert renderer.style_bank is not None and renderer.style_bank.k == 4
    with pytest.raises(ValueError, match="styles 0..3"):
        loaded.vectors(4)
    with pytest.raises(CheckpointError, match=STYLES_FILE):
        load_styles(folder, 35, 4)  # a bank of another generator


def test_strength_moves_a_style_part_way_from_the_neutral_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centers = rng.uniform(-1, 1, (35, 2, 3)).astype(np.float32)
    mean = rng.uniform(-1, 1, (35, 3)).astype(np.float32)
    counts = np.full(35, 5, np.int64)
    # Styles trained with the generator: the neutral input is every class's mean.
    joint = StyleBank(centers, mean, counts, strength=0.25)
    np.testing.assert_allclose(joint.vectors(1), mean + 0.25 * (centers[:, 1] - mean), rtol=1e-6)
    # Styles added to a frozen model: the neutral input is no feature at all (its exact default).
    frozen = dataclasses.replace(joint, frozen_base=True)
    np.testing.assert_allclose(frozen.vectors(1), 0.25 * centers[:, 1], rtol=1e-6)
    assert np.array_equal(dataclasses.replace(frozen, strength=1.0).vectors(1), centers[:, 1])
    # Stored with the checkpoint, and checked when read back.
    folder = save_checkpoint(build_generator(STYLED, seed=0), tmp_path / "ckpt")
    save_styles(folder, joint, source="test")
    document = json.loads((folder / "config.json").read_text())
    assert document["metadata"]["styles"]["strength"] == 0.25
    loaded = load_styles(folder, 35, 3)
    assert loaded is not None and loaded.strength == 0.25 and np.array_equal(loaded.centers, centers)
    for bad in (0, 1.5, "half"):
        document["metadata"]["styles"]["strength"] = bad
        (folder / "config.json").write_text(json.dumps(document))
        with pytest.raises(CheckpointError, match=r"config.json: metadata.styles.strength .* \(0, 1\]"):
            load_styles(folder, 35, 3)
    del document["metadata"]["styles"]["strength"]  # banks written before strength existed: 1
    (folder / "config.json").write_text(json.dumps(document))
    assert load_styles(folder, 35, 3).strength == 1.0


def test_a_weaker_style_renders_between_the_default_and_the_full_style(tmp_path: Path) -> None:
    labels, instances = _scene()
    frames = {}
    for strength in (1.0, 0.5):
        folder = save_checkpoint(build_generator(STYLED, seed=0), tmp_path / f"s{strength}")
        style = np.random.default_rng(0).uniform(-0.9, 0.9, (35, 1, 3)).astype(np.float32)
        save_styles(folder, StyleBank(style, np.zeros((35, 3), np.float32), np.full(35, 4, np.int64),
                                      strength=strength), source="test")
        renderer = load_renderer(folder)
        renderer.apply_style(StyleChoice(index=0))
        frames[strength] = renderer.step(labels, instances).astype(int)
    default = load_renderer(tmp_path / "s1.0")  # mean 0: the default style is the zero input
    default.apply_style(None)
    frames["default"] = default.step(labels, instances).astype(int)
    full, half = np.abs(frames[1.0] - frames["default"]).mean(), np.abs(frames[0.5] - frames["default"]).mean()
    assert 0 < half < full


def test_clusters_sorted_by_luminance_per_class() -> None:
    rng = np.random.default_rng(0)
    bright = rng.normal(-0.5, 0.01, (20, 3)).astype(np.float32)
    dark = rng.normal(0.5, 0.01, (20, 3)).astype(np.float32)
    features = np.concatenate([bright, dark])
    luma = np.concatenate([np.full(20, 200.0), np.full(20, 30.0)]).astype(np.float32)
    labels = np.full(40, ROAD)
    bank = cluster_styles(labels, features, luma, 35, k=2)
    assert np.allclose(bank.centers[ROAD, 0], 0.5, atol=0.02)  # style 0: the darker cluster
    assert np.allclose(bank.centers[ROAD, 1], -0.5, atol=0.02)
    assert bank.counts[ROAD] == 40 and bank.counts[SKY] == 0
    assert np.allclose(bank.mean[ROAD], features.mean(0))


class _Recording:
    """An engine that records the style features it is given."""

    def __init__(self, renderer: SequentialRenderer) -> None:
        self.inner, self.features = renderer.engine, []

    def __call__(self, label_stacks, prev_stacks, label_codes=None, features=None):
        self.features.append(None if features is None else features.clone())
        return self.inner(label_stacks, prev_stacks, label_codes, features=features)


def test_a_style_is_fixed_for_the_sequence_and_styles_differ(tiny_style_checkpoint: Path) -> None:
    labels, instances = _scene()
    renderer = load_renderer(tiny_style_checkpoint, size=(64, 32))
    recording = _Recording(renderer)
    renderer.engine = recording
    renderer.apply_style(StyleChoice(index=0))
    style_0 = [renderer.step(labels, instances) for _ in range(5)]
    # The same features every frame: nothing about the style can change during the sequence.
    assert all(torch.equal(f, recording.features[0]) for f in recording.features)
    renderer.apply_style(StyleChoice(index=0))
    again = [renderer.step(labels, instances) for _ in range(5)]
    assert all(np.array_equal(a, b) for a, b in zip(style_0, again))
    renderer.apply_style(StyleChoice(index=1))
    style_1 = [renderer.step(labels, instances) for _ in range(5)]
    assert all(np.abs(a.astype(int) - b).mean() > 2.0 for a, b in zip(style_0, style_1))
    with pytest.raises(ValueError, match="styles 0..1"):
        renderer.apply_style(StyleChoice(index=2))


def test_adding_styles_to_a_model_keeps_its_output(tmp_path: Path) -> None:
    """Fine-tuning with --feature-channels starts from exactly the old model: the new style
    convolutions are zero, whatever the features."""
    from renderer.training.generator import TrainableGenerator

    plain_config = STYLED.replace(feat_nc=0)
    folder = save_checkpoint(build_generator(plain_config, seed=3), tmp_path / "plain")
    styled = TrainableGenerator.build(init_from=str(folder), feature_channels=3).net.eval()
    assert styled.has_styles
    labels, instances = _scene()
    plain_renderer = SequentialRenderer(load_checkpoint(folder), size=(64, 32))
    styled_renderer = SequentialRenderer(styled, size=(64, 32))
    styled_renderer.set_style(np.random.default_rng(0).uniform(-1, 1, (35, 3)).astype(np.float32))
    for _ in range(4):
        assert np.array_equal(plain_renderer.step(labels, instances), styled_renderer.step(labels, instances))


def test_styles_reach_a_spade_generator_and_its_first_frames() -> None:
    """Styles and `generator: spade` combine: the style features change the first frame (the SPADE
    single-image generator's stem) and the later ones, and zero style convolutions change nothing."""
    config = STYLED.replace(generator="spade", spade_hidden=4, label_pyramid="nearest",
                            single_g=dataclasses.replace(STYLED.single_g, generator="spade", spade_hidden=4))
    net = build_generator(config, seed=1).eval()
    labels, instances = _scene()
    rng = np.random.default_rng(0)
    outputs = []
    for vectors in (rng.uniform(-1, 1, (35, 3)), rng.uniform(-1, 1, (35, 3))):
        renderer = SequentialRenderer(net, size=(64, 32))
        renderer.set_style(vectors.astype(np.float32))
        outputs.append([renderer.step(labels, instances) for _ in range(3)])
    for first, second in zip(*outputs):
        assert np.abs(first.astype(int) - second).mean() > 0.5
    with torch.no_grad():
        for module in (net.style_single, *(scale.style_stem for scale in net.scales)):
            for parameter in module.parameters():
                parameter.zero_()
    plain = SequentialRenderer(net, size=(64, 32))
    styled = SequentialRenderer(net, size=(64, 32))
    styled.set_style(rng.uniform(-1, 1, (35, 3)).astype(np.float32))
    for _ in range(3):
        assert np.array_equal(plain.step(labels, instances), styled.step(labels, instances))


TONED = STYLED.replace(style_input="tone")


def test_a_tone_adds_only_its_weight_and_is_refused_without_features() -> None:
    plain = build_generator(TONED.replace(feat_nc=0, style_input="stems"))
    toned = build_generator(TONED)
    new = set(toned.state_dict()) - set(plain.state_dict())
    assert "style_tone.weight" in new and all(k.startswith(("encoder.", "style_tone.")) for k in new)
    assert not toned.styles_enter_chain and toned.has_styles
    assert GeneratorConfig.from_dict(TONED.to_dict()) == TONED
    assert "style_input" not in STYLED.to_dict()  # checkpoints with stems write what they wrote before
    with pytest.raises(ConfigError, match="style_input"):
        GeneratorConfig(style_input="tone").validate()
    with pytest.raises(ValueError, match="tone"):
        toned.first_frame(torch.zeros(1, 35, 32, 64), torch.zeros(1, 3, 32, 64))


def test_a_tone_is_a_gain_and_offset_per_class_linear_in_the_features() -> None:
    from renderer.model.style import StyleTone

    tone = StyleTone(35, 3)
    labels, _ = _scene()
    label_ids = torch.from_numpy(labels).long()[None]
    image = torch.rand(1, 3, 32, 64) * 1.6 - 0.8
    vectors = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (35, 3)).astype(np.float32))
    features = features_from_vectors(vectors, label_ids)
    assert torch.equal(tone(image, label_ids, features), image)  # zero-initialised: the identity
    with torch.no_grad():
        tone.weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
        out = tone(image, label_ids, features)
        assert torch.equal(tone(image, label_ids, torch.zeros_like(features)), image)  # no style, no change
    for label in (ROAD, SKY, CAR):
        gain, offset = (tone.weight[label] @ vectors[label]).split(3)
        mask = label_ids[0] == label
        expected = ((image[0][:, mask] + 1) / 2 * (1 + gain[:, None]) + offset[:, None]).clamp(0, 1) * 2 - 1
        assert torch.allclose(out[0][:, mask], expected, atol=1e-6)


def test_a_tone_recolours_the_frames_and_leaves_the_motion_alone() -> None:
    """With a tone, every frame is the model's own untoned frame with the style's colour change:
    the history it feeds back stays untoned, so the motion is exactly the model's without a style."""
    net = build_generator(TONED, seed=2).eval()
    with torch.no_grad():
        net.style_tone.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    labels, instances = _scene()
    rng = np.random.default_rng(3)
    plain, toned = SequentialRenderer(net, size=(64, 32)), SequentialRenderer(net, size=(64, 32))
    vectors = rng.uniform(-1, 1, (35, 3)).astype(np.float32)
    toned.set_style(vectors)
    for step in range(4):
        # Moving labels, so the history matters.
        ids = torch.from_numpy(np.roll(labels, 2 * step, axis=1)).long()[None]
        instance_ids = torch.from_numpy(np.roll(instances, 2 * step, axis=1)).long()[None]
        own, shown = plain.step_tensor(ids, instance_ids), toned.step_tensor(ids, instance_ids)
        expected = net.tone(own, ids, features_from_vectors(torch.from_numpy(vectors), ids))
        assert torch.allclose(shown, expected, atol=1e-6)  # the renderer's per-class table: the same tone
        assert (shown - own).abs().mean() > 0.02
