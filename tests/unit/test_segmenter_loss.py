"""The semantic training term: a frozen segmenter's cross-entropy on a frame against its labels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from renderer.segmenter import load_segmenter
from renderer.segmenter.loss import ensemble_segmentation_loss, segmentation_loss
from renderer.segmenter.model import Segmenter


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


def test_an_ensemble_of_teachers_averages_their_losses(two_colour_segmenter, make_two_colour_frame) -> None:
    trained = load_segmenter(two_colour_segmenter)
    torch.manual_seed(0)
    untrained = Segmenter(trained.config).eval().requires_grad_(False)
    rgb, labels = make_two_colour_frame(np.random.default_rng(6), 64, 32)
    photo = (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1).requires_grad_(True)
    ids = torch.from_numpy(labels)[None]
    alone = [float(segmentation_loss(s, photo, ids, 64).detach()) for s in (trained, untrained)]
    both = ensemble_segmentation_loss([trained, untrained], photo, ids, 64)
    # One network reading the photo right earns only its share: the untrained one still disagrees.
    assert alone[0] < 0.5 < alone[1]
    assert abs(float(both.detach()) - sum(alone) / 2) < 1e-5
    both.backward()
    assert float(photo.grad.abs().sum()) > 0
