"""The engine interface: one generator step, label stacks and previous outputs in, images out.

Every engine splits the step the same way. The label stems (7×7 convolutions on one-hot labels)
run in PyTorch with the generator's exact fast paths (table lookup at the finest scale, only the
present label channels elsewhere): their cost depends on the data and their shapes on which
classes are present, which a static graph cannot express. The rest, the *body*
(``Vid2VidGenerator.forward_from_stems``), is what each engine runs its own way.

An engine builds itself on its first call (or for the size it is given), from the shapes it
sees, and rebuilds if they change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


class EngineUnavailable(RuntimeError):
    """This engine cannot run here; the message names what it needs."""


class BodyStep(nn.Module):
    """``generator.forward_from_stems`` with flat tensor arguments, for tracing and compiling.

    Arguments, per scale s = 0 (coarsest) … n−1: ``seg_stem, [fg_stem, fg_mask,] prev_stack,
    [spade_r ...]`` (fg entries only with a foreground branch; one SPADE label-conv input per
    decoder resolution r with ``generator: spade``). Returns the composed image of every scale,
    (1, 3, h_s, w_s) float, coarsest first.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.n_scales = int(generator.config.n_scales)
        self.use_fg = bool(generator.config.use_fg)
        self.n_modulations = [
            len(scale.spade_img.resolutions) if scale.spade_img is not None else 0 for scale in generator.scales
        ]
        self.training = False  # only this wrapper; the generator's own modes are left alone

    def scale_arguments(self, scale: int) -> int:
        """Flat arguments of scale ``scale``."""
        return (4 if self.use_fg else 2) + self.n_modulations[scale]

    def input_names(self) -> list[str]:
        """Names of the flat arguments (for ONNX and TensorRT bindings)."""
        names = []
        for scale in range(self.n_scales):
            names.append(f"seg_stem_{scale}")
            if self.use_fg:
                names += [f"fg_stem_{scale}", f"fg_mask_{scale}"]
            names.append(f"prev_{scale}")
            names += [f"spade_{scale}_{r}" for r in range(self.n_modulations[scale])]
        return names

    def output_names(self) -> list[str]:
        """Names of the outputs, one image per scale."""
        return [f"image_{scale}" for scale in range(self.n_scales)]

    def flatten(
        self,
        stems: Sequence[tuple[Tensor, Tensor | None]],
        masks: Sequence[Tensor | None],
        prev_stacks: Sequence[Tensor],
        modulations: Sequence[Sequence[Tensor]] | None = None,
    ) -> list[Tensor]:
        """Per-scale stems, masks, previous-output stacks and SPADE label convs (None for
        NVIDIA's design) -> the flat argument list."""
        if modulations is None:
            modulations = [()] * len(stems)
        flat: list[Tensor] = []
        for (seg, fg), mask, prev, modulation in zip(stems, masks, prev_stacks, modulations):
            flat.append(seg)
            if self.use_fg:
                assert fg is not None and mask is not None
                flat += [fg, mask]
            flat.append(prev)
            flat += list(modulation)
        return flat

    def forward(self, *flat: Tensor) -> tuple[Tensor, ...]:
        expected = sum(self.scale_arguments(scale) for scale in range(self.n_scales))
        if len(flat) != expected:
            raise ValueError(f"expected {expected} tensors, got {len(flat)}")
        stems, masks, prevs, modulations = [], [], [], []
        start = 0
        for scale in range(self.n_scales):
            group = flat[start : start + self.scale_arguments(scale)]
            start += len(group)
            if self.use_fg:
                stems.append((group[0], group[1]))
                masks.append(group[2])
            else:
                stems.append((group[0], None))
                masks.append(None)
            prev_index = 3 if self.use_fg else 1
            prevs.append(group[prev_index])
            modulations.append(group[prev_index + 1 :])
        outputs = self.generator.forward_from_stems(stems, masks, prevs, modulations=modulations)
        return tuple(output.image for output in outputs)


class Engine:
    """Base class: ``engine(label_stacks, prev_stacks, label_codes=None) -> list[images]``.

    ``label_stacks[s]`` (1, n_frames·(label_nc+1), h_s, w_s) float (None where the generator
    needs none: the finest scale when ``label_codes`` feed its lookup stem), ``prev_stacks[s]``
    (1, (n_frames−1)·3, h_s, w_s) float, s = 0 coarsest; ``label_codes`` (1, n_frames, H, W) int64
    enables the finest scale's lookup stem. Returns the composed image of every scale,
    (1, 3, h_s, w_s) float32 in [-1, 1], coarsest first (the ``FrameEngine`` protocol of
    ``renderer.sequential``).
    """

    name = "base"

    def __init__(
        self, generator: nn.Module, device: torch.device | str = "cpu", size: tuple[int, int] | None = None
    ) -> None:
        self.generator = generator
        self.device = torch.device(device)
        self.size = size
        self.precision = "fp32"
        self.body = BodyStep(generator)
        self.build_seconds = 0.0
        self._built_for: tuple[tuple[int, ...], ...] | None = None

    def describe(self) -> dict[str, Any]:
        """What this engine is: name, device, precision, build time and engine-specific facts."""
        return {
            "engine": self.name,
            "device": str(self.device),
            "precision": self.precision,
            "build_s": round(self.build_seconds, 3),
        }

    def body_inputs(
        self,
        label_stacks: Sequence[Tensor],
        prev_stacks: Sequence[Tensor],
        label_codes: Tensor | None = None,
        features: Tensor | None = None,
    ) -> list[Tensor]:
        """Run the stems in PyTorch (with the style ``features`` (1, feat_nc, H, W) added, when
        given) and return the body's flat inputs."""
        with torch.inference_mode():
            stems = self.generator.stems(label_stacks, label_codes, features)
            masks = self.generator.masks(label_stacks, label_codes)
            modulations = self.generator.modulations(label_stacks, label_codes)
        return self.body.flatten(stems, masks, prev_stacks, modulations)

    def __call__(
        self,
        label_stacks: Sequence[Tensor],
        prev_stacks: Sequence[Tensor],
        label_codes: Tensor | None = None,
        features: Tensor | None = None,
    ) -> list[Tensor]:
        flat = self.body_inputs(label_stacks, prev_stacks, label_codes, features)
        shapes = tuple(tuple(tensor.shape) for tensor in flat)
        if shapes != self._built_for:
            started = time.perf_counter()
            self.build(flat)
            self.build_seconds = time.perf_counter() - started
            self._built_for = shapes
            log.info("%s engine built for %s in %.1f s", self.name, shapes[-1], self.build_seconds)
        return [image.float() for image in self.run(flat)]

    def build(self, flat: list[Tensor]) -> None:
        """Prepare for inputs shaped like ``flat`` (export, compile, …); default: nothing."""

    def run(self, flat: list[Tensor]) -> Sequence[Tensor]:
        """Run the body on the flat inputs; returns one image per scale."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine holds beyond the generator (files, sessions)."""


def example_stacks(
    config: Any, size: tuple[int, int], device: torch.device | str = "cpu"
) -> tuple[list[Tensor], list[Tensor]]:
    """All-road label stacks and zero previous outputs for ``size`` (W, H), coarsest first: enough
    to build an engine ahead of the first frame."""
    width, height = size
    label_stacks, prev_stacks = [], []
    for scale in range(config.n_scales):
        factor = 2 ** (config.n_scales - 1 - scale)
        h, w = height // factor, width // factor
        frame = torch.zeros(1, config.label_channels, h, w, device=device)
        frame[:, 7] = 1.0  # road
        label_stacks.append(frame.repeat(1, config.n_frames, 1, 1))
        prev_stacks.append(torch.zeros(1, config.prev_output_nc, h, w, device=device))
    return label_stacks, prev_stacks
