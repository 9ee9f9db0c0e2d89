"""Metrics on small synthetic images whose right answer is known."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from renderer.metrics import (
    ClassColorStats,
    FeatureStats,
    TemporalFlowDifference,
    WarpingErrorStream,
    backward_warp,
    fid,
    frechet_distance,
    kid,
    label_consistency_mask,
    psnr,
    warping_error,
)


def smooth_texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 texture with structure at several scales (trackable by optical flow)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    import cv2

    big = cv2.resize(coarse, (width + 16, height + 16), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 12, big.shape)
    return np.clip(big + fine, 0, 255).astype(np.uint8)[:height, :width]


def panning_video(frames: int, shift_px: int, height: int = 64, width: int = 128) -> list[np.ndarray]:
    """Frames of a texture moving right by shift_px per frame: backward flow is (-shift_px, 0)."""
    texture = smooth_texture(height, width + shift_px * frames)
    return [np.ascontiguousarray(texture[:, (frames - t) * shift_px:(frames - t) * shift_px + width])
            for t in range(frames)]


def test_psnr_known_values():
    image = np.full((4, 4, 3), 100, np.uint8)
    assert psnr(image, image) == math.inf
    # MSE 25 -> 10 log10(255^2 / 25)
    assert psnr(image + 5, image) == pytest.approx(10 * math.log10(255**2 / 25))
    with pytest.raises(ValueError, match="one shape"):
        psnr(image, image[:2])


def test_backward_warp_follows_the_flow_convention():
    prev = panning_video(2, 3)[0]
    current = panning_video(2, 3)[1]
    flow = np.zeros((64, 128, 2), np.float32)
    flow[..., 0] = -3.0  # content moved right by 3 px: pixel p of frame t was at p - 3 in t-1
    warped, inside = backward_warp(prev, flow)
    assert not inside[:, :3].any() and inside[:, 3:].all()
    np.testing.assert_array_equal(warped[:, 3:], current[:, 3:])


def test_warping_error_is_zero_for_consistent_motion_and_grows_with_flicker():
    video = panning_video(4, 2)
    flow = np.zeros((64, 128, 2), np.float32)
    flow[..., 0] = -2.0
    assert warping_error(video[0], video[1], flow) == pytest.approx(0.0, abs=1e-10)
    flicker = np.clip(video[1].astype(int) + 20, 0, 255).astype(np.uint8)
    assert warping_error(video[0], flicker, flow) > 0.01
    # The wrong flow (no motion) makes a consistent video look inconsistent.
    assert warping_error(video[0], video[1], np.zeros_like(flow)) > 0.01
    assert math.isnan(warping_error(video[0], video[1], flow, np.zeros((64, 128), bool)))


def test_warping_error_stream_yields_none_then_one_value_per_pair():
    video = panning_video(3, 1)
    flow = np.zeros((64, 128, 2), np.float32)
    flow[..., 0] = -1.0
    stream = WarpingErrorStream()
    assert stream.update(video[0], flow) is None
    assert stream.update(video[1], flow) == pytest.approx(0.0, abs=1e-10)
    stream.update(video[2], flow)
    assert len(stream.values) == 2


def test_label_consistency_mask_marks_disocclusion():
    # A car (26) on road (7) moves right by 4 px; the road it uncovers is disoccluded.
    prev = np.full((16, 32), 7, np.uint8)
    prev[4:10, 4:12] = 26
    current = np.full((16, 32), 7, np.uint8)
    current[4:10, 8:16] = 26
    flow = np.zeros((16, 32, 2), np.float32)
    flow[4:10, 8:16, 0] = -4.0  # car pixels came from 4 px to the left; background is static
    mask = label_consistency_mask(prev, current, flow)
    assert mask[4:10, 8:16].all()                  # the car itself is tracked
    assert not mask[4:10, 4:8].any()               # uncovered road was car in t-1
    assert mask[0].all() and mask[:, 20:].all()    # untouched background


def test_tof_zero_for_identical_videos_positive_for_different_motion():
    still = panning_video(3, 0)
    moving = panning_video(3, 3)
    same = TemporalFlowDifference("fast")
    for frame in moving:
        same.update(frame, frame)
    assert same.values == [0.0, 0.0]
    different = TemporalFlowDifference("fast")
    for frame, reference in zip(still, moving):
        different.update(frame, reference)
    # DIS recovers roughly the 3 px pan in the reference and none in the still video.
    assert 1.5 < np.mean(different.values) < 4.5
    with pytest.raises(ValueError, match="preset"):
        TemporalFlowDifference("slowest")


def test_streaming_stats_equal_batch_statistics_and_reservoir_is_bounded():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(50, 8))
    stats = FeatureStats(dim=8, max_kid_samples=20)
    for start in range(0, 50, 7):
        stats.update(features[start:start + 7])
    assert stats.count == 50
    np.testing.assert_allclose(stats.mean, features.mean(0))
    np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False), atol=1e-12)
    assert stats.kid_samples.shape == (20, 8)
    assert {tuple(row) for row in stats.kid_samples} <= {tuple(row) for row in features.astype(np.float32)}
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        stats.update(features[:, :4])


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mean_a, mean_b = np.zeros(3), np.array([1.0, 2.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 5.0 + np.sum(var_a + var_b - 2 * np.sqrt(var_a * var_b))
    assert frechet_distance(mean_a, np.diag(var_a), mean_b, np.diag(var_b)) == pytest.approx(expected)


def test_fid_and_kid_near_zero_for_one_distribution_and_large_for_another():
    rng = np.random.default_rng(2)
    stats = [FeatureStats(dim=4) for _ in range(3)]
    stats[0].update(rng.normal(size=(400, 4)))
    stats[1].update(rng.normal(size=(400, 4)))
    stats[2].update(rng.normal(loc=2.0, size=(400, 4)))
    assert fid(stats[0], stats[1]) < 0.1
    assert fid(stats[0], stats[2]) == pytest.approx(16.0, rel=0.1)
    same_mean, _ = kid(stats[0].kid_samples, stats[1].kid_samples, subset_size=200, num_subsets=10)
    far_mean, _ = kid(stats[0].kid_samples, stats[2].kid_samples, subset_size=200, num_subsets=10)
    assert abs(same_mean) < 0.05 < far_mean
    with pytest.raises(ValueError, match="at least 2"):
        kid(stats[0].kid_samples[:1], stats[1].kid_samples)


def test_class_color_stats_average_per_label_over_frames():
    labels = np.array([[7, 7], [26, 26]], np.uint8)
    stats = ClassColorStats()
    stats.update(np.array([[[100, 0, 0], [100, 0, 0]], [[0, 0, 200], [0, 0, 100]]], np.uint8), labels)
    stats.update(np.array([[[50, 0, 0], [50, 0, 0]], [[0, 0, 0], [0, 0, 0]]], np.uint8), labels)
    means = stats.mean_rgb()
    assert set(means) == {7, 26}
    assert means[7] == pytest.approx((75.0, 0.0, 0.0))
    assert means[26] == pytest.approx((0.0, 0.0, 75.0))
    assert stats.pixel_counts[7] == 4


def test_metrics_package_never_imports_pygame_or_carla():
    import subprocess

    code = ("import sys, renderer.metrics, renderer.metrics.bench; "
            "bad = [m for m in ('pygame', 'carla') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_fid_low_rank_path_equals_full_formula_when_images_are_fewer_than_dimensions():
    rng = np.random.default_rng(4)
    stats_a, stats_b = FeatureStats(dim=64), FeatureStats(dim=64)
    stats_a.update(np.abs(rng.normal(size=(10, 64))).astype(np.float32))
    stats_b.update(np.abs(rng.normal(size=(7, 64))).astype(np.float32) * 1.5)
    full = frechet_distance(stats_a.mean, stats_a.covariance, stats_b.mean, stats_b.covariance)
    assert fid(stats_a, stats_b) == pytest.approx(full, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        fid(stats_a, FeatureStats(dim=64))


def test_kid_reports_no_spread_when_every_subset_is_the_whole_set():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (12, 8)), rng.normal(0.5, 1, (12, 8))
    mean, spread = kid(a, b, subset_size=1000, num_subsets=20)
    assert spread is None and mean > 0  # one estimate, not a spread of rounding noise
    sub_mean, sub_spread = kid(a, b, subset_size=6, num_subsets=20)
    assert sub_spread is not None and sub_spread > 1e-6 and np.isfinite(sub_mean)
