"""Exact fast paths for the 7×7 stem convolutions on one-hot label inputs.

The label input of every scale is 3 frames × (35 one-hot classes + 1 edge channel) = 108
channels, and at the finest scale it runs through 7×7 convs at full resolution: the largest single
cost of NVIDIA's models (38 % of the 1024_g1 model's multiply-adds). Two exact alternatives:

- ``present_channel_conv``: an absent class is an all-zero channel that adds nothing, so convolve
  only the channels that are non-zero somewhere (any scale, also the avg-pooled coarse ones).
- ``lookup_stem`` (finest scale, where the input is exactly one-hot with 0/1 edges): per output
  pixel the conv is a sum over frames f and taps k of ``T[f, k, code_f(p + k)]`` with
  ``code = label·2 + edge``, a table built once from the weights. The frames are folded into one
  table over the code tuples present in this frame triple, a pixel whose 7×7 window holds one
  tuple takes one precomputed row, and ``F.embedding_bag`` sums 49 rows for the others: cost
  ∝ 49·Cout per boundary pixel instead of 108·49·Cout per pixel.
- ``pooled_lookup_stem``: the same for the first pyramid level (3×3 average pool of the one-hot),
  as a weighted bag of 49·9 rows.

Several convs reading the same input (the image/flow encoder stem and the foreground stem) are
computed together with their weights stacked, so the input is read once. Results equal the dense
convolution up to float summation order (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOOKUP_BAND_PIXELS = 1 << 16  # pixels per embedding_bag call: bounds the index memory


def present_channels(features: torch.Tensor) -> torch.Tensor:
    """Indices (long) of the channels of ``features`` (B, C, H, W) that are non-zero anywhere."""
    nonzero = features.detach().ne(0).transpose(0, 1).reshape(features.shape[1], -1).any(dim=1)
    return torch.nonzero(nonzero).flatten()


def channels_from_codes(codes: torch.Tensor, label_nc: int, use_instance: bool) -> torch.Tensor:
    """Indices (long) of the stacked-input channels that are non-zero, from the frames' codes
    (B, F, H, W): the same at every pyramid level, since average pooling keeps presence."""
    n_frames = codes.shape[1]
    n_codes = label_nc * (2 if use_instance else 1)
    frame_offset = torch.arange(n_frames, device=codes.device).view(1, n_frames, 1, 1) * n_codes
    counts = torch.bincount((codes + frame_offset).flatten(), minlength=n_frames * n_codes)
    counts = counts.view(n_frames, label_nc, -1)  # (F, label, edge?)
    label_channels = label_nc + (1 if use_instance else 0)
    present = torch.zeros(n_frames, label_channels, dtype=torch.bool, device=codes.device)
    present[:, :label_nc] = counts.sum(-1) > 0
    if use_instance:
        present[:, label_nc] = counts[:, :, 1].sum(-1) > 0
    return torch.nonzero(present.flatten()).flatten()


def _stacked(convs: list[nn.Conv2d]) -> tuple[torch.Tensor, torch.Tensor | None]:
    weights = torch.cat([conv.weight for conv in convs], dim=0)
    biases = None
    if all(conv.bias is not None for conv in convs):
        biases = torch.cat([conv.bias for conv in convs], dim=0)  # type: ignore[misc]
    return weights, biases


def present_channel_conv(
    features: torch.Tensor,
    convs: list[nn.Conv2d],
    reflect_pad: int,
    channels: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Reflect-pad ``features`` (B, C, H, W) and apply each conv of ``convs``, skipping all-zero
    input channels (``channels``: the non-zero ones, found if not given); returns one
    (B, O_i, H', W') tensor per conv, equal to the dense result."""
    if channels is None:
        channels = present_channels(features)
    selected = features.index_select(1, channels)
    if reflect_pad:
        selected = F.pad(selected, (reflect_pad,) * 4, mode="reflect")
    weights, biases = _stacked(convs)
    weights = weights.index_select(1, channels)
    first = convs[0]
    combined = F.conv2d(selected, weights, biases, stride=first.stride, padding=first.padding)
    return list(combined.split([conv.out_channels for conv in convs], dim=1))


def frame_codes(label_ids: torch.Tensor, edges: torch.Tensor | None) -> torch.Tensor:
    """Per-pixel lookup codes: ``label·2 + edge`` with edges, else the label id; int64, same shape."""
    codes = label_ids.long()
    if edges is not None:
        codes = codes * 2 + edges.long()
    return codes


def lookup_table(
    convs: list[nn.Conv2d], label_nc: int, use_instance: bool, n_frames: int
) -> torch.Tensor:
    """(n_frames·k·k·n_codes, Cout) table of the stacked convs' weights, rows indexed by
    ``(frame·k·k + tap)·n_codes + code`` (tap in row-major kernel order)."""
    weights, _ = _stacked(convs)
    out_channels, in_channels, k_h, k_w = weights.shape
    label_channels = label_nc + (1 if use_instance else 0)
    if in_channels != n_frames * label_channels:
        raise ValueError(
            f"stem has {in_channels} input channels, expected {n_frames}×{label_channels}"
        )
    per_frame = weights.reshape(out_channels, n_frames, label_channels, k_h * k_w)
    label_part = per_frame[:, :, :label_nc]  # (Cout, F, L, taps)
    if use_instance:
        edge_part = per_frame[:, :, label_nc : label_nc + 1]
        label_part = torch.stack([label_part, label_part + edge_part], dim=3)  # (Cout,F,L,2,taps)
        label_part = label_part.reshape(out_channels, n_frames, label_nc * 2, k_h * k_w)
    # -> (F, taps, codes, Cout)
    return label_part.permute(1, 3, 2, 0).reshape(-1, out_channels).contiguous()


def _reflect_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    index = torch.arange(-pad, size + pad, device=device).abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


_PAD_INDEX_CACHE: dict[tuple[int, int, int, str], torch.Tensor] = {}


def _reflect_pad_index(height: int, width: int, pad: int, device: torch.device) -> torch.Tensor:
    """Flat indices into an (H, W) map that reflect-pad it by ``pad``: ((H+2p)·(W+2p),) int64."""
    key = (height, width, pad, str(device))
    if key not in _PAD_INDEX_CACHE:
        rows = _reflect_index(height, pad, device)
        cols = _reflect_index(width, pad, device)
        _PAD_INDEX_CACHE[key] = (rows.view(-1, 1) * width + cols.view(1, -1)).flatten()
    return _PAD_INDEX_CACHE[key]


def _frame_tables(
    table: torch.Tensor, codes: torch.Tensor, n_codes: int, taps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold the frames: (taps, K, Cout) table over the K distinct per-pixel code tuples present,
    and the (H, W) index of each pixel's tuple."""
    n_frames = codes.shape[0]
    combined = torch.zeros_like(codes[0])
    for frame in range(n_frames):
        combined = combined * n_codes + codes[frame]
    unique, inverse = torch.unique(combined, return_inverse=True)
    per_frame = table.view(n_frames, taps, n_codes, -1)
    folded = None
    for frame in range(n_frames - 1, -1, -1):
        frame_code = unique % n_codes
        unique = unique // n_codes
        rows = per_frame[frame].index_select(1, frame_code)
        folded = rows if folded is None else folded + rows
    assert folded is not None
    return folded, inverse


def lookup_stem(
    codes: torch.Tensor,
    table: torch.Tensor,
    bias: torch.Tensor | None,
    n_codes: int,
    kernel: int = 7,
) -> torch.Tensor:
    """Reflect-padded k×k stem conv of one-hot frames given as ``codes`` (B, F, H, W) int64;
    returns (B, Cout, H, W), equal to the dense conv.

    Per frame triple the three frames' tables are folded into one over the code tuples present,
    so each pixel sums k·k rows instead of F·k·k; a pixel whose whole window holds one tuple
    (the inside of regions: most pixels) takes a single precomputed row.
    """
    batch, _, height, width = codes.shape
    taps, pad = kernel * kernel, kernel // 2
    out_channels = table.shape[1]
    pad_index = _reflect_pad_index(height, width, pad, codes.device)
    padded_width = width + 2 * pad
    # Flat offsets of the k×k window's taps in the padded map, row-major like the weights.
    window = (
        torch.arange(kernel, device=codes.device).view(kernel, 1) * padded_width
        + torch.arange(kernel, device=codes.device).view(1, kernel)
    ).flatten()
    tap_rows = torch.arange(taps, device=codes.device, dtype=torch.int32)
    output = torch.empty(batch, height * width, out_channels, dtype=table.dtype, device=table.device)
    for sample in range(batch):
        folded, inverse = _frame_tables(table, codes[sample], n_codes, taps)
        n_tuples = folded.shape[1]
        # int32 halves the memory traffic of the index arithmetic below (tuples < 2^31).
        flat_padded = inverse.flatten().to(torch.int32)[pad_index]
        as_float = flat_padded.view(1, height + 2 * pad, padded_width).to(torch.float32)
        # Separable k×k max/min (2k comparisons per pixel instead of k²).
        window_max = F.max_pool2d(F.max_pool2d(as_float, (1, kernel), 1), (kernel, 1), 1)[0]
        window_min = -F.max_pool2d(F.max_pool2d(-as_float, (1, kernel), 1), (kernel, 1), 1)[0]
        uniform = (window_max == window_min).flatten()
        # Inside a region: the whole kernel's sum for that tuple.
        torch.index_select(folded.sum(0), 0, inverse.flatten(), out=output[sample])
        boundary = torch.nonzero(~uniform).flatten()
        if boundary.numel():
            flat_table = folded.reshape(taps * n_tuples, out_channels)
            for start in range(0, boundary.numel(), LOOKUP_BAND_PIXELS):
                chosen = boundary[start : start + LOOKUP_BAND_PIXELS]
                corner = (chosen // width) * padded_width + chosen % width
                tuples = flat_padded[corner.unsqueeze(1) + window]
                indices = tuples + tap_rows * n_tuples  # int32, as embedding_bag accepts
                output[sample, chosen] = F.embedding_bag(indices, flat_table, mode="sum")
    if bias is not None:
        output += bias
    # One transpose to NCHW here, so that the per-conv channel slices taken later are contiguous.
    return output.view(batch, height, width, out_channels).permute(0, 3, 1, 2).contiguous()


def pooled_lookup_stem(
    codes: torch.Tensor,
    table: torch.Tensor,
    bias: torch.Tensor | None,
    n_codes: int,
    kernel: int = 7,
) -> torch.Tensor:
    """The stem conv of the *first pyramid level* (3×3 average pool, stride 2, padding not
    counted) of one-hot frames given as full-resolution ``codes`` (B, F, H, W) int64;
    returns (B, Cout, ⌈H/2⌉, ⌈W/2⌉), equal to the dense conv on the pooled input.

    Each pooled pixel is the mean of its ≤ 9 full-resolution pixels, so per output pixel the conv
    is a weighted sum of k·k·9 table rows (weights 1/count); windows that hold one code tuple
    throughout take a single precomputed row.
    """
    batch, _, height, width = codes.shape
    out_h, out_w = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    taps, pad = kernel * kernel, kernel // 2
    out_channels = table.shape[1]
    device = codes.device
    rows = _reflect_index(out_h, pad, device)
    cols = _reflect_index(out_w, pad, device)
    padded_w = out_w + 2 * pad
    window = (
        torch.arange(kernel, device=device).view(kernel, 1) * padded_w
        + torch.arange(kernel, device=device).view(1, kernel)
    ).flatten()
    output = torch.empty(batch, out_h * out_w, out_channels, dtype=table.dtype, device=table.device)
    for sample in range(batch):
        folded, inverse = _frame_tables(table, codes[sample], n_codes, taps)
        n_tuples = folded.shape[1]
        sentinel = n_tuples  # outside the image: a zero row
        fine = F.pad(inverse.unsqueeze(0), (1, 1, 1, 1), value=sentinel)[0]
        # The ≤ 9 full-resolution tuples under each pooled pixel: (out_h, out_w, 9)
        support = torch.stack(
            [
                fine[dy : dy + 2 * out_h - 1 : 2, dx : dx + 2 * out_w - 1 : 2]
                for dy in range(3)
                for dx in range(3)
            ],
            dim=-1,
        )
        outside = support == sentinel
        weight = 1.0 / (9 - outside.sum(-1)).to(table.dtype)
        centre = support[..., 4:5].expand_as(support)
        filled = torch.where(outside, centre, support)
        # Reflect-pad the pooled grid as the conv's padding does.
        support = support[rows][:, cols].reshape(-1, 9)
        weight = weight[rows][:, cols].flatten()
        high = filled.amax(-1)[rows][:, cols].to(torch.float32).unsqueeze(0)
        low = filled.amin(-1)[rows][:, cols].to(torch.float32).unsqueeze(0)
        window_max = F.max_pool2d(F.max_pool2d(high, (1, kernel), 1), (kernel, 1), 1)[0]
        window_min = -F.max_pool2d(F.max_pool2d(-low, (1, kernel), 1), (kernel, 1), 1)[0]
        uniform = (window_max == window_min).flatten()
        whole = folded.sum(0)
        torch.index_select(whole, 0, window_max.flatten().long(), out=output[sample])
        boundary = torch.nonzero(~uniform).flatten()
        if boundary.numel():
            flat_table = torch.cat(
                [folded, folded.new_zeros(taps, 1, out_channels)], dim=1
            ).reshape(taps * (n_tuples + 1), out_channels)
            tap_rows = (torch.arange(taps, device=device) * (n_tuples + 1)).view(1, taps, 1)
            chunk = max(1, LOOKUP_BAND_PIXELS // 9)
            for start in range(0, boundary.numel(), chunk):
                chosen = boundary[start : start + chunk]
                corner = (chosen // out_w) * padded_w + chosen % out_w
                cells = corner.unsqueeze(1) + window  # (N, taps) cells of the padded grid
                indices = (support[cells] + tap_rows).reshape(chosen.numel(), taps * 9)
                weights = weight[cells].unsqueeze(-1).expand(-1, -1, 9).reshape(chosen.numel(), taps * 9)
                output[sample, chosen] = F.embedding_bag(
                    indices, flat_table, mode="sum", per_sample_weights=weights
                )
    if bias is not None:
        output += bias
    return output.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2).contiguous()
