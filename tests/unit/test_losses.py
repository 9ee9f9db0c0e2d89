"""Each training loss: values on known inputs, and one optimisation step reaching the generator."""

from __future__ import annotations

import logging

import pytest
import torch

from renderer.model.config import GeneratorConfig, SingleGConfig
from renderer.model.generator import build_generator
from renderer.training.discriminators import MultiScaleDiscriminator, TemporalDiscriminators
from renderer.training.flow import confidence_mask, warp
from renderer.training.generator import TrainableGenerator
from renderer.training import losses
from renderer.training.losses import (
    GANLoss,
    VGGPerceptualLoss,
    build_vgg_loss,
    compose_flows,
    feature_matching_loss,
    flow_loss,
    flow_warp_loss,
    masked_l1,
    occlusion_weight_loss,
    output_warp_loss,
    region_colour_loss,
)

TINY = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=1, n_scales=2,
                       single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1))
H, W = 16, 32


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    label_ids = torch.randint(0, 35, (2, 3, H, W), generator=gen)
    edges = torch.zeros(2, 3, 1, H, W)
    real = torch.rand(2, 3, H, W, generator=gen) * 2 - 1
    prev = torch.rand(2, 6, H, W, generator=gen) * 2 - 1
    flow = torch.randn(2, 2, H, W, generator=gen)
    return {"label_ids": label_ids, "edges": edges, "real": real, "prev": prev, "flow": flow}


def _generator() -> TrainableGenerator:
    torch.manual_seed(0)
    return TrainableGenerator(build_generator(TINY, seed=0), temporal=True)


def _losses(gen: TrainableGenerator, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    labels = gen.encode_labels(batch["label_ids"].flatten(0, 1), batch["edges"].flatten(0, 1)).view(2, -1, H, W)
    out = gen(labels, batch["prev"])
    current = labels[:, -gen.label_channels:]
    disc = MultiScaleDiscriminator(gen.label_channels + 3, 8, 2, 2)
    temporal = TemporalDiscriminators(3, 1, 8, 2, 1)
    real, prev_real = batch["real"], batch["prev"][:, 3:]
    conf = torch.ones(2, 1, H, W)
    gan = GANLoss("lsgan")
    pred_fake = disc(torch.cat([current, out.image], 1))
    pred_real = disc(torch.cat([current, real], 1))
    frames = torch.stack([batch["prev"][:, :3], prev_real, out.image], 1)
    flows = torch.stack([batch["flow"], batch["flow"]], 1) / 20
    t_fake = temporal.score(0, frames, flows)
    t_real = temporal.score(0, torch.stack([batch["prev"][:, :3], prev_real, real], 1), flows)
    return {
        "gan_lsgan": gan(pred_fake, True, False),
        "gan_hinge": GANLoss("hinge")(pred_fake, True, False),
        "feature_matching": feature_matching_loss(pred_fake, pred_real),
        "flow": flow_loss(out.flow, batch["flow"], conf),
        "flow_warp": flow_warp_loss(out.flow, prev_real, real, conf),
        "output_warp": output_warp_loss(out.image, prev_real, batch["flow"], conf),
        "occlusion_weight": occlusion_weight_loss(out.weight, conf),
        "temporal_gan": gan(t_fake, True, False),
        "temporal_feature_matching": feature_matching_loss(t_fake, t_real),
        "l1": masked_l1(out.image, real),
        "region_colour": region_colour_loss(out.image, real, batch["label_ids"][:, -1]),
    }


@pytest.mark.parametrize("name", ["gan_lsgan", "gan_hinge", "feature_matching", "flow", "flow_warp", "output_warp",
                                  "occlusion_weight", "temporal_gan", "temporal_feature_matching", "l1",
                                  "region_colour"])
def test_one_optimisation_step_of_each_loss_reaches_the_generator(name: str) -> None:
    gen = _generator()
    batch = _inputs()
    optimizer = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
    before = {k: v.detach().clone() for k, v in gen.net.scales.named_parameters()}
    loss = _losses(gen, batch)[name]
    assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    grads = [p.grad for p in gen.net.scales.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), f"{name} gives the generator no gradient"
    optimizer.step()
    changed = sum(not torch.equal(before[k], v) for k, v in gen.net.scales.named_parameters())
    assert changed > 0


def test_vgg_loss_with_user_weights_reaches_the_generator(tmp_path) -> None:
    vgg = VGGPerceptualLoss()
    weights = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in vgg.features.state_dict().items()}, weights)
    loaded = build_vgg_loss(weights)
    assert isinstance(loaded, VGGPerceptualLoss)
    assert all(not p.requires_grad for p in loaded.parameters())
    gen = _generator()
    batch = _inputs()
    labels = gen.encode_labels(batch["label_ids"].flatten(0, 1), batch["edges"].flatten(0, 1)).view(2, -1, H, W)
    fake = gen(labels, batch["prev"]).image
    loss = loaded(fake, batch["real"])
    loss.backward()
    assert loss > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())
    assert loaded(batch["real"], batch["real"]).item() == pytest.approx(0.0, abs=1e-7)


def test_vgg_loss_without_weights_warns_once_and_is_off(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(losses, "_warned_no_vgg", False)
    with caplog.at_level(logging.WARNING):
        assert build_vgg_loss(None) is None
        assert build_vgg_loss(None) is None
    warnings = [r for r in caplog.records if "VGG19" in r.getMessage()]
    assert len(warnings) == 1 and "OFF" in warnings[0].getMessage()
    with pytest.raises(FileNotFoundError, match="do not exist"):
        build_vgg_loss(tmp_path / "missing.pth")


def test_vgg_weights_found_in_torchvision_cache(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in VGGPerceptualLoss().features.state_dict().items()},
               cache / losses.TORCHVISION_VGG19_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert isinstance(build_vgg_loss(None), VGGPerceptualLoss)


def test_gan_loss_values() -> None:
    scores = [[torch.zeros(1), torch.full((1, 1, 2, 2), 0.5)]]
    assert GANLoss("lsgan")(scores, True, True).item() == pytest.approx(0.25)
    assert GANLoss("lsgan")(scores, False, True).item() == pytest.approx(0.25)
    assert GANLoss("hinge")(scores, True, True).item() == pytest.approx(0.5)
    assert GANLoss("hinge")(scores, False, True).item() == pytest.approx(1.5)
    assert GANLoss("hinge")(scores, True, False).item() == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="lsgan"):
        GANLoss("wgan")


def test_masked_l1_ignores_masked_pixels() -> None:
    prediction = torch.zeros(1, 3, 2, 2)
    target = torch.zeros(1, 3, 2, 2)
    target[..., 0, 0] = 5.0
    mask = torch.ones(1, 1, 2, 2)
    mask[..., 0, 0] = 0
    assert masked_l1(prediction, target, mask).item() == 0.0
    assert masked_l1(prediction, target).item() == pytest.approx(5.0 / 4)


def test_region_colour_loss_sees_region_means_not_texture() -> None:
    regions = torch.zeros(1, 4, 4, dtype=torch.long)
    regions[:, :, 2:] = 1  # two regions: left and right halves
    real = torch.zeros(1, 3, 4, 4)
    real[:, :, ::2, :2] = 1.0  # left: stripes with mean 0.5; right: 0
    flat = torch.zeros(1, 3, 4, 4)
    flat[:, :, :, :2] = 0.5  # the same means, no texture
    assert region_colour_loss(flat, real, regions).item() == pytest.approx(0.0, abs=1e-7)
    assert masked_l1(flat, real).item() > 0.2
    shifted = flat.clone()
    shifted[:, :, :, 2:] += 0.4  # the right half's mean is off by 0.4, on half the pixels
    assert region_colour_loss(shifted, real, regions).item() == pytest.approx(0.2)


def test_flow_warp_and_confidence_with_a_known_shift() -> None:
    gen = torch.Generator().manual_seed(1)
    prev = torch.rand(1, 3, 8, 12, generator=gen) * 2 - 1
    cur = torch.roll(prev, shifts=2, dims=3)  # content moved 2 px right: sample t-1 at x - 2
    flow = torch.zeros(1, 2, 8, 12)
    flow[:, 0] = -2.0
    assert torch.allclose(warp(prev, flow)[..., 2:], cur[..., 2:], atol=1e-5)
    conf = confidence_mask(cur, prev, flow)
    assert conf[..., 2:].min() == 1.0
    assert confidence_mask(cur, prev, torch.zeros_like(flow)).mean() < 0.5
    chained = compose_flows(flow, flow)
    assert torch.allclose(chained[..., 4:], torch.full_like(chained[..., 4:], 0.0) + torch.tensor([-4.0, 0.0]).view(1, 2, 1, 1))
