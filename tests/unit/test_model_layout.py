"""Our generator modules have NVIDIA's parameter names and shapes, key for key.

The fixtures (renderer/fixtures/nvidia_*.json) list the keys and shapes of NVIDIA's
latest_net_G{0,1,2}.pth and label2city_single/latest_net_G_{512,1024,2048}.pth, derived from
NVIDIA/vid2vid's models/networks.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from renderer.checkpoint import infer_generator_config, infer_single_config
from renderer.model.config import (
    PRESETS,
    SINGLE_512,
    SINGLE_1024,
    SINGLE_2048,
    GeneratorConfig,
    SingleGConfig,
    preset,
)
from renderer.model.generator import Vid2VidGenerator
from renderer.model.pix2pixhd import build_single_generator

FIXTURES = Path(__file__).resolve().parents[2] / "renderer" / "fixtures"


def fixture_files(name: str) -> dict[str, dict[str, list[int]]]:
    return json.loads((FIXTURES / f"nvidia_{name}.json").read_text())["files"]


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in module.state_dict().items()}


def meta_state(keys: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device="meta") for key, shape in keys.items()}


@pytest.mark.parametrize(("preset_name", "fixture"), [("nvidia_2048", "label2city_2048"),
                                                      ("nvidia_1024_g1", "label2city_1024_g1")])
def test_composite_scales_match_nvidia_key_for_key(preset_name: str, fixture: str) -> None:
    files = fixture_files(fixture)
    with torch.device("meta"):
        generator = Vid2VidGenerator(preset(preset_name))
    assert len(generator.scales) == 3
    for scale, module in enumerate(generator.scales):
        expected = files[f"latest_net_G{scale}.pth"]
        ours = shapes(module)
        assert sorted(set(expected) - set(ours)) == [], f"G{scale}: keys we lack"
        assert sorted(set(ours) - set(expected)) == [], f"G{scale}: keys NVIDIA lacks"
        mismatched = {key: (ours[key], expected[key]) for key in expected if ours[key] != expected[key]}
        assert mismatched == {}


@pytest.mark.parametrize(("config", "file"), [(SINGLE_512, "latest_net_G_512.pth"),
                                              (SINGLE_1024, "latest_net_G_1024.pth"),
                                              (SINGLE_2048, "latest_net_G_2048.pth")])
def test_single_generators_match_nvidia_key_for_key(config: SingleGConfig, file: str) -> None:
    expected = fixture_files("label2city_single")[file]
    with torch.device("meta"):
        ours = shapes(build_single_generator(config))
    assert ours == expected


@pytest.mark.parametrize(("preset_name", "fixture", "single"), [
    ("nvidia_2048", "label2city_2048", "latest_net_G_2048.pth"),
    ("nvidia_1024_g1", "label2city_1024_g1", "latest_net_G_1024.pth"),
])
def test_config_is_read_from_tensor_shapes(preset_name: str, fixture: str, single: str) -> None:
    files = fixture_files(fixture)
    states = [meta_state(files[f"latest_net_G{s}.pth"]) for s in range(3)]
    single_config = infer_single_config(meta_state(fixture_files("label2city_single")[single]))
    assert infer_generator_config(states, single_config) == preset(preset_name)


def test_single_512_config_is_read_from_shapes() -> None:
    assert infer_single_config(meta_state(fixture_files("label2city_single")["latest_net_G_512.pth"])) == SINGLE_512


def test_presets_are_valid_and_lite_is_small() -> None:
    for config in PRESETS.values():
        config.validate()
    lite = preset("lite")
    with torch.device("meta"):
        generator = Vid2VidGenerator(lite)
    n_params = sum(p.numel() for p in generator.scales.parameters())
    assert n_params < 2_000_000
    assert lite.size_multiple == 16 and 512 % lite.size_multiple == 0 and 256 % lite.size_multiple == 0


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="field 'ngff' is unknown; allowed: ngf, "):
        GeneratorConfig.from_dict({"ngff": 3})
    with pytest.raises(ValueError, match="'n_scales'"):
        GeneratorConfig.from_dict({"n_scales": 0})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
    round_trip = GeneratorConfig.from_dict(preset("lite").to_dict())
    assert round_trip == preset("lite")
