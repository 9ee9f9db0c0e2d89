"""Encoding of label frames into the generator's inputs, as vid2vid's ``encode_input`` does it:
one-hot Cityscapes labelIds plus one instance-edge channel per frame, and image pyramids."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from renderer.edges import mark_edges


def one_hot_labels(label_ids: torch.Tensor, label_nc: int, dtype=torch.float32) -> torch.Tensor:
    """(B, H, W) integer labelIds -> (B, label_nc, H, W) one-hot; ids must be < label_nc."""
    one_hot = torch.zeros(
        (label_ids.shape[0], label_nc, *label_ids.shape[1:]), dtype=dtype, device=label_ids.device
    )
    return one_hot.scatter_(1, label_ids.long().unsqueeze(1), 1.0)


def instance_edges(instance_ids: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(B, H, W) instance ids -> (B, 1, H, W) edges: 1 where a 4-neighbour has another id."""
    edges = mark_edges(torch.zeros(instance_ids.shape, dtype=torch.bool, device=instance_ids.device), instance_ids)
    return edges.unsqueeze(1).to(dtype)


def encode_label_frame(
    label_ids: torch.Tensor,
    instance_ids: torch.Tensor | None,
    label_nc: int = 35,
    use_instance: bool = True,
) -> torch.Tensor:
    """(B, H, W) labelIds (+ instance ids) -> (B, label_nc [+1], H, W) float32 generator input.

    Without instance ids the edges are taken from the label map itself (class boundaries), which
    is what a Cityscapes instance map holds for stuff classes.
    """
    one_hot = one_hot_labels(label_ids, label_nc)
    if not use_instance:
        return one_hot
    source = instance_ids if instance_ids is not None else label_ids
    return torch.cat([one_hot, instance_edges(source)], dim=1)


def build_pyramid(frames: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
    """(B, C, H, W) -> ``n_levels`` tensors, **finest first**, each halved by NVIDIA's 3×3 average
    pool (stride 2, padding 1, padding not counted)."""
    pyramid = [frames]
    for _ in range(1, n_levels):
        pyramid.append(
            F.avg_pool2d(pyramid[-1], 3, stride=2, padding=1, count_include_pad=False)
        )
    return pyramid


def nearest_pyramid(frames: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
    """(B, C, H, W) -> ``n_levels`` tensors, **finest first**, each halved by nearest
    downsampling (every other row and column, from the first): one-hot inputs stay one-hot."""
    return [frames[..., :: 2**level, :: 2**level] for level in range(n_levels)]


def pooled_label_frame(
    label_ids: torch.Tensor, edges: torch.Tensor | None, label_nc: int = 35
) -> torch.Tensor:
    """The first pyramid level of ``encode_label_frame`` computed from the ids directly:
    (B, H, W) labelIds [+ (B, H, W) 0/1 edges] -> (B, label_nc [+1], ⌈H/2⌉, ⌈W/2⌉), equal to
    ``build_pyramid(encoded, 2)[1]`` without building the full-resolution one-hot."""
    batch, height, width = label_ids.shape
    out_h, out_w = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    sentinel = label_nc  # pixels outside the image land in an extra channel, then are dropped
    padded = F.pad(label_ids.long(), (1, 1, 1, 1), value=sentinel)
    padded_edges = F.pad(edges.float(), (1, 1, 1, 1)) if edges is not None else None
    counts = torch.zeros(batch, label_nc + 1, out_h, out_w, device=label_ids.device)
    ones = torch.ones(batch, 1, out_h, out_w, device=label_ids.device)
    edge_sum = torch.zeros(batch, 1, out_h, out_w, device=label_ids.device)
    for dy in range(3):
        for dx in range(3):
            rows = slice(dy, dy + 2 * out_h - 1, 2)
            cols = slice(dx, dx + 2 * out_w - 1, 2)
            counts.scatter_add_(1, padded[:, rows, cols].unsqueeze(1), ones)
            if padded_edges is not None:
                edge_sum += padded_edges[:, rows, cols].unsqueeze(1)
    valid = 9.0 - counts[:, label_nc:]
    pooled = counts[:, :label_nc] / valid
    if edges is None:
        return pooled
    return torch.cat([pooled, edge_sum / valid], dim=1)
