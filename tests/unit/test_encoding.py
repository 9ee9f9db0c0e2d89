"""CARLA encodings: depth, flow (CARLA's and KITTI PNG), BGRA conversions."""

from __future__ import annotations

import numpy as np
import pytest

from carla_neural.sources.encoding import (
    DEPTH_FAR_M,
    backward_flow_px,
    bgra_to_rgb,
    decode_depth_m,
    decode_flow_px,
    encode_backward_flow,
    encode_depth,
    read_flow_png,
    rgb_to_bgra,
    warp_backward,
    write_flow_png,
)


def test_bgra_to_rgb_swaps_channels_and_drops_alpha():
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 255
    rgb = bgra_to_rgb(bgra)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [30, 20, 10]
    assert np.array_equal(rgb_to_bgra(rgb), bgra)


def test_decode_depth_follows_carla_formula():
    rng = np.random.default_rng(0)
    bgra = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    b, g, r = (bgra[..., i].astype(np.float64) for i in range(3))
    expected = 1000.0 * (r + 256 * g + 65536 * b) / (256**3 - 1)
    assert np.allclose(decode_depth_m(bgra), expected, rtol=1e-6, atol=1e-4)


def test_depth_round_trip_is_exact_to_the_code_step():
    depth = np.array([[0.0, 0.05, 1.5], [12.345, 999.9, 1000.0]], np.float32)
    decoded = decode_depth_m(encode_depth(depth))
    assert np.abs(decoded - depth).max() <= DEPTH_FAR_M / (256**3 - 1)
    assert decode_depth_m(encode_depth(np.array([[5000.0]])))[0, 0] == pytest.approx(1000.0)


def test_decode_flow_scales_by_half_the_image_and_flips_y():
    flow = np.zeros((100, 200, 2), np.float32)
    flow[..., 0], flow[..., 1] = 0.5, 0.25
    pixels = decode_flow_px(flow)
    assert pixels[0, 0].tolist() == [50.0, -12.5]


def test_backward_flow_is_the_inverse_of_the_world_encoder():
    rng = np.random.default_rng(1)
    backward = rng.uniform(-30, 30, (64, 96, 2)).astype(np.float32)
    encoded = encode_backward_flow(backward)
    assert encoded.dtype == np.float32 and np.abs(encoded).max() <= 2.0
    assert np.allclose(backward_flow_px(encoded), backward, atol=1e-4)


def test_backward_flow_points_against_the_motion():
    # A surface that moved right by 4 px between t-1 and t was 4 px to the left in frame t-1.
    motion = np.zeros((10, 20, 2), np.float32)
    motion[..., 0] = 4.0 / (20 / 2)
    assert np.allclose(backward_flow_px(motion)[..., 0], -4.0)


def test_warp_backward_samples_at_p_plus_flow():
    image = np.tile(np.arange(16, dtype=np.float32), (8, 1))
    flow = np.zeros((8, 16, 2), np.float32)
    flow[..., 0] = 2.0
    warped = warp_backward(image, flow)
    assert np.allclose(warped[:, :10], image[:, 2:12])


def test_kitti_png_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    flow = rng.uniform(-200, 200, (20, 30, 2)).astype(np.float32)
    valid = rng.random((20, 30)) > 0.2
    path = tmp_path / "000000.png"
    write_flow_png(path, flow, valid)
    read, read_valid = read_flow_png(path)
    assert np.abs(read - flow).max() <= 1 / 64 / 2 + 1e-6
    assert np.array_equal(read_valid, valid)


def test_bad_inputs_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\(H, W, 4\) uint8"):
        decode_depth_m(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        decode_flow_px(np.zeros((4, 4), np.float32))
    with pytest.raises(FileNotFoundError, match="missing"):
        read_flow_png(tmp_path / "nope.png")
