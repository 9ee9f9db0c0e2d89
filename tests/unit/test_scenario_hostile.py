"""Hostile and broken scenario files: each is one ScenarioError naming the file and the field,
raised while loading, before a world is built or a frame is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.mapping import world_config
from scenarios.schema import ScenarioError, load_scenario

# A "billion laughs" under 1 KB: nine levels of nine aliases each (387 million items expanded).
ALIAS_BOMB = "name: bomb\nbuiltin:\n  layout: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
)


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        (ALIAS_BOMB, "", "aliases (*name) are not allowed"),
        ("name: deep\nbuiltin: {layout: " + "[" * 2000 + "]" * 2000 + "}\n", "", "nested more than 32 levels"),
        ("name: x\nduration: {seconds: .inf}\n", "duration.seconds", "finite number"),
        ("name: x\nduration: {seconds: 1.0e9}\n", "duration", "seconds must be in (0, 86400.0]"),
        ("name: x\nbuiltin: {cruise_speed_mps: fast}\n", "builtin", "cruise_speed_mps: Input should be a valid number"),
        ("name: x\nbuiltin: {cruise_speed_mps: -3}\n", "builtin", "cruise_speed_mps=-3"),
        ("name: x\nbuiltin: {width: 8192, height: 8192}\n", "builtin", "each must be 16..4096"),
        ("name: x\nbuiltin: {layout: [1, 2]}\n", "builtin", "layout: Input should be a valid string"),
        ("name: x\ncameras: {width: 8192}\n", "cameras.width", "16..4096"),
        ("name: x\ntraffic: {seed: -1}\n", "traffic.seed", "unsigned 32-bit"),
        ("name: x\ntraffic: {seed: 4294967296}\n", "traffic.seed", "unsigned 32-bit"),
        ("name: x\nego: {spawn_point: {x: .nan, y: 0}}\n", "ego.spawn_point.x", "finite number"),
    ],
    ids=["alias-bomb", "deep-nesting", "infinite-seconds", "seconds-too-long", "cruise-speed-string",
         "cruise-speed-negative", "builtin-size-huge", "builtin-layout-list", "camera-size-huge", "seed-negative",
         "seed-over-32-bit", "nan-location"],
)
def test_bad_scenarios_name_the_file_and_the_field(tmp_path: Path, text: str, field: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    message = str(error.value)
    assert message.startswith(str(path)) and expected in message
    assert f"  {field}: " in message if field else True


def test_a_binary_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "photo.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ScenarioError, match=f"^{path}: not a text file"):
        load_scenario(path)


def test_a_huge_file_is_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ScenarioError, match="is not a scenario file"):
        load_scenario(path)


def test_checked_builtin_values_reach_the_world(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("name: ok\nbuiltin: {cruise_speed_mps: 5, layout: highway}\ntraffic: {seed: 4294967295}\n")
    config = world_config(load_scenario(path))
    assert config.cruise_speed_mps == 5.0 and isinstance(config.cruise_speed_mps, float)
    assert config.layout == "highway" and config.seed == 2**32 - 1
