"""Flow warping: zero flow is the identity, a one-pixel flow shifts by one pixel, borders clamp."""

from __future__ import annotations

import pytest
import torch

from renderer.model.warp import warp


@pytest.mark.parametrize("mode", ["pixel", "grid_sample"])
@pytest.mark.parametrize(("height", "width"), [(16, 24), (37, 91)])
def test_zero_flow_returns_the_input(mode: str, height: int, width: int) -> None:
    image = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    out = warp(image, torch.zeros(2, 2, height, width), mode)
    if mode == "pixel":
        assert torch.equal(out, image)
    else:  # NVIDIA's normalise/unnormalise round trip costs a little float precision
        assert torch.allclose(out, image, atol=1e-5)


@pytest.mark.parametrize("mode", ["pixel", "grid_sample"])
def test_one_pixel_flow_shifts_by_one_pixel(mode: str) -> None:
    image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(1))
    right = torch.zeros(1, 2, 20, 30)
    right[:, 0] = 1.0  # sample one pixel to the right
    out = warp(image, right, mode)
    assert torch.allclose(out[..., :-1], image[..., 1:], atol=1e-5)
    assert torch.allclose(out[..., -1], image[..., -1], atol=1e-5)  # border padding
    down = torch.zeros(1, 2, 20, 30)
    down[:, 1] = 1.0
    out = warp(image, down, mode)
    assert torch.allclose(out[..., :-1, :], image[..., 1:, :], atol=1e-5)
    if mode == "pixel":
        assert torch.equal(out[..., :-1, :], image[..., 1:, :])


def test_half_pixel_flow_is_bilinear_and_both_modes_agree() -> None:
    image = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(2))
    half = torch.zeros(1, 2, 12, 16)
    half[:, 0] = 0.5
    out = warp(image, half)
    assert torch.allclose(out[..., :-1], (image[..., :-1] + image[..., 1:]) / 2, atol=1e-6)
    flow = torch.randn(1, 2, 12, 16, generator=torch.Generator().manual_seed(3)) * 4
    assert torch.allclose(warp(image, flow, "pixel"), warp(image, flow, "grid_sample"), atol=1e-4)
