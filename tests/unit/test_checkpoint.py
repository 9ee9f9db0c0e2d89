"""Checkpoints: our format round trip, NVIDIA folders with shape-inferred config, strict errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from renderer import checkpoint_ref
from renderer.checkpoint import (
    CheckpointError,
    convert_nvidia_checkpoint,
    load_checkpoint,
    load_nvidia_checkpoint,
    read_config,
    save_checkpoint,
    strict_load,
)
from renderer.loading import load_generator, load_renderer
from renderer.model.config import GeneratorConfig, SingleGConfig
from renderer.model.generator import Vid2VidGenerator, build_generator

TINY = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=3, n_blocks_local=1, n_scales=2,
                       single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1))
TINY_LOCAL_SINGLE = SingleGConfig(kind="local", ngf=4, n_downsampling=2, n_blocks=1, n_blocks_local=1)


def labels_seq(n: int = 3) -> list[np.ndarray]:
    frames = []
    for t in range(n):
        labels = np.full((32, 48), 7, np.uint8)
        labels[:10] = 23
        labels[16:, 8 + t : 20 + t] = 26
        frames.append(labels)
    return frames


def render(renderer) -> list[np.ndarray]:
    return [renderer.step(f) for f in labels_seq()]


def write_nvidia_folder(generator: Vid2VidGenerator, folder: Path, single_name: str | None) -> Path:
    """Save like NVIDIA's save_network: one plain state dict per scale, in the pre-zip format of
    the PyTorch the released files were written with."""
    folder.mkdir(parents=True)
    for scale, module in enumerate(generator.scales):
        torch.save(module.state_dict(), folder / f"latest_net_G{scale}.pth", _use_new_zipfile_serialization=False)
    if single_name is not None and generator.single_g is not None:
        single_dir = folder.parent / "label2city_single"
        single_dir.mkdir()
        state = {k: v for k, v in generator.single_g.state_dict().items() if "num_batches_tracked" not in k}
        torch.save(state, single_dir / single_name)
    return folder


def test_our_format_round_trip(tmp_path: Path) -> None:
    generator = build_generator(TINY, seed=0)
    save_checkpoint(generator, tmp_path / "ckpt", metadata={"size": [48, 32]})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    config, metadata = read_config(tmp_path / "ckpt")
    assert config == TINY and metadata == {"size": [48, 32]}
    loaded = load_checkpoint(tmp_path / "ckpt")
    for key, value in generator.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    from renderer.sequential import SequentialRenderer

    assert all(np.array_equal(a, b) for a, b in zip(render(SequentialRenderer(generator)),
                                                    render(SequentialRenderer(loaded))))
    # load_renderer picks the default engine (it may change memory layouts: rounding only)
    via_loader = render(load_renderer(tmp_path / "ckpt", device="cpu"))
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(render(SequentialRenderer(generator)), via_loader))


def test_nvidia_folder_loads_strictly_with_config_from_shapes(tmp_path: Path) -> None:
    for single, name in ((TINY.single_g, "latest_net_G_1024.pth"), (TINY_LOCAL_SINGLE, "latest_net_G_2048.pth")):
        config = TINY.replace(single_g=single)
        generator = build_generator(config, seed=1)
        root = tmp_path / name
        folder = write_nvidia_folder(generator, root / "label2city_x", name)
        loaded = load_nvidia_checkpoint(folder)
        assert loaded.config == config
        for key, value in generator.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key


def test_nvidia_folder_without_single_g_starts_blank(tmp_path: Path) -> None:
    generator = build_generator(TINY, seed=2)
    folder = write_nvidia_folder(generator, tmp_path / "nv", None)
    renderer = load_renderer(folder, device="cpu")
    assert renderer.generator.single_g is None and renderer.start == "blank"
    assert len(render(renderer)) == 3


def test_convert_then_load_gives_the_same_frames(tmp_path: Path) -> None:
    generator = build_generator(TINY, seed=3)
    folder = write_nvidia_folder(generator, tmp_path / "nv" / "label2city_t", "latest_net_G_1024.pth")
    convert_nvidia_checkpoint(folder, tmp_path / "ours")
    a = render(load_renderer(folder, device="cpu"))
    b = render(load_renderer(tmp_path / "ours", device="cpu"))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_strict_errors_list_missing_unexpected_and_mismatched_keys() -> None:
    generator = build_generator(TINY, seed=0)
    state = dict(generator.scales[0].state_dict())
    del state["model_final_img.1.weight"]
    state["surplus.weight"] = torch.zeros(1)
    state["model_final_w.1.bias"] = torch.zeros(5)
    target = build_generator(TINY).scales[0]
    before = target.model_down_seg[1].weight.clone()
    with pytest.raises(CheckpointError) as error:
        strict_load(target, state, "G0.pth")
    message = str(error.value)
    assert "missing keys (1): model_final_img.1.weight" in message
    assert "unexpected keys (1): surplus.weight" in message
    assert "model_final_w.1.bias file (5,) vs model (1,)" in message
    assert torch.equal(target.model_down_seg[1].weight, before)  # nothing was loaded


def test_wrong_scale_file_is_an_error(tmp_path: Path) -> None:
    generator = build_generator(TINY, seed=0)
    folder = write_nvidia_folder(generator, tmp_path / "nv", None)
    torch.save(generator.scales[0].state_dict(), folder / "latest_net_G1.pth")  # G0 where G1 belongs
    with pytest.raises(CheckpointError, match="latest_net_G1.pth does not match"):
        load_nvidia_checkpoint(folder)


def test_foreign_files_are_loaded_without_pickle(tmp_path: Path) -> None:
    folder = tmp_path / "nv"
    folder.mkdir()

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(folder / "latest_net_G0.pth", "wb") as handle:
        pickle.dump({"model_down_seg.1.weight": Payload()}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_nvidia_checkpoint(folder)


def test_checkpoint_references_that_are_not_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a carla-neural checkpoint"):
        load_generator(tmp_path / "empty")
    monkeypatch.setattr(checkpoint_ref, "bundled_checkpoint", lambda reference="bundled": tmp_path / "empty")
    for reference in checkpoint_ref.BUNDLED_FOLDERS:
        with pytest.raises(CheckpointError, match=f"the {reference} model is missing .*README.md"):
            load_generator(reference)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"format": "something-else"}')
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is not a carla-neural/vid2vid-generator config"):
        load_checkpoint(tmp_path / "bad")


def test_unknown_engine_is_a_clear_error(tmp_path: Path) -> None:
    save_checkpoint(build_generator(TINY, seed=0), tmp_path / "ckpt")
    with pytest.raises(ValueError, match="engine"):
        load_renderer(tmp_path / "ckpt", engine="no-such-engine", device="cpu")


def test_checkpoint_can_recommend_its_working_size(tmp_path: Path) -> None:
    save_checkpoint(build_generator(TINY, seed=0), tmp_path / "ckpt", metadata={"working_size": [32, 16]})
    renderer = load_renderer(tmp_path / "ckpt", device="cpu")
    assert renderer.size == (32, 16)
    assert renderer.step(labels_seq(1)[0]).shape == (32, 48, 3)  # rendered at 32x16, returned at 48x32
    assert load_renderer(tmp_path / "ckpt", device="cpu", size=(48, 32)).size == (48, 32)
    save_checkpoint(build_generator(TINY, seed=0), tmp_path / "bad", metadata={"working_size": "big"})
    with pytest.raises(CheckpointError, match="metadata.working_size' = 'big'"):
        load_renderer(tmp_path / "bad", device="cpu")
