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
    return ensemble_segmentation_loss([segmenter], fake, label_ids, frame_width)


def ensemble_segmentation_loss(segmenters: Sequence[Segmenter], fake: torch.Tensor, label_ids: torch.Tensor,
                               frame_width: int) -> torch.Tensor:
    """The mean of `segmentation_loss` over several frozen segmenters (shapes as there): a scalar.

    A pattern that only one network reads as a class earns a fraction of the reward, so the
    generator is pushed towards what segmenters in general read. The targets, and the crop at
    each input width, are made once for all of them.
    """
    rgb = (fake.float().clamp(-1, 1) + 1) / 2
    height, width = rgb.shape[-2:]
    target = train_ids_of(label_ids)
    nothing_scored = bool((target == IGNORE).all())
    scaled: dict[int, torch.Tensor] = {}
    losses = []
    for segmenter in segmenters:
        input_width = segmenter.config.input_width
        if input_width not in scaled:
            scale = input_width / frame_width
            scaled[input_width] = rgb if abs(scale - 1.0) <= 1e-6 else F.interpolate(
                rgb, size=(max(16, round(height * scale)), max(16, round(width * scale))),
                mode="bilinear", align_corners=False)
        logits = segmenter(scaled[input_width])
        if logits.shape[-2:] != (height, width):
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        # With nothing to score, keep the graph anyway: one backward per step.
        losses.append(logits.sum() * 0.0 if nothing_scored else
                      F.cross_entropy(logits, target, ignore_index=IGNORE))
    return torch.stack(losses).mean()
