"""The semantic training term: a frozen segmenter's cross-entropy on a frame against its labels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from renderer.segmenter import load_segmenter
from renderer.segmenter.loss import segmentation_loss


def test_segmentation_loss_prefers_the_photo_that_matches_the_labels(two_colour_segmenter, make_two_colour_frame) -> None:
    segmenter = load_segmenter(two_colour_segmenter)
    rgb, labels = make_two_colour_frame(np.random.default_rng(5), 64, 32)
    photo = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
    swapped = photo.flip(-1).clone().requires_grad_(True)  # sky painted where the road is, and back
    ids = torch.from_numpy(labels)[None]
    right, wrong = segmentation_loss(segmenter, photo, ids, 64), segmentation_loss(segmenter, swapped, ids, 64)
    assert float(right.detach()) < 0.5 < float(wrong.detach())
    wrong.backward()
    assert float(swapped.grad.abs().sum()) > 0  # the frozen segmenter passes gradients to the image
    # A crop of frames twice as wide is scaled to the segmenter's own object size first.
    big = F.interpolate(photo, scale_factor=2.0, mode="nearest")
    big_ids = ids.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert float(segmentation_loss(segmenter, big, big_ids, 128).detach()) < 0.5
