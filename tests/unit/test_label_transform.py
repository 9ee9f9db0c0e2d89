"""The label transform: class map, boundary smoothing, speck removal, determinism, timing, config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from domain_adapt.stats import contour_lengths
from carla_neural.label_transform import (
    CALIBRATED_CONFIG,
    EVALUATION_IDS,
    LabelTransform,
    LabelTransformConfig,
    TransformConfigError,
    load_transform_config,
)
from domain_adapt.transform import benchmark

W, H = 512, 256
ROAD, SKY, SIDEWALK, POLE, TERRAIN, GROUND, GUARD_RAIL = 7, 23, 8, 17, 22, 6, 14


def street() -> np.ndarray:
    labels = np.full((H, W), ROAD, np.uint8)
    labels[:100] = SKY
    return labels


def test_classes_the_real_maps_lack_go_to_plausible_ones():
    labels = street()
    labels[200:210, 0:50] = GROUND
    labels[150:160, 100:300] = GUARD_RAIL
    out = LabelTransform(LabelTransformConfig())(labels)
    assert out[205, 10] == SIDEWALK and out[155, 200] == 13  # guard rail -> fence
    assert set(np.unique(out)) <= set(EVALUATION_IDS)


def test_median_smooths_a_jagged_edge_but_keeps_a_thin_pole():
    labels = street()
    for column in range(0, W, 4):
        labels[97:100, column:column + 2] = ROAD  # teeth on the horizon
    labels[40:200, 300] = POLE  # one pixel wide
    out = LabelTransform(LabelTransformConfig(median_kernel=5))(labels)
    before = np.divide(*contour_lengths(labels == ROAD))
    after = np.divide(*contour_lengths(out == ROAD))
    assert after < before
    assert (out[40:200, 300] == POLE).all()
    erased = LabelTransform(LabelTransformConfig(median_kernel=5, keep_thin=[]))(labels)
    # (Where the pole crosses the horizon a median of ids may keep it: 17 lies between 7 and 23.)
    assert not (erased[110:200] == POLE).any() and not (erased[40:90] == POLE).any()


def test_specks_under_the_size_take_their_surroundings():
    labels = street()
    labels[150:152, 20:22] = TERRAIN  # 4 px
    labels[200:210, 300:310] = TERRAIN  # 100 px
    config = LabelTransformConfig(min_region_px=16, speck_classes=[TERRAIN])
    out = LabelTransform(config)(labels)
    assert (out[150:152, 20:22] == ROAD).all()
    assert (out[200:210, 300:310] == TERRAIN).all()
    # Classes not listed keep their specks.
    labels[150:152, 20:22] = SIDEWALK
    assert (LabelTransform(config)(labels)[150:152, 20:22] == SIDEWALK).all()


def test_sizes_scale_with_the_frame():
    labels = np.kron(street(), np.ones((2, 2), np.uint8))  # 1024 x 512
    labels[300:304, 40:44] = TERRAIN  # 16 px here = 4 px at 512 x 256
    out = LabelTransform(LabelTransformConfig(min_region_px=8, speck_classes=[TERRAIN]))(labels)
    assert (out[300:304, 40:44] == ROAD).all()


def test_deterministic_leaves_its_input_alone_and_times_every_frame():
    rng = np.random.default_rng(0)
    labels = np.kron(rng.choice([ROAD, SKY, TERRAIN, GROUND, POLE], (H // 8, W // 8)),
                     np.ones((8, 8))).astype(np.uint8)
    copy = labels.copy()
    config = LabelTransformConfig(median_kernel=5, min_region_px=32, speck_classes=[TERRAIN])
    first = LabelTransform(config)(labels)
    transform = LabelTransform(config)
    transform.last_ms = -1.0
    second = transform(labels)
    assert np.array_equal(first, second) and np.array_equal(labels, copy)
    assert transform.last_ms >= 0.0
    with pytest.raises(ValueError, match="uint8"):
        transform(labels.astype(np.int32))


def test_benchmark_path_reports_per_frame_figures():
    figures = benchmark(width=128, height=64, frames=2, config=LabelTransformConfig(median_kernel=3))
    assert set(figures) == {"median_ms", "best_ms", "worst_ms"}
    assert 0 <= figures["best_ms"] <= figures["median_ms"] <= figures["worst_ms"]


def test_calibrated_config_ships_and_loads():
    config = load_transform_config()
    document = json.loads(CALIBRATED_CONFIG.read_text())
    assert config.model_dump() == LabelTransformConfig.model_validate(document["config"]).model_dump()
    assert "command" in document["calibration"]
    assert all(target in EVALUATION_IDS for target in config.class_map.values())


def test_bad_config_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "transform.json"
    path.write_text(json.dumps({"config": {"median_kernel": 4}}))
    with pytest.raises(TransformConfigError, match=f"{path}.*'median_kernel'.*3 or 5"):
        load_transform_config(path)
    path.write_text(json.dumps({"class_map": {"6": 99}}))
    with pytest.raises(TransformConfigError, match="'class_map"):
        load_transform_config(path)
    path.write_text(json.dumps({"smoothing": 3}))
    with pytest.raises(TransformConfigError, match="'smoothing'"):
        load_transform_config(path)
    with pytest.raises(TransformConfigError, match="does not exist"):
        load_transform_config(tmp_path / "missing.json")


def test_roughening_wobbles_straight_edges_fixed_per_position_and_keeps_interiors():
    labels = street()
    labels[40:200, 300] = POLE
    config = LabelTransformConfig(jitter_px=2.0, class_map={})
    out = LabelTransform(config)(labels)
    assert np.divide(*contour_lengths(out == ROAD)) > np.divide(*contour_lengths(labels == ROAD)) + 0.01
    changed = out != labels
    changed[:, 290:311] = False  # the pole's neighbours may take its label
    changed_rows = np.flatnonzero(changed.any(axis=1))
    assert changed_rows.min() >= 90 and changed_rows.max() <= 110  # only near the horizon edge
    assert (out[40:200, 300] == POLE).all()
    # The same frame twice (a still scene) gives the same map: nothing flickers.
    assert np.array_equal(LabelTransform(config)(labels), out)
    other_seed = LabelTransform(LabelTransformConfig(jitter_px=2.0, class_map={}, seed=1))(labels)
    assert not np.array_equal(other_seed, out)


def specks_one_class_at_a_time(label_ids: np.ndarray, classes: list[int], min_region: int,
                               window: int) -> np.ndarray:
    """The speck step as first written (a box filter per class): what the channel-packed one must equal."""
    import cv2

    label_ids = label_ids.copy()
    speck = None
    threshold = 255.0 * (min_region - 0.5) / (window * window)
    for label_id in sorted(classes):
        mask = cv2.compare(label_ids, label_id, cv2.CMP_EQ)
        density = cv2.boxFilter(mask, -1, (window, window), borderType=cv2.BORDER_REPLICATE)
        sparse = cv2.bitwise_and(cv2.compare(density, threshold, cv2.CMP_LT), mask)
        speck = sparse if speck is None else cv2.bitwise_or(speck, sparse)
    if cv2.countNonZero(speck):
        fill = label_ids
        for _ in range(max(1, round(window / 7))):
            fill = cv2.medianBlur(fill, 5)
        cv2.copyTo(fill, speck, label_ids)
    return label_ids


@pytest.fixture(scope="module")
def world_maps() -> dict[tuple[int, int], list[np.ndarray]]:
    """Two built-in-world label maps at 512x256 and at 1024x512."""
    from carla_neural.remap import Remapper
    from carla_neural.sources.world import BuiltinWorld, WorldConfig

    remapper = Remapper("0.9.14")
    maps = {}
    for width, height in ((512, 256), (1024, 512)):
        with BuiltinWorld(WorldConfig(width=width, height=height, seed=1, sensors=("semantic",))) as world:
            maps[width, height] = [remapper.label_ids(world.tick().semantic_bgra) for _ in range(2)]
    return maps


@pytest.mark.parametrize("classes", [[TERRAIN], [ROAD, TERRAIN], [ROAD, 21, TERRAIN], [ROAD, 21, TERRAIN, SKY],
                                     [ROAD, SIDEWALK, 11, 21, TERRAIN, SKY, 26]])
def test_specks_found_four_classes_at_a_time_equal_one_at_a_time(classes, world_maps):
    transform = LabelTransform(LabelTransformConfig(min_region_px=16, speck_classes=classes, class_map={}))
    for (width, height), maps in world_maps.items():
        _, min_region, window = transform._sizes(height, width)
        for label_ids in maps:
            expected = specks_one_class_at_a_time(label_ids, classes, min_region, window)
            assert not np.array_equal(expected, label_ids)  # the frames do hold specks
            assert np.array_equal(transform(label_ids), expected)
