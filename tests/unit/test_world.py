"""The built-in world: frames, encodings, determinism, content and instance ids."""

from __future__ import annotations

import numpy as np
import pytest

from carla_neural.sources.base import Frame, Source
from carla_neural.sources.encoding import bgra_to_rgb, decode_depth_m
from carla_neural.sources.world import MOUNTS, WEATHER_PRESETS, BuiltinWorld, WorldConfig

SMALL = dict(width=96, height=48)


def _instance_ids(frame: Frame) -> np.ndarray:
    return frame.instance_bgra[..., 1].astype(np.int32) + 256 * frame.instance_bgra[..., 0].astype(np.int32)


def _frames(world: BuiltinWorld, count: int) -> list[Frame]:
    return [world.tick() for _ in range(count)]


def test_frame_carries_every_sensor_in_carla_shapes():
    with BuiltinWorld(WorldConfig(seed=0, **SMALL)) as world:
        assert isinstance(world, Source)
        frames = _frames(world, 3)
    frame = frames[-1]
    assert frame.frame_id == 3 and frame.sim_time == pytest.approx(0.15)
    for image in (frame.semantic_bgra, frame.instance_bgra, frame.rgb_bgra, frame.depth_bgra):
        assert image.shape == (48, 96, 4) and image.dtype == np.uint8
        assert (image[..., 3] == 255).all()
    assert frame.flow.shape == (48, 96, 2) and frame.flow.dtype == np.float32
    assert np.abs(frame.flow).max() <= 2.0
    assert (frame.semantic_bgra[..., :2] == 0).all()  # CARLA's semantic camera: tag in red only
    assert frame.tag_scheme == "0.9.14" and frame.size == (96, 48)
    assert frame.ego is not None and frame.ego.autopilot
    depth = decode_depth_m(frame.depth_bgra)
    tags = frame.semantic_bgra[..., 2]
    assert np.allclose(depth[tags == 11], 1000.0, atol=0.01)
    assert (depth[tags != 11] < 1000.0).all() and (depth > 0).all()


def test_same_seed_same_frames_and_other_seed_other_frames():
    def run(seed: int) -> list[Frame]:
        return _frames(BuiltinWorld(WorldConfig(seed=seed, vehicles=8, walkers=8, **SMALL)), 6)

    first, again, other = run(5), run(5), run(6)
    for one, two in zip(first, again):
        for name in ("semantic_bgra", "instance_bgra", "rgb_bgra", "depth_bgra", "flow"):
            assert np.array_equal(getattr(one, name), getattr(two, name)), name
        assert one.ego == two.ego
    assert not np.array_equal(first[-1].rgb_bgra, other[-1].rgb_bgra)
    assert not np.array_equal(first[-1].semantic_bgra, other[-1].semantic_bgra)


@pytest.mark.parametrize("layout", ["urban", "highway"])
def test_every_claimed_tag_appears_over_a_short_drive(layout):
    world = BuiltinWorld(WorldConfig(layout=layout, seed=0, width=128, height=64, sensors=("semantic",)))
    seen: set[int] = set()
    for index in range(200):
        if index % 4 == 0:
            world.next_mount()
        seen |= {int(tag) for tag in np.unique(world.tick().semantic_bgra[..., 2])}
    assert world.emitted_tags <= seen, f"claimed but never seen: {sorted(world.emitted_tags - seen)}"
    assert seen <= set(range(0, 29)), "tags outside CARLA's 0.9.14 scheme"
    assert {1, 11, 14, 24} <= world.emitted_tags


def test_instance_ids_match_semantic_tags_and_stay_stable():
    world = BuiltinWorld(WorldConfig(seed=2, vehicles=15, walkers=20, mount="chase", width=160, height=80))
    tag_of_id: dict[int, int] = {}
    for frame in _frames(world, 20):
        tags = frame.semantic_bgra[..., 2]
        assert np.array_equal(frame.instance_bgra[..., 2], tags)
        ids = _instance_ids(frame)
        objects = ids > 0
        pairs = np.unique(np.stack([ids[objects], tags[objects]], axis=1), axis=0)
        for object_id, tag in pairs.tolist():
            # Each object id carries one tag, in every frame it appears in.
            assert tag_of_id.setdefault(object_id, tag) == tag
        # Things are objects with ids; ground and sky carry id 0.
        assert (ids[np.isin(tags, [12, 14, 15, 16])] > 0).all()
        assert (ids[np.isin(tags, [1, 2, 11, 24])] == 0).all()
    assert len(tag_of_id) > 10
    ego_tags = {tag for object_id, tag in tag_of_id.items() if object_id == world.ego.instance}
    assert ego_tags == {14}  # the chase camera sees the ego car


def test_weather_changes_rgb_only_and_mounts_move_the_camera():
    world = BuiltinWorld(WorldConfig(seed=1, **SMALL))
    world.tick()
    noon = world.render()
    world.set_weather("ClearNight")
    night = world.render()
    assert np.array_equal(noon.semantic_bgra, night.semantic_bgra)
    assert bgra_to_rgb(night.rgb_bgra).mean() < 0.6 * bgra_to_rgb(noon.rgb_bgra).mean()
    world.set_weather("HardRainNoon")
    assert not np.array_equal(world.render().rgb_bgra, noon.rgb_bgra)
    names = [world.next_mount() for _ in MOUNTS]
    assert sorted(names) == sorted(MOUNTS) and world.mount == "hood"
    world.set_mount("chase")
    assert not np.array_equal(world.render().semantic_bgra, noon.semantic_bgra)
    assert {"ClearNoon", "CloudyNoon", "WetNoon", "ClearSunset", "ClearNight", "HardRainNoon"} <= set(
        WEATHER_PRESETS)


def test_bad_configuration_names_the_field_and_the_choices():
    with pytest.raises(ValueError, match="layout='moon'.*urban"):
        WorldConfig(layout="moon")
    with pytest.raises(ValueError, match="weather='Foggy'"):
        WorldConfig(weather="Foggy")
    with pytest.raises(ValueError, match="mount='trunk'"):
        WorldConfig(mount="trunk")
    with pytest.raises(ValueError, match="unknown WorldConfig fields"):
        BuiltinWorld(colour="red")
    world = BuiltinWorld(WorldConfig(seed=0, **SMALL))
    with pytest.raises(ValueError, match="unknown weather preset"):
        world.set_weather("Sunny")
    world.close()
    with pytest.raises(RuntimeError, match="closed"):
        world.tick()
