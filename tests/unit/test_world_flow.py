"""Optical flow of the built-in world: warping frame t-1 with it must reproduce frame t."""

from __future__ import annotations

import numpy as np

from carla_neural.sources.base import VehicleControl
from carla_neural.sources.encoding import backward_flow_px, bgra_to_rgb, warp_backward
from carla_neural.sources.world import BuiltinWorld, WorldConfig


def _errors(previous, current, mask_fn=None):
    """Mean abs RGB error: no warp, warp with backward_flow_px, warp with the opposite sign."""
    before = bgra_to_rgb(previous.rgb_bgra).astype(np.float32)
    after = bgra_to_rgb(current.rgb_bgra).astype(np.float32)
    flow = backward_flow_px(current.flow)
    height, width = flow.shape[:2]
    grid_x = np.arange(width)[None] + flow[..., 0]
    grid_y = np.arange(height)[:, None] + flow[..., 1]
    # Only pixels whose surface was inside frame t-1 can be predicted from it.
    mask = (grid_x >= 0) & (grid_x <= width - 1) & (grid_y >= 0) & (grid_y <= height - 1)
    if mask_fn is not None:
        mask &= mask_fn(current)
    if mask.sum() < 50:
        return None
    return tuple(float(np.abs(image - after)[mask].mean())
                 for image in (before, warp_backward(before, flow), warp_backward(before, -flow)))


def test_flow_warps_the_previous_frame_onto_the_current_one():
    world = BuiltinWorld(WorldConfig(seed=1, width=256, height=128))
    for _ in range(25):  # get up to speed
        previous = world.tick()
    results = []
    for _ in range(4):
        current = world.tick()
        results.append(_errors(previous, current))
        previous = current
    no_warp, warped, wrong_sign = np.mean(results, axis=0)
    assert current.ego.speed_mps > 3.0
    # What warping cannot remove is at occlusion edges and in sub-pixel resampling of sharp edges.
    assert warped < 0.75 * no_warp, (no_warp, warped)
    assert wrong_sign > no_warp  # the sign convention matters and is the right one


def test_moving_cars_carry_their_own_motion():
    world = BuiltinWorld(WorldConfig(seed=3, width=256, height=128, vehicles=40, mount="chase"))
    world.apply_control(VehicleControl(brake=1.0))  # the ego stands still: all motion is the traffic's

    def traffic(frame):
        ids = frame.instance_bgra[..., 1].astype(np.int32) + 256 * frame.instance_bgra[..., 0].astype(np.int32)
        return np.isin(frame.semantic_bgra[..., 2], [14, 15, 16]) & (ids != world.ego.instance)

    for _ in range(20):  # let the traffic get up to speed
        previous = world.tick()
    results = []
    for _ in range(40):
        current = world.tick()
        errors = _errors(previous, current, traffic)
        if errors is not None:
            results.append(errors)
        previous = current
    assert len(results) >= 5
    no_warp, warped, _ = np.mean(results, axis=0)
    assert warped < 0.5 * no_warp, (no_warp, warped)
