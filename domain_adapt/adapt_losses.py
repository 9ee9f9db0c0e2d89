"""The terms of unpaired fine-tuning that vid2vid's own training has no use for: the trust mask of
simulator flow and the anchor to the source model. Semantic consistency through a frozen segmenter
is renderer.segmenter.loss's; the GAN, feature-matching and warp losses are
renderer.training.losses'."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from renderer.training.flow import warp
from renderer.training.losses import feature_matching_loss
from renderer.training.trainer import no_param_grads


def flow_trust_mask(labels_prev: torch.Tensor, label_ids_cur: torch.Tensor, flow_px: torch.Tensor,
                    label_nc: int) -> torch.Tensor:
    """Where the simulator's backward flow can be trusted: (B, 1, H, W) float 0/1.

    labels_prev (B, C, H, W) one-hot labels of frame t-1 (the first `label_nc` channels are used),
    label_ids_cur (B, H, W) labelIds of frame t, flow_px (B, 2, H, W) backward flow t -> t-1 in px.
    A pixel is trusted when the flow lands inside frame t-1 and mostly on the class it has now:
    the ground-truth flow of a surface that was hidden (disoccluded) points at whatever covered it.
    """
    height, width = label_ids_cur.shape[-2:]
    ys = torch.arange(height, device=flow_px.device, dtype=flow_px.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow_px.device, dtype=flow_px.dtype).view(1, 1, width)
    x_prev, y_prev = xs + flow_px[:, 0], ys + flow_px[:, 1]
    inside = (x_prev >= 0) & (x_prev <= width - 1) & (y_prev >= 0) & (y_prev <= height - 1)
    warped = warp(labels_prev[:, :label_nc].float(), flow_px.float())
    same_class = warped.gather(1, label_ids_cur.long().clamp(0, label_nc - 1).unsqueeze(1)) >= 0.5
    return (inside.unsqueeze(1) & same_class).float()


def anchor_terms(adapted: torch.Tensor, source: torch.Tensor, discriminator: torch.nn.Module,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1, discriminator-feature L1) between the adapted model's frame and the frozen source model's
    on the same real labels and history: (B, 3, H, W) each in [-1, 1]; both 0 when they agree."""
    with torch.no_grad():
        source_features = discriminator(source.detach())
    with no_param_grads(discriminator):
        adapted_features = discriminator(adapted)
    return F.l1_loss(adapted.float(), source.detach().float()), feature_matching_loss(adapted_features, source_features)
