"""vid2vid's training losses: GAN (LSGAN or hinge), feature matching, VGG19 perceptual, flow, warp.

Default weights follow NVIDIA's vid2vid: feature matching x10, VGG x10, flow x10, warp x10 (lambda_T),
temporal GAN and its feature matching x1 and x10.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from renderer.model.style import pool_by_instance
from renderer.training.flow import warp

log = logging.getLogger(__name__)


@dataclass
class LossWeights:
    """Multipliers of each generator loss term (vid2vid's defaults)."""

    gan: float = 1.0
    feature_matching: float = 10.0
    vgg: float = 10.0
    flow: float = 10.0
    flow_warp: float = 10.0
    output_warp: float = 10.0
    occlusion_weight: float = 0.0  # vid2vid uses it only without real first frames
    temporal_gan: float = 1.0
    temporal_feature_matching: float = 10.0
    l1: float = 0.0
    # Not vid2vid's: L1 between each region's mean colour in the output and in the photo, a signal
    # for styles' per-class colour that per-pixel terms mix with texture (docs/styles.md, probes).
    region_colour: float = 0.0
    # Not vid2vid's: cross-entropy of a frozen teacher segmenter (TrainConfig.seg_teacher) on the
    # output against the input labels, a signal for the layout (a building read as a building).
    segmentation: float = 0.0


class GANLoss:
    """Adversarial loss on lists of discriminator outputs: 'lsgan' (least squares) or 'hinge'."""

    MODES = ("lsgan", "hinge")

    def __init__(self, mode: str = "lsgan") -> None:
        if mode not in self.MODES:
            raise ValueError(f"gan_mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def _one(self, scores: torch.Tensor, target_real: bool, for_discriminator: bool) -> torch.Tensor:
        scores = scores.float()
        if self.mode == "lsgan":
            return F.mse_loss(scores, torch.full_like(scores, 1.0 if target_real else 0.0))
        if not for_discriminator:
            return -scores.mean()
        return F.relu(1.0 - scores).mean() if target_real else F.relu(1.0 + scores).mean()

    def __call__(self, outputs: list[list[torch.Tensor]], target_real: bool, for_discriminator: bool) -> torch.Tensor:
        """Mean over discriminator scales of the loss on each scale's score map (the last activation)."""
        losses = [self._one(scale[-1], target_real, for_discriminator) for scale in outputs]
        return torch.stack(losses).mean()

    def discriminator_loss(self, outputs: list[list[torch.Tensor]], num_real: int) -> torch.Tensor:
        """A discriminator's loss on one forward of a batch whose first `num_real` items are real and
        the rest fake: the mean of its real and fake losses."""
        real = [[a[:num_real] for a in scale] for scale in outputs]
        fake = [[a[num_real:] for a in scale] for scale in outputs]
        return 0.5 * (self(real, True, True) + self(fake, False, True))


def feature_matching_loss(fake_outputs: list[list[torch.Tensor]], real_outputs: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD's L1 between intermediate discriminator activations of fake and (detached) real."""
    num_scales = len(fake_outputs)
    total = fake_outputs[0][0].new_zeros((), dtype=torch.float32)
    for fake_scale, real_scale in zip(fake_outputs, real_outputs):
        layer_weight = 4.0 / len(fake_scale)
        for fake_act, real_act in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + layer_weight / num_scales * F.l1_loss(fake_act.float(), real_act.detach().float())
    return total


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error where `mask` (B, 1, H, W) is 1; plain mean without a mask."""
    if mask is None:
        return F.l1_loss(prediction.float(), target.float())
    mask = mask.expand_as(prediction).float()
    return ((prediction.float() - target.float()).abs() * mask).sum() / mask.sum().clamp(min=1.0)


# torchvision's VGG19 `features` indices: conv layers and the ReLUs after which vid2vid taps.
_VGG19_CONV_CHANNELS = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
_VGG_TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
_VGG_TAP_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"


def region_colour_loss(fake: torch.Tensor, real: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images, (B, H, W) int64 region ids -> scalar: L1 between every pixel's region
    mean colour in `fake` and in `real`, so a region weighs by its area."""
    # A region mean is linear: pooling the difference once equals the difference of two poolings.
    return pool_by_instance(fake.float() - real.float(), regions).abs().mean()


def _vgg19_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for spec in _VGG19_CONV_CHANNELS:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_channels, spec, 3, padding=1), nn.ReLU(inplace=False)]
            in_channels = spec
    return nn.Sequential(*layers)


def find_vgg19_weights(path: str | Path | None = None) -> Path | None:
    """The VGG19 weights to use: `path`, else torchvision's cache file if present, else None."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"VGG19 weights {path} do not exist")
        return path
    hub_dir = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")).expanduser()
    cached = hub_dir / "hub" / "checkpoints" / TORCHVISION_VGG19_FILE
    return cached if cached.is_file() else None


class VGGPerceptualLoss(nn.Module):
    """vid2vid's VGG19 loss: weighted L1 of relu{1..5}_1 activations (images in [-1, 1], no ImageNet norm)."""

    def __init__(self, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.features = _vgg19_features()
        if state_dict is not None:
            features = {k.removeprefix("features."): v for k, v in state_dict.items() if k.startswith("features.")}
            if not features:
                features = dict(state_dict)
            self.features.load_state_dict(features)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> "VGGPerceptualLoss":
        """Load torchvision-format VGG19 weights (.pth via weights_only, or .safetensors)."""
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(state)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [-1, 1] -> scalar loss."""
        both = torch.cat([fake, real], dim=0)
        total = fake.new_zeros((), dtype=torch.float32)
        tap_iter = iter(zip(_VGG_TAPS, _VGG_TAP_WEIGHTS))
        tap, weight = next(tap_iter)
        for index, layer in enumerate(self.features):
            both = layer(both)
            if index == tap:
                fake_act, real_act = both.chunk(2, dim=0)
                total = total + weight * F.l1_loss(fake_act.float(), real_act.detach().float())
                nxt = next(tap_iter, None)
                if nxt is None:
                    break
                tap, weight = nxt
        return total


_warned_no_vgg = False


def build_vgg_loss(weights: str | Path | None, enabled: bool = True) -> VGGPerceptualLoss | None:
    """The VGG loss when weights are found (path or torchvision's cache); None with one warning otherwise."""
    global _warned_no_vgg
    if not enabled:
        return None
    path = find_vgg19_weights(weights)
    if path is None:
        if not _warned_no_vgg:
            log.warning(
                "VGG19 perceptual loss is OFF: no weights given (--vgg-weights PATH) and none in torchvision's "
                "cache (~/.cache/torch/hub/checkpoints/%s). Training continues without it.", TORCHVISION_VGG19_FILE)
            _warned_no_vgg = True
        return None
    log.info("VGG19 perceptual loss with weights %s", path)
    return VGGPerceptualLoss.from_file(path)


def flow_loss(pred_flow: torch.Tensor, ref_flow: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and ground-truth backward flow (B, 2, H, W) pixels, where confident."""
    return masked_l1(pred_flow, ref_flow, confidence)


def flow_warp_loss(pred_flow: torch.Tensor, real_prev: torch.Tensor, real_cur: torch.Tensor,
                   confidence: torch.Tensor) -> torch.Tensor:
    """The real previous frame warped by the predicted flow should match the real current frame."""
    return masked_l1(warp(real_prev, pred_flow), real_cur, confidence)


def output_warp_loss(fake_cur: torch.Tensor, fake_prev: torch.Tensor, ref_flow: torch.Tensor,
                     confidence: torch.Tensor) -> torch.Tensor:
    """The output should match the previous output warped by the ground-truth flow (temporal consistency)."""
    return masked_l1(fake_cur, warp(fake_prev, ref_flow).detach(), confidence)


def occlusion_weight_loss(weight: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Pushes the hallucination weight towards 0 (use the warped frame) where the flow is trusted."""
    return masked_l1(weight, torch.zeros_like(weight), confidence)


def compose_flows(flow_near: torch.Tensor, flow_far: torch.Tensor) -> torch.Tensor:
    """Chain backward flows t->t-a (B, 2, H, W) and t-a->t-b into t->t-b, in pixels."""
    return flow_near + warp(flow_far, flow_near)
