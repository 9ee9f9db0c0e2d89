"""Stateful frame-by-frame rendering with vid2vid's sequential generator.

Per sequence the renderer keeps the last ``n_frames`` encoded label frames (as pyramids) and, per
scale, the last ``n_frames − 1`` outputs of that scale: exactly the state NVIDIA's test path keeps.

First frames: with a single-image generator, frames 0 and 1 are its outputs (as in NVIDIA's
``--use_single_G``; NVIDIA computes them but saves only from frame 2 on). Without one, the
history starts **blank**: the label history is padded by repeating the first frame; frame 0 has
no previous outputs, so the image encoders are skipped and each scale returns its hallucinated
image; frame 1 uses frame 0's output as both previous outputs. (NVIDIA's ``--no_first_img``
feeds zero images instead, which per-frame normalisation turns into amplified rounding noise.)
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from renderer.engines.torch_engine import TorchEngine
from renderer.model.generator import Vid2VidGenerator
from renderer.model.inputs import build_pyramid, instance_edges, one_hot_labels, pooled_label_frame
from renderer.model.style import features_from_vectors
from renderer.protocol import StyleChoice
from renderer.resize import resize_nearest
from renderer.model.stem import frame_codes

log = logging.getLogger(__name__)

StartMode = Literal["auto", "single_g", "blank"]


class FrameEngine(Protocol):
    """Runs the generator for one frame: per-scale stacks in, per-scale images out.

    ``label_stacks[s]`` (1, n_frames·(label_nc+1), h_s, w_s) and ``prev_stacks[s]``
    (1, (n_frames−1)·3, h_s, w_s) float32, s = 0 coarsest; ``label_codes`` (1, n_frames, H, W)
    int64 are the finest scale's labels as ``label·2 + edge`` (``stem.frame_codes``), for the
    exact lookup stem; ``features`` (1, feat_nc, H, W) float32 the style features (passed only
    while a style is set). Returns the composed image of every scale, (1, 3, h_s, w_s) float32 in
    [-1, 1], coarsest first, on the same device.
    """

    def __call__(
        self,
        label_stacks: Sequence[torch.Tensor],
        prev_stacks: Sequence[torch.Tensor],
        label_codes: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> list[torch.Tensor]: ...


def round_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    """(W, H) rounded to the nearest multiples of ``multiple`` (at least one multiple each)."""
    return (
        max(multiple, int(round(width / multiple)) * multiple),
        max(multiple, int(round(height / multiple)) * multiple),
    )


def to_uint8_rgb(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, truncating like NVIDIA's ``tensor2im``."""
    scaled = ((image[0].float() + 1.0) / 2.0 * 255.0).clamp(0, 255)
    return scaled.permute(1, 2, 0).to(torch.uint8).cpu().numpy()


class SequentialRenderer:
    """Label frames in, RGB frames out, one at a time, with the generator's temporal state.

    ``size`` is the working (W, H); None takes the first frame's size. Sizes are rounded to the
    nearest multiple the network accepts (``config.size_multiple``). The generator is used as it
    is (its norm mode and train/eval flag are left alone; loaders give "frame" mode, eval).
    """

    def __init__(
        self,
        generator: Vid2VidGenerator,
        device: str | torch.device = "cpu",
        size: tuple[int, int] | None = None,
        engine: FrameEngine | None = None,
        start: StartMode = "auto",
    ) -> None:
        self.generator = generator.to(device)
        self.config = generator.config
        self.device = torch.device(device)
        # Plain eager fp32 in NCHW: what the generator itself computes, bit for bit.
        self.engine: FrameEngine = engine if engine is not None else TorchEngine(
            self.generator, self.device, channels_last=False)
        if start == "single_g" and generator.single_g is None:
            raise ValueError("start='single_g' needs a generator with a single-image generator")
        if start not in ("auto", "single_g", "blank"):
            raise ValueError(f"start must be 'auto', 'single_g' or 'blank', got {start!r}")
        self.start: StartMode = (
            ("single_g" if generator.single_g is not None else "blank") if start == "auto" else start
        )
        self.size: tuple[int, int] | None = None
        if size is not None:
            self.size = self._checked_size(size)
        self.style: torch.Tensor | None = None
        # A tone's gains and offsets for ``style`` (StyleTone.table), or None.
        self._tone_table: torch.Tensor | None = None
        # The checkpoint's style clusters (renderer.styles.StyleBank), set by load_renderer.
        self.style_bank = None
        self.reset()

    def apply_style(self, choice: StyleChoice | None) -> None:
        """Set the style from a ``StyleChoice`` (an index of ``style_bank``, vectors, or none);
        ValueError naming what is missing (no styles, no such index). Starts a new sequence.

        No style means the bank's default (``StyleBank.default_vectors``: its per-class training
        means, or no feature input for styles added to a frozen model); without a bank, no feature
        input at all (every model without styles: exactly as before)."""
        if choice is None or (choice.index is None and choice.vectors is None):
            self.set_style(None if self.style_bank is None else self.style_bank.default_vectors())
        elif choice.index is not None:
            if self.style_bank is None:
                raise ValueError("this checkpoint has no style clusters: compute them with "
                                 "`carla-neural styles CKPT --data DIR`, or pass --style-from PHOTO"
                                 if self.generator.has_styles else
                                 "this checkpoint has no styles (generator feat_nc is 0); render it "
                                 "without --style")
            self.set_style(self.style_bank.vectors(choice.index))
        else:
            self.set_style(choice.vectors)

    def set_style(self, vectors: np.ndarray | None) -> None:
        """Fix the style of the following frames: per-class feature vectors (label_nc, feat_nc)
        float32 (``renderer.styles``), or None for none; starts a new sequence, so that no frame
        mixes two styles. The same vectors are used for every frame, so the style cannot drift."""
        if vectors is None:
            self.style = None
        else:
            if not self.generator.has_styles:
                raise ValueError("this checkpoint has no styles (generator feat_nc is 0); render it "
                                 "without --style, or train one with `carla-neural train --feature-channels 3`")
            expected = (self.config.label_nc, self.config.feat_nc)
            array = np.asarray(vectors)
            if array.shape != expected or array.dtype != np.float32 or not np.isfinite(array).all():
                raise ValueError(f"style vectors must be finite float32 of shape {expected}, got "
                                 f"{array.shape} {array.dtype}")
            self.style = torch.from_numpy(array.copy()).to(self.device)
        self._tone_table = None
        if self.style is not None and not self.generator.styles_enter_chain:
            with torch.inference_mode():
                self._tone_table = self.generator.style_tone.table(self.style)
        self.reset()

    def _checked_size(self, size: tuple[int, int]) -> tuple[int, int]:
        multiple = self.config.size_multiple
        rounded = round_size(int(size[0]), int(size[1]), multiple)
        if rounded != tuple(size):
            log.info("working size %sx%s rounded to %sx%s (multiple of %d)", *size, *rounded, multiple)
        return rounded

    def reset(self) -> None:
        """Forget the sequence: the next frame starts a new one."""
        self._frames: deque[_LabelFrame] = deque(maxlen=self.config.n_frames)
        self._previous: list[deque[torch.Tensor]] = [
            deque(maxlen=self.config.n_frames - 1) for _ in range(self.config.n_scales)
        ]
        self.frame_index = 0

    def _validate(self, label_ids: np.ndarray, instance_ids: np.ndarray | None) -> None:
        if not isinstance(label_ids, np.ndarray) or label_ids.ndim != 2:
            raise ValueError(f"label_ids must be an (H, W) array, got {getattr(label_ids, 'shape', type(label_ids))}")
        if not np.issubdtype(label_ids.dtype, np.integer):
            raise ValueError(f"label_ids must be integer labelIds (uint8), got dtype {label_ids.dtype}")
        top = int(label_ids.max(initial=0))
        if top >= self.config.label_nc or int(label_ids.min(initial=0)) < 0:
            raise ValueError(
                f"label id {top} is outside 0..{self.config.label_nc - 1}: pass Cityscapes labelIds "
                "(map 255/unknown to 0 'unlabeled' first)"
            )
        if instance_ids is not None:
            if not isinstance(instance_ids, np.ndarray) or instance_ids.shape != label_ids.shape:
                raise ValueError(
                    f"instance_ids must be an array of the labels' shape {label_ids.shape}, got "
                    f"{getattr(instance_ids, 'shape', type(instance_ids))}"
                )
            if not np.issubdtype(instance_ids.dtype, np.integer):
                raise ValueError(f"instance_ids must be integers, got dtype {instance_ids.dtype}")

    def _to_device(
        self, label_ids: np.ndarray, instance_ids: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert self.size is not None
        width, height = self.size
        labels = torch.from_numpy(resize_nearest(label_ids, width, height).astype(np.int64))
        instances = None
        if instance_ids is not None:
            instances = torch.from_numpy(resize_nearest(instance_ids, width, height).astype(np.int64))
            instances = instances.unsqueeze(0).to(self.device)
        return labels.unsqueeze(0).to(self.device), instances

    def step(self, label_ids: np.ndarray, instance_ids: np.ndarray | None = None) -> np.ndarray:
        """Render the next frame: (H, W) uint8 labelIds [+ (H, W) int instance ids] -> (H, W, 3) uint8."""
        self._validate(label_ids, instance_ids)
        in_height, in_width = label_ids.shape
        if self.size is None:
            self.size = self._checked_size((in_width, in_height))
        image = self.step_tensor(*self._to_device(label_ids, instance_ids))
        if image.shape[-2:] != (in_height, in_width):
            downscaling = image.shape[-1] > in_width or image.shape[-2] > in_height
            image = F.interpolate(
                image, size=(in_height, in_width), mode="bilinear", align_corners=False,
                antialias=downscaling,
            )
        return to_uint8_rgb(image)

    @torch.inference_mode()
    def step_tensor(self, label_ids: torch.Tensor, instance_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Render the next frame from (1, H, W) int64 labelIds [+ (1, H, W) instance ids] at the
        working size, on the renderer's device; returns the finest image (1, 3, H, W) float32
        in [-1, 1]."""
        config = self.config
        self._frames.append(_LabelFrame(label_ids, instance_ids, config))
        # A tone (_tone_table) changes only the frame returned: the history, and so the motion,
        # stay the model's own.
        chain_features = (features_from_vectors(self.style, label_ids)
                          if self.style is not None and self.generator.styles_enter_chain else None)
        style_args = {} if chain_features is None else {"features": chain_features}
        first = self.frame_index < config.n_frames - 1
        if first and self.start == "single_g":
            one_hot = self._frames[-1].level(0)[:, : config.label_nc]
            image = self.generator.first_frame(one_hot, chain_features)
            images = build_pyramid(image, config.n_scales)[::-1]
        else:
            frames = list(self._frames)
            frames = [frames[0]] * (config.n_frames - len(frames)) + frames  # blank start pads
            label_codes = torch.stack([frame.codes for frame in frames], 1)
            needed = self.generator.needs_label_stacks(have_codes=True)
            label_stacks: list[torch.Tensor | None] = []
            for scale in range(config.n_scales):
                level = config.n_scales - 1 - scale
                label_stacks.append(
                    torch.cat([frame.level(level) for frame in frames], 1) if needed[scale] else None
                )
            if first:
                images = self._blank_start_frame(label_stacks, label_codes, chain_features)
            else:
                prev_stacks = [torch.cat(list(history), 1) for history in self._previous]
                images = self.engine(label_stacks, prev_stacks, label_codes, **style_args)
        for history, scale_image in zip(self._previous, images):
            history.append(scale_image)
        self.frame_index += 1
        if self._tone_table is None:
            return images[-1]
        return self.generator.style_tone.apply_table(images[-1], label_ids, self._tone_table)

    def _blank_start_frame(
        self, label_stacks: list[torch.Tensor | None], label_codes: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        config = self.config
        if self.frame_index == 0:
            prev_stacks = None  # no history at all: the image encoders are skipped
        else:
            prev_stacks = []
            for history in self._previous:
                # Pad the missing older outputs with the oldest one we have.
                padded = [history[0]] * (config.n_frames - 1 - len(history)) + list(history)
                prev_stacks.append(torch.cat(padded, 1))
        outputs = self.generator(label_stacks, prev_stacks, label_codes=label_codes, features=features)
        return [output.image for output in outputs]


class _LabelFrame:
    """One label frame at the working size with its encodings, computed when first asked for:
    lookup codes (label·2 + edge) and pyramid levels of the one-hot input (level 1 directly from
    the ids, so the full-resolution 36-channel one-hot is built only if something needs it)."""

    def __init__(self, label_ids: torch.Tensor, instance_ids: torch.Tensor | None, config) -> None:
        self.config = config
        self.label_ids = label_ids
        self.edges = None
        if config.use_instance:
            source = instance_ids if instance_ids is not None else label_ids
            self.edges = instance_edges(source)[:, 0]
        self.codes = frame_codes(label_ids, self.edges)
        self._levels: dict[int, torch.Tensor] = {}

    def level(self, level: int) -> torch.Tensor:
        """Pyramid level ``level`` (0 = full size) of the encoded frame, (1, C, h, w) float32."""
        if level not in self._levels:
            if level == 0:
                one_hot = one_hot_labels(self.label_ids, self.config.label_nc)
                parts = [one_hot] if self.edges is None else [one_hot, self.edges.unsqueeze(1)]
                self._levels[0] = torch.cat(parts, 1)
            elif self.config.label_pyramid == "nearest":
                step = 2**level
                one_hot = one_hot_labels(self.label_ids[:, ::step, ::step], self.config.label_nc)
                parts = [one_hot]
                if self.edges is not None:
                    parts.append(self.edges[:, None, ::step, ::step])
                self._levels[level] = torch.cat(parts, 1)
            elif level == 1:
                self._levels[1] = pooled_label_frame(self.label_ids, self.edges, self.config.label_nc)
            else:
                coarser = build_pyramid(self.level(level - 1), 2)[1]
                self._levels[level] = coarser
        return self._levels[level]
