"""Every gap metric on hand-made label maps whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from domain_adapt.gap import check_stats, compare, js_divergence, load_stats, pitch_for_horizon, summarize
from domain_adapt.sequences import GapInputError
from domain_adapt.stats import (
    SMALL_REGION_PX,
    LabelStatsAccumulator,
    boundary_mask,
    contour_lengths,
    object_areas,
)

W, H = 512, 256
ROAD, SKY, BUILDING, CAR, PERSON, TERRAIN = 7, 23, 11, 26, 24, 22


def street(horizon: int = 100) -> np.ndarray:
    """Sky above `horizon`, road from it down: a straight horizon at a known row."""
    labels = np.full((H, W), ROAD, np.uint8)
    labels[:horizon] = SKY
    return labels


def document(*frames: np.ndarray, instances=None, instance_format=None) -> dict:
    accumulator = LabelStatsAccumulator()
    accumulator.start_sequence("test")
    for index, labels in enumerate(frames):
        accumulator.add(labels, None if instances is None else instances[index], instance_format)
    return accumulator.finish({"path": "test"})


def test_straight_horizon_gives_its_row_and_the_layout_profile():
    summary = summarize(document(street(100)))
    assert summary["horizon_row"] == 100 and summary["horizon_fraction"] == pytest.approx(100 / 256)
    assert summary["road_rows"][:100].max() == 0 and summary["road_rows"][100:].min() == 1
    assert summary["sky_rows"][:100].min() == 1 and summary["sky_rows"][100:].max() == 0
    assert summary["hood_rows"] == 0
    assert summary["class_share"] == {SKY: pytest.approx(100 / 256), ROAD: pytest.approx(156 / 256)}


def test_a_map_of_another_size_is_measured_at_the_analysis_size():
    big = np.kron(street(100), np.ones((4, 4), np.uint8))  # 2048 x 1024, horizon at row 400
    assert summarize(document(big))["horizon_row"] == 100


def test_bonnet_rows_are_counted_from_the_bottom():
    labels = street(100)
    labels[230:, 40:480] = CAR  # 440 of 512 columns: more than half of each row
    labels[200:210, 300:310] = CAR  # a car ahead is not the bonnet
    assert summarize(document(labels))["hood_rows"] == 26
    # A car just ahead that fills the bottom rows but moves is not a bonnet either.
    ahead = street(100)
    ahead[236:, :400] = CAR
    shifted = street(100)
    shifted[236:, 8:408] = CAR
    assert summarize(document(labels, labels))["hood_rows"] == 26
    assert document(ahead, shifted)["per_frame"]["hood_rows"] == [20, 0]


def test_boundary_density_counts_both_sides_of_an_edge():
    labels = street(128)
    assert boundary_mask(labels).sum() == 2 * W
    summary = summarize(document(labels))
    assert summary["boundary_density"] == {SKY: pytest.approx(1 / 128), ROAD: pytest.approx(1 / 128)}
    assert summary["boundary_share"] == pytest.approx(2 / 256)


def test_jagged_edge_scores_higher_than_straight_edge():
    straight = np.zeros((H, W), bool)
    straight[100:] = True
    jagged = straight.copy()
    for column in range(0, W, 4):  # teeth 2 px wide, 3 px tall, every 4 px
        jagged[97:100, column:column + 2] = True
    straight_raw, straight_smooth = contour_lengths(straight)
    jagged_raw, jagged_smooth = contour_lengths(jagged)
    assert straight_raw / straight_smooth < 1.02
    assert jagged_raw / jagged_smooth > 1.3
    labels = np.where(jagged, ROAD, SKY).astype(np.uint8)
    assert summarize(document(labels))["jaggedness_per_class"][ROAD] > 1.3


def test_small_regions_are_components_under_the_size():
    labels = street(100)
    for column in (20, 60, 100):
        labels[150:152, column:column + 2] = TERRAIN  # three 4-px specks
    labels[200:210, 300:310] = TERRAIN  # one 100-px region
    summary = summarize(document(labels))
    assert SMALL_REGION_PX > 4 and SMALL_REGION_PX < 100
    assert summary["small_regions_per_frame"] == 3
    assert summary["small_regions_per_class"] == {TERRAIN: 3.0}


def two_boxes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = street(100)
    labels[150:160, 100:120] = CAR  # 200 px
    labels[150:158, 300:305] = PERSON  # 40 px
    ours = labels.astype(np.int32)
    ours[labels == CAR] = CAR * 1000 + 1
    ours[labels == PERSON] = PERSON * 1000 + 1
    small = np.full(labels.shape, 255, np.int32)
    small[labels == CAR] = 1
    small[labels == PERSON] = 2
    return labels, ours, small


def test_two_boxes_give_two_objects_of_known_size_in_every_instance_format():
    labels, ours, small = two_boxes()
    expected = {CAR: [200], PERSON: [40]}
    assert object_areas(labels, ours, "cityscapes") == expected
    assert object_areas(labels, small, "small") == expected
    assert object_areas(labels, None, None) == expected
    summary = summarize(document(labels, labels, instances=[ours, ours], instance_format="cityscapes"))
    assert summary["instances_per_frame"] == {CAR: 1.0, PERSON: 1.0}
    assert summary["objects_from"] == "instance maps"
    # 200 px lies in the power-of-two bin [128, 256), 40 px in [32, 64).
    assert np.flatnonzero(summary["object_area_hist"][CAR]).tolist() == [7]
    assert np.flatnonzero(summary["object_area_hist"][PERSON]).tolist() == [5]


def test_a_flickering_pixel_is_flicker_and_a_moving_edge_is_not():
    first = street(100)
    blink = first.copy()
    blink[200, 200] = TERRAIN
    moved = street(101)
    flicker = summarize(document(first, blink, first))
    assert flicker["flicker_rate"] == pytest.approx(1 / (W * H))
    assert flicker["change_rate"] == pytest.approx(1 / (W * H))
    moving = summarize(document(street(100), moved, street(102)))
    assert moving["flicker_rate"] == 0 and moving["change_rate"] == pytest.approx(W / (W * H))


def test_flicker_never_spans_two_sequences():
    accumulator = LabelStatsAccumulator()
    blink = street(100)
    blink[5, 5] = ROAD
    for labels in (street(100), blink):
        accumulator.start_sequence(str(labels.sum()))
        accumulator.add(labels)
        accumulator.add(labels)
    assert accumulator.finish()["temporal"] == {"pairs": 2, "triples": 0, "changed_pixels": 0, "flicker_pixels": 0}


def test_js_divergence_bounds_and_present_absent_classes():
    assert js_divergence(np.array([1, 2, 3]), np.array([2, 4, 6])) == pytest.approx(0)
    assert js_divergence(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1)
    sim = street(100)
    sim[200:220, 0:50] = 6  # ground: never in the real maps
    real = street(100)
    real[10:20, 0:50] = BUILDING
    gap = compare(document(sim), document(real))
    assert gap["classes"]["only_in_sim"] == ["ground"]
    assert gap["classes"]["only_in_reference"] == ["building"]
    assert 0 < gap["classes"]["js_divergence"] < 0.05
    assert gap["viewpoint"]["horizon_row"]["difference_rows"] == 0


def test_viewpoint_advice_turns_the_horizon_difference_into_a_pitch():
    sim = document(street(140))
    sim["origin"]["camera"] = {"fov": 90}
    gap = compare(sim, document(street(100)))
    assert gap["viewpoint"]["horizon_row"]["difference_rows"] == 40
    change = pitch_for_horizon(100, 90) - pitch_for_horizon(140, 90)
    # The horizon must rise in the image: the camera pitches down (negative).
    assert change == pytest.approx(-np.degrees(np.arctan(28 / 256) + np.arctan(12 / 256)))
    assert "40 rows below" in gap["viewpoint"]["advice"] and f"{change:+.1f} degrees" in gap["viewpoint"]["advice"]


def test_a_reference_of_another_label_set_or_version_names_the_file_and_the_field(tmp_path):
    good = document(street(100))
    for field, value in (("label_set", "carla-tags"), ("version", 99), ("format", "something-else")):
        path = tmp_path / f"{field}.json"
        path.write_text(json.dumps({**good, field: value}))
        with pytest.raises(GapInputError, match=f"{path}.*'{field}'"):
            load_stats(path)
    check_stats(good, "in memory")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(GapInputError, match=f"{broken} is not JSON"):
        load_stats(broken)
