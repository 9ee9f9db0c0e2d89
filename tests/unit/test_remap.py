"""Remap: CARLA tags -> Cityscapes ids, checked against cityscapesscripts for every tag."""

from __future__ import annotations

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, name2label

from carla_neural.remap import (
    RemapConfigError,
    Remapper,
    UnknownTagError,
    colorize_label_ids,
    colorize_train_ids,
    instance_edges,
    train_ids_from_label_ids,
)
from carla_neural.remap_tables import resolve_scheme

# Written from REFERENCE.md independently of carla_neural.remap_tables: tag -> Cityscapes name.
EXPECTED_0_9_14 = [
    "unlabeled", "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus",
    "train", "motorcycle", "bicycle", "static", "dynamic", "unlabeled", "unlabeled", "road",
    "ground", "bridge", "rail track", "guard rail",
]
EXPECTED_0_9_13 = [
    "unlabeled", "building", "fence", "unlabeled", "person", "pole", "road", "road", "sidewalk",
    "vegetation", "car", "wall", "traffic sign", "sky", "ground", "bridge", "rail track",
    "guard rail", "traffic light", "static", "dynamic", "unlabeled", "terrain",
]


def semantic_image(tags: np.ndarray) -> np.ndarray:
    """(H, W) tags -> (H, W, 4) BGRA with the tag in the red channel and noise elsewhere."""
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 256, (*tags.shape, 4), dtype=np.uint8)
    bgra[..., 2] = tags
    return bgra


def train_id(name: str) -> int:
    value = name2label[name].trainId
    return value if 0 <= value < 255 else 255


@pytest.mark.parametrize(
    ("scheme", "expected"), [("0.9.14", EXPECTED_0_9_14), ("0.9.13", EXPECTED_0_9_13)]
)
def test_every_tag_matches_cityscapesscripts(scheme: str, expected: list[str]) -> None:
    tags = np.arange(len(expected), dtype=np.uint8).reshape(1, -1).repeat(3, axis=0)
    remapper = Remapper(scheme)
    label_ids = remapper.label_ids(semantic_image(tags))
    train_ids = remapper.train_ids(semantic_image(tags))
    assert label_ids.dtype == np.uint8 and label_ids.shape == tags.shape
    for tag, name in enumerate(expected):
        assert (label_ids[:, tag] == name2label[name].id).all(), (scheme, tag, name)
        assert (train_ids[:, tag] == train_id(name)).all(), (scheme, tag, name)


def test_0_9_14_tags_1_to_19_are_train_id_plus_one() -> None:
    tags = np.arange(1, 20, dtype=np.uint8).reshape(1, -1)
    train_ids = Remapper("0.9.14").train_ids(semantic_image(tags))
    assert train_ids.ravel().tolist() == list(range(19))


@pytest.mark.parametrize(
    ("version", "scheme"),
    [("0.9.16", "0.9.14"), ("0.9.14", "0.9.14"), ("0.10.0", "0.9.14"), ("0.9.15.2", "0.9.14"),
     ("0.9.13", "0.9.13"), ("0.9.12", "0.9.13"), ("0.9.10.1", "0.9.13"), ("0.8.4", "0.9.13")],
)
def test_scheme_from_carla_version(version: str, scheme: str) -> None:
    assert resolve_scheme(version) == scheme
    assert Remapper(version).scheme == scheme


def test_bad_version_names_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="0.9.16"):
        Remapper("latest")


def test_unknown_tags_raise_with_values_and_pixel_counts() -> None:
    tags = np.zeros((4, 8), np.uint8)
    tags[0, :3] = 29
    tags[1, 0] = 200
    with pytest.raises(UnknownTagError) as caught:
        Remapper("0.9.14").label_ids(semantic_image(tags))
    assert caught.value.pixel_counts == {29: 3, 200: 1}
    assert "tag 29: 3 px" in str(caught.value) and "tag 200: 1 px" in str(caught.value)


def test_0_9_13_rejects_tags_only_0_9_14_has() -> None:
    tags = np.full((2, 2), 28, np.uint8)  # guard rail in 0.9.14, undefined in 0.9.13
    with pytest.raises(UnknownTagError, match="tag 28: 4 px"):
        Remapper("0.9.13").label_ids(semantic_image(tags))


def test_unlabeled_policy_maps_and_reports(caplog: pytest.LogCaptureFixture) -> None:
    tags = np.full((2, 5), 1, np.uint8)
    tags[0, 0] = 29
    remapper = Remapper("0.9.14", unknown="unlabeled")
    with caplog.at_level("WARNING"):
        label_ids = remapper.label_ids(semantic_image(tags))
    assert label_ids[0, 0] == name2label["unlabeled"].id
    assert (label_ids.ravel()[1:] == name2label["road"].id).all()
    assert remapper.unknown_pixel_counts == {29: 1}
    assert "[29]" in caplog.text and "tag 29: 1 px" in caplog.text


def test_bad_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="allowed policies"):
        Remapper(unknown="ignore")  # type: ignore[arg-type]


def test_yaml_overrides_by_tag_name_and_number(tmp_path) -> None:
    path = tmp_path / "remap.yaml"
    path.write_text("scheme: '0.9.16'\ntags:\n  water: terrain\n  29: Terrain\n  22: 5\n")
    remapper = Remapper("0.9.16", overrides=path)
    tags = np.array([[23, 29, 22, 1]], np.uint8)
    assert remapper.label_ids(semantic_image(tags)).tolist() == [[
        name2label["terrain"].id, name2label["terrain"].id, id2label[5].id, name2label["road"].id
    ]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tags:\n  water: terain\n", "Did you mean 'terrain'"),
        ("tags:\n  lava: terrain\n", "neither a tag number"),
        ("tags:\n  300: road\n", "outside 0..255"),
        ("tags:\n  1: 99\n", "not a Cityscapes labelId"),
        ("water: terrain\n", "'tags' key"),
        ("tags: [1, 2]\n", "must be a mapping"),
        ("tags: {}\ncolour: red\n", "unknown keys"),
        ("scheme: '0.9.13'\ntags: {}\n", "written for tag scheme"),
        ("tags: {water: [terrain\n", "not valid YAML"),
    ],
)
def test_bad_overrides_get_clear_errors(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "remap.yaml"
    path.write_text(text)
    with pytest.raises(RemapConfigError, match=message):
        Remapper("0.9.14", overrides=path)


def test_missing_overrides_file(tmp_path) -> None:
    with pytest.raises(RemapConfigError, match="does not exist"):
        Remapper(overrides=tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "image",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.float32), np.zeros((4, 4, 2), np.uint8)],
)
def test_bad_images_are_rejected(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 4\) uint8"):
        Remapper().label_ids(image)


def instance_image(tags: np.ndarray, object_ids: np.ndarray) -> np.ndarray:
    bgra = np.zeros((*tags.shape, 4), np.uint8)
    bgra[..., 2] = tags
    bgra[..., 1] = object_ids % 256
    bgra[..., 0] = object_ids // 256
    bgra[..., 3] = 255
    return bgra


def test_instance_ids_are_cityscapes_style_and_edges_follow_outlines() -> None:
    tags = np.full((12, 16), 1, np.uint8)  # road, object id 0
    object_ids = np.zeros((12, 16), np.int64)
    tags[3:8, 2:7] = 14  # car A
    object_ids[3:8, 2:7] = 517
    tags[3:8, 7:12] = 14  # car B, touching A
    object_ids[3:8, 7:12] = 256 * 9 + 4  # 2308 -> k = 308
    tags[:2, :] = 3  # building, with an object id that must not leak into the id
    object_ids[:2, :] = 1234
    instance_ids = Remapper("0.9.14").instance_ids(instance_image(tags, object_ids))
    assert instance_ids.dtype == np.int32
    car = name2label["car"].id
    assert (instance_ids[3:8, 2:7] == car * 1000 + 517).all()
    assert (instance_ids[3:8, 7:12] == car * 1000 + 308).all()
    assert (instance_ids[:2] == name2label["building"].id).all()
    assert (instance_ids[9:] == name2label["road"].id).all()

    edges = instance_edges(instance_ids)
    # The edge between two touching cars of one class is there (a label map alone lacks it).
    assert edges[3:8, 6].all() and edges[3:8, 7].all()
    # Edges run along each car's outline and nowhere inside.
    assert edges[3, 2:12].all() and edges[7, 2:12].all()
    assert not edges[4:7, 3:6].any() and not edges[4:7, 8:11].any()
    assert not edges[10:, :].any()


def test_instance_ids_are_stable_across_frames() -> None:
    tags = np.full((4, 4), 12, np.uint8)  # pedestrian
    first = Remapper().instance_ids(instance_image(tags, np.full((4, 4), 4242)))
    second = Remapper().instance_ids(instance_image(tags, np.full((4, 4), 4242)))
    assert (first == second).all() and (first == name2label["person"].id * 1000 + 242).all()


def test_0_9_13_vehicles_get_car_instances() -> None:
    tags = np.full((2, 2), 10, np.uint8)
    instance_ids = Remapper("0.9.13").instance_ids(instance_image(tags, np.full((2, 2), 7)))
    assert (instance_ids == name2label["car"].id * 1000 + 7).all()


def test_palettes_match_cityscapesscripts() -> None:
    names = ["road", "sidewalk", "car", "sky", "person", "unlabeled", "ground", "guard rail"]
    label_ids = np.array([[name2label[n].id for n in names]], np.uint8)
    rgb = colorize_label_ids(label_ids)
    assert rgb.shape == (1, len(names), 3) and rgb.dtype == np.uint8
    assert [tuple(c) for c in rgb[0]] == [name2label[n].color for n in names]
    train_rgb = colorize_train_ids(train_ids_from_label_ids(label_ids))
    for column, name in enumerate(names):
        expected = name2label[name].color if train_id(name) != 255 else (0, 0, 0)
        assert tuple(train_rgb[0, column]) == expected
