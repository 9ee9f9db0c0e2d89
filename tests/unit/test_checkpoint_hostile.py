"""Corrupt, hostile and mistyped checkpoints: each is one CheckpointError that names the file and
the field, raised before any model tensor is allocated."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch

from renderer import checkpoint as checkpoint_module
from renderer.checkpoint import CheckpointError, load_checkpoint, read_config
from renderer.loading import load_renderer


@pytest.fixture()
def copy(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    return folder


@pytest.fixture()
def real_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The device of every generator the checkpoint module builds ("meta" allocates nothing)."""
    devices: list[str] = []
    original = checkpoint_module.Vid2VidGenerator

    def spy(config):
        devices.append(torch.empty(0).device.type)
        return original(config)

    monkeypatch.setattr(checkpoint_module, "Vid2VidGenerator", spy)
    return devices


def edit_config(folder: Path, change) -> Path:
    path = folder / "config.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def set_field(name: str, value):
    def change(document):
        document["generator"][name] = value

    return change


@pytest.mark.parametrize(
    ("change", "field", "allowed"),
    [
        (set_field("ngf", 8.0), "generator.ngf", "valid integer"),
        (set_field("n_blocks", 4.0), "generator.n_blocks", "valid integer"),
        (set_field("use_instance", "no"), "generator.use_instance", "valid boolean"),
        (set_field("ngf", 10**9), "generator.ngf", "less than or equal to 512"),
        (set_field("n_blocks", 100000), "generator.n_blocks", "less than or equal to 32"),
        (lambda d: d["generator"].update(ngf=512, n_downsampling=3), "generator.ngf", "<= 2048"),
        (set_field("fg_labels", [26, -1]), "generator.fg_labels.1", "greater than or equal to 0"),
        (set_field("colour", True), "generator.colour", "allowed: ngf,"),
        (lambda d: d["generator"]["single_g"].update(ngf="64"), "generator.single_g.ngf", "valid integer"),
        (lambda d: d["metadata"].update(working_size=[100000, 128]), "metadata.working_size.0",
         "less than or equal to 4096"),
        (lambda d: d.update(metadata="notes"), "metadata", "valid dictionary"),
        (lambda d: d.update(format_version="2"), "format_version", "valid integer"),
        (lambda d: d.update(generator=[1, 2]), "generator", "valid dictionary"),
        (lambda d: d.pop("generator"), "generator", "missing"),
    ],
    ids=["ngf-float", "n_blocks-float", "use_instance-string", "ngf-huge", "n_blocks-huge", "widest-layer",
         "fg_labels-negative", "unknown-field", "single_g-string", "working_size-huge", "metadata-string",
         "format_version-string", "generator-list", "generator-missing"],
)
def test_bad_config_fields_name_the_file_and_the_field(copy: Path, real_builds: list[str], change, field: str,
                                                       allowed: str) -> None:
    path = edit_config(copy, change)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(copy)
    message = str(error.value)
    assert str(path) in message and f"'{field}'" in message and allowed in message
    assert "\n" not in message
    assert real_builds == []  # nothing was built


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2, 3]", "is not a JSON object"),
        ("{", "is not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "is not a JSON object"),  # deep nesting: no RecursionError
        ('{"format": "carla-neural/vid2vid-generator", "format_version": 2, "generator": {}}',
         "update carla-neural"),
        ('{"format": "someone-else"}', "field 'format'"),
    ],
    ids=["list", "truncated", "deeply-nested", "newer-version", "foreign-format"],
)
def test_config_files_that_are_not_ours_are_refused(copy: Path, text: str, expected: str) -> None:
    (copy / "config.json").write_text(text)
    with pytest.raises(CheckpointError) as error:
        read_config(copy)
    assert str(copy / "config.json") in str(error.value) and expected in str(error.value)


def test_a_huge_config_file_is_not_parsed(copy: Path) -> None:
    (copy / "config.json").write_bytes(b" " * (checkpoint_module.MAX_CONFIG_BYTES + 1))
    with pytest.raises(CheckpointError, match="a checkpoint config.json is a few KB"):
        read_config(copy)


def _lying_header(real: bytes) -> bytes:
    """The real file with one tensor's shape enlarged in the header (data left as it is)."""
    size = struct.unpack("<Q", real[:8])[0]
    header = json.loads(real[8 : 8 + size])
    name = next(key for key in header if key != "__metadata__")
    header[name]["shape"] = [4096, 4096, 64]
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + real[8 + size :]


@pytest.mark.parametrize(
    "damage",
    [lambda b: b"", lambda b: b[: len(b) // 2], lambda b: bytes(range(256)) * 64, _lying_header,
     lambda b: struct.pack("<Q", 2**40) + b[8:]],
    ids=["empty", "truncated", "random", "lying-shape", "huge-header"],
)
def test_corrupt_weights_are_one_clear_error(copy: Path, real_builds: list[str], damage) -> None:
    weights = copy / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(CheckpointError) as error:
        load_renderer(copy, device="cpu")
    assert f"{weights} is not a readable safetensors file" in str(error.value)
    assert real_builds == []


def test_a_config_that_does_not_fit_its_weights_allocates_nothing(copy: Path, real_builds: list[str]) -> None:
    # Valid on its own, and 8x the channels of the weights beside it.
    edit_config(copy, set_field("ngf", 64))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(copy)
    assert "model.safetensors" in str(error.value) and "shape mismatches" in str(error.value)
    assert real_builds == ["meta"]


def test_the_intact_checkpoint_still_loads(copy: Path, real_builds: list[str]) -> None:
    assert load_checkpoint(copy).config.ngf == 8
    assert real_builds == ["meta", "cpu"]
