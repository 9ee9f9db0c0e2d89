"""Semantic consistency as a training term: cross-entropy of a frozen segmenter on generated
frames against the label maps they came from (vid2vid training with a teacher, domain adaptation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from renderer.segmenter.classes import IGNORE, LABEL_TO_TRAIN
from renderer.segmenter.model import Segmenter


def train_ids_of(label_ids: torch.Tensor) -> torch.Tensor:
    """Cityscapes labelIds (..., H, W) int -> trainIds (..., H, W) int64, 255 where ignored."""
    table = torch.as_tensor(LABEL_TO_TRAIN, device=label_ids.device).long()
    return table[label_ids.long().clamp(0, 255)]


def segmentation_loss(segmenter: Segmenter, fake: torch.Tensor, label_ids: torch.Tensor,
                      frame_width: int) -> torch.Tensor:
    """Cross-entropy of the frozen segmenter's logits on generated frames against their input labels.

    fake (B, 3, h, w) in [-1, 1] (a crop of frames `frame_width` wide), label_ids (B, h, w) labelIds;
    labels outside the 19 train classes are ignored. The crop is scaled by input_width / frame_width
    first, so the segmenter sees objects at the size it was trained on; gradients flow to `fake`.
    """
    scale = segmenter.config.input_width / frame_width
    rgb = (fake.float().clamp(-1, 1) + 1) / 2
    height, width = rgb.shape[-2:]
    if abs(scale - 1.0) > 1e-6:
        size = (max(16, round(height * scale)), max(16, round(width * scale)))
        rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
    logits = segmenter(rgb)
    if logits.shape[-2:] != (height, width):
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    target = train_ids_of(label_ids)
    if bool((target == IGNORE).all()):
        return logits.sum() * 0.0  # nothing to score, but keep the graph for one backward per step
    return F.cross_entropy(logits, target, ignore_index=IGNORE)


def ensemble_segmentation_loss(segmenters: Sequence[Segmenter], fake: torch.Tensor, label_ids: torch.Tensor,
                               frame_width: int) -> torch.Tensor:
    """The mean of `segmentation_loss` over several frozen segmenters (shapes as there): a scalar.

    A pattern that only one network reads as a class earns a fraction of the reward, so the
    generator is pushed towards what segmenters in general read.
    """
    losses = [segmentation_loss(s, fake, label_ids, frame_width) for s in segmenters]
    return torch.stack(losses).mean()
