"""Driving the ego car: VehicleControl like CARLA's, and the autopilot."""

from __future__ import annotations

import math

from carla_neural.sources.base import VehicleControl
from carla_neural.sources.world import BuiltinWorld, WorldConfig

CONFIG = WorldConfig(seed=4, width=32, height=16, sensors=("semantic",), vehicles=0, walkers=0)


def _drive(world: BuiltinWorld, control: VehicleControl, ticks: int):
    for _ in range(ticks):
        world.apply_control(control)
        frame = world.tick()
    return frame.ego


def test_throttle_brake_reverse_and_hand_brake():
    world = BuiltinWorld(CONFIG)
    ego = _drive(world, VehicleControl(throttle=1.0), 60)
    assert not ego.autopilot and ego.speed_mps > 6.0
    fast = ego.speed_mps
    ego = _drive(world, VehicleControl(brake=1.0), 30)
    assert ego.speed_mps == 0.0 and fast > 0
    ego = _drive(world, VehicleControl(throttle=0.6, reverse=True), 30)
    assert ego.speed_mps < -1.0
    _drive(world, VehicleControl(), 1)
    ego = _drive(world, VehicleControl(hand_brake=True), 40)
    assert ego.speed_mps == 0.0


def test_steering_right_turns_clockwise_and_left_counter_clockwise():
    headings = {}
    for steer in (-0.5, 0.0, 0.5):
        world = BuiltinWorld(CONFIG)
        start = world.tick().ego.yaw_deg
        ego = _drive(world, VehicleControl(throttle=0.5, steer=steer), 40)
        headings[steer] = math.remainder(ego.yaw_deg - start, 360.0)
    assert abs(headings[0.0]) < 1.0
    assert headings[0.5] < -20.0 < 20.0 < headings[-0.5]  # CARLA: steer > 0 is to the right


def test_autopilot_keeps_to_the_road_and_takes_over_again():
    world = BuiltinWorld(CONFIG)
    road_tags = {1, 24}  # road and lane-line pixels are what the car drives on
    for _ in range(120):
        frame = world.tick()
    assert frame.ego.autopilot and frame.ego.speed_mps > 4.0
    ego = world.ego
    cell = world.layout.ground.material_at([[ego.x, ego.y]])[0]
    assert int(cell) in {1, 2, 3}, "the autopilot left the asphalt"
    assert _ground_ahead(frame) in road_tags, "the camera does not see road straight ahead"
    _drive(world, VehicleControl(throttle=0.3, steer=0.2), 10)
    world.set_autopilot(True)
    for _ in range(80):
        frame = world.tick()
    assert frame.ego.autopilot and frame.ego.speed_mps > 2.0
    cell = world.layout.ground.material_at([[world.ego.x, world.ego.y]])[0]
    assert int(cell) in {1, 2, 3}
    assert _ground_ahead(frame) in road_tags, "after taking over, the car is not on the road"


def _ground_ahead(frame) -> int:
    """The semantic tag straight ahead of the car: the centre column's first pixel above the
    ego car's own hood (tag 14), counting up from the bottom row."""
    column = frame.semantic_bgra[:, frame.semantic_bgra.shape[1] // 2, 2]
    row = len(column) - 1
    while row > 0 and column[row] == 14:
        row -= 1
    return int(column[row])
