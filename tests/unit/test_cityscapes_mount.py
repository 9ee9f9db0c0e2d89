"""The `cityscapes` camera mount: one place on both worlds, its own fov, and the viewpoint it was fitted to."""

from __future__ import annotations

import json

import pytest

from carla_neural.remap import Remapper
from carla_neural.sources.camera_mounts import CAMERA_MOUNTS, MOUNT_FOV_DEG
from carla_neural.sources.world import BuiltinWorld, WorldConfig
from carla_neural.sources.world.camera import MOUNTS
from domain_adapt.fit_mount import MOUNT_FIT
from domain_adapt.gap import DEFAULT_REFERENCE, load_stats, summarize
from domain_adapt.stats import LabelStatsAccumulator
from scenarios.mapping import world_config
from scenarios.schema import Scenario


def test_cityscapes_mount_is_the_same_place_on_carla_and_the_builtin_world():
    carla, builtin = CAMERA_MOUNTS["cityscapes"], MOUNTS["cityscapes"]
    assert (carla.x, carla.y, carla.z, carla.pitch) == (builtin.forward, -builtin.left, builtin.up, builtin.pitch_deg)
    assert list(CAMERA_MOUNTS) == list(MOUNTS)  # TAB cycles both in one order


def test_it_is_the_best_candidate_of_the_shipped_fit():
    fit = json.loads(MOUNT_FIT.read_text())
    best = fit["best"]
    mount = CAMERA_MOUNTS["cityscapes"]
    assert (best["x"], best["z"], best["pitch"], best["fov"]) == (mount.x, mount.z, mount.pitch,
                                                                  MOUNT_FOV_DEG["cityscapes"])
    assert best["score"] == min(row["score"] for row in fit["candidates"])


def test_a_scenario_naming_the_mount_gets_its_fov_unless_it_sets_one():
    scenario = Scenario.model_validate({"name": "s", "cameras": {"mount": "cityscapes"}})
    assert scenario.cameras.fov == MOUNT_FOV_DEG["cityscapes"]
    assert world_config(scenario).mount == "cityscapes"
    wide = Scenario.model_validate({"name": "s", "cameras": {"mount": "cityscapes", "fov": 70}})
    assert wide.cameras.fov == 70
    assert Scenario.model_validate({"name": "s", "cameras": {"mount": "hood"}}).cameras.fov == 90


@pytest.mark.slow
def test_builtin_world_from_the_mount_shows_no_bonnet_and_the_reference_horizon():
    remapper = Remapper("0.9.14")
    accumulator = LabelStatsAccumulator()
    config = WorldConfig(seed=1, mount="cityscapes", fov_deg=MOUNT_FOV_DEG["cityscapes"], sensors=("semantic",))
    with BuiltinWorld(config) as world:
        for _ in range(4):
            accumulator.add(remapper.label_ids(world.tick().semantic_bgra))
    ours = summarize(accumulator.finish())
    reference = summarize(load_stats(DEFAULT_REFERENCE))
    assert ours["hood_rows"] == 0
    assert abs(ours["horizon_row"] - reference["horizon_row"]) <= 8
