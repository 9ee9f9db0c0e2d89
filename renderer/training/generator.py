"""The generator as training sees it: renderer.model's Vid2VidGenerator behind one forward.

`forward(labels, prev, active_scales)`:
  - temporal model, `prev` given: the composite scales (coarsest `active_scales` of them) on the
    stacked labels of t-2..t and the two previous outputs; returns image, raw, flow, weight.
  - temporal model, `prev=None`: the single-image generator on the current frame (first frames).
  - frame-by-frame baseline (`temporal=False`, or `frame_by_frame=True` on a temporal model as a
    warm start): the same composite generator with its temporal path off: previous outputs are
    zeros, the label stack is the current frame repeated, and the output is the hallucinated image
    alone (no flow, no warping) - pix2pixHD-style, one frame at a time.
One `forward` per backward keeps DistributedDataParallel happy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from renderer.checkpoint import (
    is_our_checkpoint,
    load_checkpoint,
    load_nvidia_checkpoint,
    read_config,
    save_checkpoint,
    strict_load,
)
from renderer.model.config import GeneratorConfig, preset, with_generator
from renderer.model.generator import Vid2VidGenerator, build_generator
from renderer.model.inputs import build_pyramid, one_hot_labels
from renderer.model.style import FeatureEncoder, StyleStem, StyleTone, feature_level, pool_by_instance

log = logging.getLogger(__name__)


class GeneratorOutput(NamedTuple):
    """One generated frame: image (B, 3, H, W) in [-1, 1]; raw, flow (px), weight or None;
    `scale_images` every active scale's image, coarsest first (the next frame's per-scale history)."""

    image: Tensor
    raw: Tensor | None
    flow: Tensor | None
    weight: Tensor | None
    scale_images: list[Tensor] | None = None


def resolve_model_config(model: str, temporal: bool, generator: str | None = None) -> GeneratorConfig:
    """A preset name or a config.json path -> GeneratorConfig (the baseline drops the single-image G);
    ``generator`` ("nvidia", "spade"; None: as given) picks the design (``preset(name, generator)``)."""
    path = Path(model)
    if path.suffix == ".json" and path.is_file():
        document = json.loads(path.read_text())
        config = GeneratorConfig.from_dict(document.get("generator", document))
        if generator is not None and generator != config.generator:
            config = with_generator(config, generator)
    else:
        config = preset(model, generator)
    if not temporal:
        config = config.replace(single_g=None)
    return config


class TrainableGenerator(nn.Module):
    """Wraps a Vid2VidGenerator for training (see module docstring)."""

    def __init__(self, net: Vid2VidGenerator, temporal: bool = True) -> None:
        super().__init__()
        self.net = net
        self.temporal = temporal
        # Training normalises per frame as inference does (NVIDIA's BN never leaves training mode).
        self.net.set_norm_mode("frame")

    @classmethod
    def build(cls, model: str = "lite", temporal: bool = True, init_from: str | None = None,
              seed: int | None = None, generator: str | None = None,
              feature_channels: int = 0, styles_only: bool = False,
              style_input: str = "stems") -> "TrainableGenerator":
        """From a preset / config.json (in design ``generator``, None: as given), optionally
        initialised from our or NVIDIA's checkpoint folder (whose design it keeps);
        ``feature_channels`` > 0 adds a style encoder (docs/styles.md) whose features enter as
        ``style_input`` ("stems" or "tone", ``GeneratorConfig.style_input``); ``styles_only``
        (with ``init_from``) trains nothing but it (``freeze_all_but_styles``)."""
        if init_from is None:
            config = resolve_model_config(model, temporal, generator)
            if feature_channels:
                config = config.replace(feat_nc=feature_channels, style_input=style_input)
            return cls(build_generator(config, seed=seed), temporal)
        folder = Path(init_from)
        net = load_checkpoint(folder) if is_our_checkpoint(folder) else load_nvidia_checkpoint(folder)
        if generator is not None and generator != net.config.generator:
            raise ValueError(f"--init-from {folder} holds a {net.config.generator!r} generator, not "
                             f"{generator!r}: leave --generator out to fine-tune it as it is")
        if not temporal and net.single_g is not None:
            net = _without_single(net)
        if feature_channels and (net.config.feat_nc, net.config.style_input) != (feature_channels, style_input):
            if net.config.feat_nc:
                raise ValueError(f"--init-from {folder} already has styles ({net.config.feat_nc} feature "
                                 f"channels into its {net.config.style_input}): train it with those, or "
                                 "start from a model without styles")
            net = _with_styles(net, feature_channels, seed, zero_stems=not styles_only, style_input=style_input)
        log.info("fine-tuning from %s", folder)
        trainable = cls(net.train(), temporal)
        if styles_only:
            trainable.freeze_all_but_styles()
        return trainable

    # ---------------------------------------------------------------- facts
    @property
    def config(self) -> GeneratorConfig:
        return self.net.config

    @property
    def label_channels(self) -> int:
        return self.config.label_channels

    @property
    def n_frames(self) -> int:
        return self.config.n_frames

    @property
    def num_scales(self) -> int:
        return self.config.n_scales

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    @property
    def has_single(self) -> bool:
        """Whether `forward(labels, None)` trains something (single-image G, or the baseline itself)."""
        return self.net.single_g is not None or not self.temporal

    def encode_labels(self, label_ids: Tensor, edges: Tensor) -> Tensor:
        """(N, H, W) labelIds and (N, 1, H, W) instance edges -> (N, label_channels, H, W) float."""
        if int(label_ids.max()) >= self.config.label_nc:
            raise ValueError(f"label id {int(label_ids.max())} >= label_nc {self.config.label_nc}: "
                             "label maps must hold Cityscapes labelIds (0..33)")
        one_hot = one_hot_labels(label_ids, self.config.label_nc)
        return torch.cat([one_hot, edges.to(one_hot.dtype)], 1) if self.config.use_instance else one_hot

    # ---------------------------------------------------------------- forward
    def style_features(self, real: Tensor, regions: Tensor) -> Tensor | None:
        """The generator's style input for one frame: the feature encoder on the real frame
        (B, 3, H, W) in [-1, 1], averaged over each region of (B, H, W) ids (``region_ids``) ->
        (B, feat_nc, H, W); None for a model without styles."""
        if not self.net.has_styles:
            return None
        return pool_by_instance(self.net.encoder(real), regions)

    def forward(self, labels: Tensor, prev: Tensor | list[Tensor] | None,
                active_scales: int | None = None, frame_by_frame: bool = False,
                style: tuple[Tensor, Tensor] | None = None) -> GeneratorOutput:
        """labels (B, n_frames*C, H, W) stacked oldest first (or (B, C, H, W) when prev is None);
        prev: per active scale (coarsest first) the stacked previous outputs of that scale, as
        NVIDIA's code and the renderer keep them, or one finest-scale tensor to pyramid.
        `frame_by_frame` (prev None): the composite generator with its temporal path off, even on a
        temporal model (the baseline's forward). `style` (real (B, 3, H, W), region ids (B, H, W),
        see ``region_ids``): the current real frame whose pooled encoder features
        (`style_features`) the generator takes, models with styles only (encoded here, inside the
        one forward, so that DistributedDataParallel sees the encoder's gradients too)."""
        active = self.num_scales if active_scales is None else active_scales
        features = None if style is None else self.style_features(*style)
        # A tone styles only the frames the losses see; scale_images (the history) stay untoned,
        # as the renderer keeps them.
        chain = features if self.net.styles_enter_chain else None
        channels = self.label_channels
        current = labels[:, -channels:]
        # The current frame's labelIds, which only a tone needs (not every forward of every model).
        label_ids = (current[:, :self.config.label_nc].argmax(1)
                     if features is not None and not self.net.styles_enter_chain else None)

        def tone(image: Tensor | None) -> Tensor | None:
            return image if image is None or label_ids is None else self.net.tone(image, label_ids, features)

        if prev is None:
            if self.temporal and not frame_by_frame:
                image = self.net.first_frame(current[:, :self.config.label_nc], chain)
                return GeneratorOutput(tone(image), None, None, None, build_pyramid(image, active)[::-1])
            stack = current.repeat(1, self.n_frames, 1, 1)
            zeros = stack.new_zeros(stack.shape[0], self.config.prev_output_nc, *stack.shape[2:])
            outs = self._scales(stack, build_pyramid(zeros, active)[::-1], active, use_raw_only=True,
                                features=chain)
            return GeneratorOutput(tone(outs[-1].raw), None, None, None, [o.raw for o in outs])
        if not self.temporal:
            raise ValueError("the frame-by-frame baseline takes no previous frames")
        prev_stacks = build_pyramid(prev, active)[::-1] if isinstance(prev, Tensor) else list(prev)
        if len(prev_stacks) != active:
            raise ValueError(f"expected previous outputs for {active} scales, got {len(prev_stacks)}")
        outs = self._scales(labels, prev_stacks, active, use_raw_only=False, features=chain)
        out = outs[-1]
        return GeneratorOutput(tone(out.image), tone(out.raw), out.flow, out.weight, [o.image for o in outs])

    def _scales(self, labels: Tensor, prev_stacks: list[Tensor], active: int, use_raw_only: bool,
                features: Tensor | None = None):
        """The coarsest `active` scales; labels (and features) at the finest active scale's resolution."""
        from renderer.model.composite import fg_mask

        # Built the way inference builds it (average pool for NVIDIA's models, nearest for lite).
        label_pyramid = self.net.label_pyramid(labels, active)
        coarse = None
        outputs = []
        for scale in range(active):
            mask = fg_mask(label_pyramid[scale], self.config) if self.config.use_fg else None
            scale_features = None if features is None else feature_level(features, active - 1 - scale)
            coarse = self.net.scales[scale](label_pyramid[scale], prev_stacks[scale], mask, coarse, use_raw_only,
                                            features=scale_features)
            outputs.append(coarse)
        return outputs

    def frozen_parameters(self, active_scales: int, finest_alone: bool) -> list[nn.Parameter]:
        """Parameters that must not change at this curriculum stage."""
        frozen: list[nn.Parameter] = []
        for scale, module in enumerate(self.net.scales):
            if scale >= active_scales or (finest_alone and scale < active_scales - 1):
                frozen += list(module.parameters())
        if finest_alone and self.net.single_g is not None:
            frozen += list(self.net.single_g.parameters())
        return frozen

    def style_parameters(self) -> list[nn.Parameter]:
        """The parameters that only styles use: the feature encoder, every style convolution, the tone."""
        return [param for module in self.modules() if isinstance(module, (FeatureEncoder, StyleStem, StyleTone))
                for param in module.parameters()]

    def freeze_all_but_styles(self) -> None:
        """Stop every parameter but ``style_parameters`` from training (``train --styles-only``)."""
        if not self.net.has_styles:
            raise ValueError("styles_only needs a generator with styles (feature_channels > 0)")
        keep = {id(param) for param in self.style_parameters()}
        for param in self.parameters():
            param.requires_grad_(id(param) in keep)

    # ---------------------------------------------------------------- files
    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Our checkpoint format; metadata records whether the temporal path is on."""
        metadata = {"temporal": self.temporal, **(extra or {})}
        return save_checkpoint(self.net, folder, metadata)

    def load_weights(self, folder: str | Path) -> None:
        """Strictly load the weights of one of our checkpoint folders into this generator."""
        from renderer.checkpoint import WEIGHTS_FILE, read_weights

        config, _ = read_config(folder)
        if config != self.config:
            raise ValueError(f"checkpoint {folder} has generator config {config}, this run uses {self.config}")
        strict_load(self.net, read_weights(Path(folder) / WEIGHTS_FILE), str(folder))


def _without_single(net: Vid2VidGenerator) -> Vid2VidGenerator:
    config = net.config.replace(single_g=None)
    stripped = Vid2VidGenerator(config)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("single_g.")}
    stripped.load_state_dict(state)
    return stripped


def _with_styles(net: Vid2VidGenerator, feature_channels: int, seed: int | None,
                 zero_stems: bool = True, style_input: str = "stems") -> Vid2VidGenerator:
    """``net`` with a style encoder added: its weights kept, the encoder freshly initialised and
    the new style stems zero (so that joint fine-tuning starts from exactly ``net``'s output) or,
    ``zero_stems=False``, initialised like the label stems: with ``net`` frozen the encoder learns
    only through the stems, and zero stems would pass it no gradient. A tone (``style_input``
    "tone") starts at zero, which is the identity and still passes the encoder a gradient."""
    styled = build_generator(net.config.replace(feat_nc=feature_channels, style_input=style_input), seed=seed)
    missing, unexpected = styled.load_state_dict(net.state_dict(), strict=False)
    new_keys = ("encoder.", "style_single.", "style_tone.") + tuple(
        f"scales.{s}.style_stem." for s in range(len(net.scales)))
    if unexpected or any(not key.startswith(new_keys) for key in missing):
        raise ValueError(f"cannot add styles to this generator: unexpected {unexpected}, missing {missing}")
    if zero_stems:
        with torch.no_grad():
            for module in styled.modules():
                if isinstance(module, StyleStem):
                    module.conv.weight.zero_()
    return styled.train(net.training)


def load_trainable(folder: str | Path, device: str | torch.device = "cpu") -> TrainableGenerator:
    """One of our checkpoints as a TrainableGenerator (its metadata says temporal or baseline)."""
    _, metadata = read_config(folder)
    net = load_checkpoint(folder, device)
    return TrainableGenerator(net, bool(metadata.get("temporal", True))).to(device)
