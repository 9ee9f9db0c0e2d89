"""Engines: every engine's frames agree with the PyTorch fp32 generator; precision detection."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from renderer.bench import synthetic_street
from renderer.engines import (
    ENGINE_NAMES,
    BodyStep,
    EngineUnavailable,
    build_engine,
    engine_status,
    example_stacks,
    pick_engine,
)
from renderer.engines.hardware import best_precision, precision_support, resolve_precision
from renderer.loading import bundled_checkpoint, load_generator
from renderer.model.config import GeneratorConfig
from renderer.model.generator import build_generator
from renderer.model.inputs import build_pyramid, encode_label_frame, nearest_pyramid
from renderer.model.stem import frame_codes
from renderer.sequential import SequentialRenderer

TINY = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=2, n_blocks_local=1, n_scales=2, single_g=None)
SIZE = (64, 32)
# Outputs are in [-1, 1]; 1e-4 there is ~0.013 of one 8-bit level.
TOLERANCE = 1e-4


def step_inputs(config: GeneratorConfig, size: tuple[int, int], seed: int = 0):
    """Label stacks, previous outputs and lookup codes of one step on a synthetic street."""
    frames = synthetic_street(*size, config.n_frames, seed)
    encoded, codes = [], []
    for labels, instances in frames:
        ids = torch.from_numpy(labels.astype(np.int64))[None]
        frame = encode_label_frame(ids, torch.from_numpy(instances.astype(np.int64))[None])
        pyramid = nearest_pyramid if config.label_pyramid == "nearest" else build_pyramid
        encoded.append(pyramid(frame, config.n_scales)[::-1])
        codes.append(frame_codes(ids, frame[:, config.label_nc]))
    label_stacks = [torch.cat([p[s] for p in encoded], 1) for s in range(config.n_scales)]
    rng = torch.Generator().manual_seed(seed)
    prev_stacks = [
        torch.rand(1, config.prev_output_nc, *stack.shape[-2:], generator=rng) * 2 - 1 for stack in label_stacks
    ]
    return label_stacks, prev_stacks, torch.stack(codes, 1)


def reference(generator, label_stacks, prev_stacks, codes):
    with torch.inference_mode():
        return [output.image for output in generator(label_stacks, prev_stacks, label_codes=codes)]


def max_difference(images, expected) -> float:
    return max(float((a.float() - b).abs().max()) for a, b in zip(images, expected))


def test_body_step_equals_the_generator() -> None:
    generator = build_generator(TINY, seed=1).eval()
    label_stacks, prev_stacks, codes = step_inputs(TINY, SIZE)
    expected = reference(generator, label_stacks, prev_stacks, codes)
    body = BodyStep(generator)
    with torch.inference_mode():
        flat = body.flatten(generator.stems(label_stacks, codes), generator.masks(label_stacks), prev_stacks)
        images = body(*flat)
    assert len(flat) == len(body.input_names()) == 2 * 4
    assert [tuple(i.shape) for i in images] == [(1, 3, 16, 32), (1, 3, 32, 64)]
    assert max_difference(images, expected) == 0.0


@pytest.mark.parametrize(
    "name", ["torch", pytest.param("compile", marks=pytest.mark.slow), "onnx", "openvino"]
)
def test_engine_matches_pytorch_fp32(
    name: str, openvino_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usable, reason = engine_status(name, "cpu")
    if not usable:
        pytest.skip(reason)
    monkeypatch.setenv("CARLA_NEURAL_CACHE", str(openvino_cache))
    generator = build_generator(TINY, seed=2).eval()
    label_stacks, prev_stacks, codes = step_inputs(TINY, SIZE)
    expected = reference(generator, label_stacks, prev_stacks, codes)
    engine = build_engine(name, generator, "cpu")
    try:
        images = engine(label_stacks, prev_stacks, codes)
        assert [i.dtype for i in images] == [torch.float32, torch.float32]
        assert max_difference(images, expected) < TOLERANCE
        # A second frame with other inputs reuses the build and still agrees.
        label_stacks2, prev_stacks2, codes2 = step_inputs(TINY, SIZE, seed=5)
        images2 = engine(label_stacks2, prev_stacks2, codes2)
        assert max_difference(images2, reference(generator, label_stacks2, prev_stacks2, codes2)) < TOLERANCE
        assert engine.describe()["engine"] == name
    finally:
        engine.close()


def test_auto_picks_openvino_on_a_cpu_where_it_is_installed_else_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import renderer.engines as engines

    assert pick_engine("onnx", "cpu") == "onnx"  # a named engine is never second-guessed
    assert pick_engine("auto", "cuda") == "torch"
    openvino_here = engine_status("openvino", "cpu")[0]
    assert pick_engine("auto", "cpu") == ("openvino" if openvino_here else "torch")
    assert engine_status("auto", "cpu") == (True, f"auto: {pick_engine('auto', 'cpu')} here")
    real_status = engines.engine_status
    monkeypatch.setattr(engines, "engine_status",
                        lambda name, device="cpu": (False, "not installed") if name == "openvino" else real_status(name, device))
    assert engines.pick_engine("auto", "cpu") == "torch"
    with pytest.raises(ValueError, match="choose one of .*auto"):
        build_engine("nope", build_generator(TINY, seed=2).eval(), "cpu")


def test_auto_engine_renders_like_pytorch_fp32(openvino_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARLA_NEURAL_CACHE", str(openvino_cache))
    generator = build_generator(TINY, seed=2).eval()
    label_stacks, prev_stacks, codes = step_inputs(TINY, SIZE)
    engine = build_engine("auto", generator, "cpu")
    try:
        assert engine.describe()["engine"] == pick_engine("auto", "cpu")
        assert max_difference(engine(label_stacks, prev_stacks, codes),
                              reference(generator, label_stacks, prev_stacks, codes)) < TOLERANCE
    finally:
        engine.close()


TINY_SPADE = TINY.replace(generator="spade", spade_hidden=4, label_pyramid="nearest")


@pytest.mark.parametrize(
    "name", ["torch", pytest.param("onnx", marks=pytest.mark.slow), pytest.param("openvino", marks=pytest.mark.slow)]
)
def test_spade_generator_runs_on_the_engine_like_pytorch_fp32(
    name: str, openvino_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SPADE label convs run before the body; the body takes them as inputs (one per decoder
    resolution) and every engine agrees with the eager generator."""
    usable, reason = engine_status(name, "cpu")
    if not usable:
        pytest.skip(reason)
    monkeypatch.setenv("CARLA_NEURAL_CACHE", str(openvino_cache))
    generator = build_generator(TINY_SPADE, seed=2).eval()
    body = BodyStep(generator)
    assert body.input_names() == [
        "seg_stem_0", "fg_stem_0", "fg_mask_0", "prev_0", "spade_0_0", "spade_0_1", "spade_0_2",
        "seg_stem_1", "fg_stem_1", "fg_mask_1", "prev_1", "spade_1_0", "spade_1_1",
    ]
    engine = build_engine(name, generator, "cpu")
    try:
        assert_step_parity(engine, generator, SIZE)
    finally:
        engine.close()


def assert_step_parity(engine, generator, size: tuple[int, int], tolerance: float = TOLERANCE) -> None:
    """Two steps (two histories) of ``engine`` agree with the PyTorch fp32 generator."""
    for seed in (0, 5):
        label_stacks, prev_stacks, codes = step_inputs(generator.config, size, seed=seed)
        images = engine(label_stacks, prev_stacks, codes)
        assert [i.dtype for i in images] == [torch.float32] * generator.config.n_scales
        assert max_difference(images, reference(generator, label_stacks, prev_stacks, codes)) < tolerance


def use_openvino(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usable, reason = engine_status("openvino", "cpu")
    if not usable:
        pytest.skip(reason)
    monkeypatch.setenv("CARLA_NEURAL_CACHE", str(cache))


def test_openvino_matches_pytorch_on_a_checkpoint_and_reuses_its_export(
    tiny_checkpoint: Path, openvino_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_openvino(openvino_cache, monkeypatch)
    generator = load_generator(tiny_checkpoint).eval()
    first = build_engine("openvino", generator, "cpu", threads=1)
    assert_step_parity(first, generator, SIZE)
    facts = first.describe()
    assert facts["engine"] == "openvino" and facts["threads"] == 1 and facts["precision"] == "fp32"
    assert Path(facts["model"]).is_relative_to(openvino_cache / "openvino")
    first.close()
    # A second start with the same weights and size reads the converted model from the cache.
    again = build_engine("openvino", load_generator(tiny_checkpoint).eval(), "cpu", threads=2)
    assert_step_parity(again, generator, SIZE)
    assert again.describe()["cache_hit"] and again.describe()["model"] == facts["model"]
    # Other weights are another model, never the cached one.
    other = load_generator(tiny_checkpoint).eval()
    with torch.no_grad():
        next(other.parameters()).add_(0.5)
    from renderer.engines.openvino_engine import body_cache_key

    flat = first.body_inputs(*step_inputs(generator.config, SIZE)[:2])
    assert body_cache_key(other, flat) != body_cache_key(generator, flat)


@pytest.mark.skipif(not (bundled_checkpoint() / "model.safetensors").is_file(), reason="the bundled model is not built")
def test_openvino_matches_pytorch_on_the_bundled_model(
    openvino_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_openvino(openvino_cache, monkeypatch)
    generator = load_generator("bundled").eval()
    engine = build_engine("openvino", generator, "cpu", size=(128, 64))
    # Trained weights are larger than random ones, and so is the rounding of a reordered sum:
    # 1e-3 is an eighth of one 8-bit level (measured: 2.1e-4).
    assert_step_parity(engine, generator, (128, 64), tolerance=1e-3)


def test_openvino_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    usable, reason = engine_status("openvino", "cuda")
    assert not usable and "CPU" in reason
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    usable, reason = engine_status("openvino", "cpu")
    assert not usable and "pip install openvino" in reason
    with pytest.raises(EngineUnavailable, match="pip install openvino"):
        build_engine("openvino", build_generator(TINY, seed=0), "cpu")


def test_openvino_refuses_a_precision_this_cpu_only_emulates() -> None:
    usable, reason = engine_status("openvino", "cpu")
    if not usable:
        pytest.skip(reason)
    support = precision_support("bf16", "cpu")
    if support.native:
        pytest.skip("bf16 is native on this CPU")
    with pytest.raises(ValueError, match="not native"):
        build_engine("openvino", build_generator(TINY, seed=0), "cpu", precision="bf16")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_engine_only_where_native(precision: str) -> None:
    support = precision_support(precision, "cpu")
    name = f"torch-{precision}"
    generator = build_generator(TINY, seed=3).eval()
    if not support.native:
        assert engine_status(name, "cpu") == (False, support.reason)
        with pytest.raises(EngineUnavailable, match="emulated"):
            build_engine(name, generator, "cpu")
        pytest.skip(f"{precision} is not native on this CPU: {support.reason}")
    label_stacks, prev_stacks, codes = step_inputs(TINY, SIZE)
    # Previous outputs that look like images (smooth), not white noise: reduced precision moves the
    # predicted flow by a fraction of a pixel, which on noise alone changes the warp by up to 0.3.
    prev_stacks = [torch.nn.functional.avg_pool2d(p, 9, 1, 4, count_include_pad=False) for p in prev_stacks]
    images = build_engine(name, generator, "cpu")(label_stacks, prev_stacks, codes)
    # Reduced precision: within 3 of 255 levels (outputs span 2.0, a level is 2/255). Measured for
    # bf16 on an AVX-512 BF16 CPU: 0.013-0.016, i.e. up to 2.1 levels.
    assert max_difference(images, reference(generator, label_stacks, prev_stacks, codes)) < 6 / 255


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["torch", "torch-fp16", "onnx", "tensorrt"])
def test_gpu_engine_matches_pytorch_fp32(name: str) -> None:
    usable, reason = engine_status(name, "cuda")
    if not usable:
        pytest.skip(reason)
    generator = build_generator(TINY, seed=4).eval().cuda()
    label_stacks, prev_stacks, codes = (
        [t.cuda() for t in part] if isinstance(part, list) else part.cuda() for part in step_inputs(TINY, SIZE)
    )
    expected = reference(generator, label_stacks, prev_stacks, codes)
    engine = build_engine(name, generator, "cuda")
    tolerance = 4 / 255 if engine.precision != "fp32" else 1e-3
    assert max_difference(engine(label_stacks, prev_stacks, codes), expected) < tolerance


def test_unavailable_engines_say_what_they_need() -> None:
    usable, reason = engine_status("tensorrt", "cpu")
    assert not usable and "CUDA" in reason
    with pytest.raises(EngineUnavailable, match="CUDA"):
        build_engine("tensorrt", build_generator(TINY, seed=0), "cpu")
    usable, reason = engine_status("nonsense", "cpu")
    assert not usable and all(name in reason for name in ENGINE_NAMES)
    with pytest.raises(ValueError, match="unknown engine"):
        build_engine("nonsense", build_generator(TINY, seed=0), "cpu")


def test_precision_resolution() -> None:
    assert precision_support("fp32", "cpu").native
    assert best_precision("cpu") in ("fp32", "bf16", "fp16")
    assert precision_support(best_precision("cpu"), "cpu").native
    for precision in ("fp16", "bf16"):
        if not precision_support(precision, "cpu").native:
            with pytest.raises(ValueError, match="not native"):
                resolve_precision(precision, "cpu")
    with pytest.raises(ValueError, match="precision must be"):
        precision_support("int3", "cpu")


def test_engine_built_for_a_size_ahead_of_time_serves_the_renderer() -> None:
    generator = build_generator(TINY, seed=6).eval()
    plain = SequentialRenderer(copy.deepcopy(generator), size=SIZE, start="blank")
    engine = build_engine("torch", generator, "cpu", size=SIZE)
    assert engine._built_for is not None  # built from example stacks before any frame
    fast = SequentialRenderer(generator, size=SIZE, engine=engine, start="blank")
    # Frames 0-1 are the blank start, frame 2 the first engine frame; all from the same history.
    # (Later frames feed back their own outputs: with random weights, float-order differences
    # grow from frame to frame, so they are compared step by step in the tests above instead.)
    for labels, instances in synthetic_street(*SIZE, 3):
        expected = plain.step(labels, instances).astype(int)
        got = fast.step(labels, instances).astype(int)
        assert np.abs(got - expected).max() <= 1
    stacks, prevs = example_stacks(TINY, SIZE)
    assert [tuple(s.shape) for s in stacks] == [(1, 108, 16, 32), (1, 108, 32, 64)]
    assert [tuple(p.shape) for p in prevs] == [(1, 6, 16, 32), (1, 6, 32, 64)]
