"""The whole sequential generator: the composite scales (coarsest first) and the optional
single-image generator for first frames, with the coarse-to-fine step of one frame."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from renderer.model.composite import (
    CompositeGenerator,
    CompositeLocalGenerator,
    LabelStemMode,
    ScaleOutput,
    fg_mask,
    level_codes,
)
from renderer.model.config import GeneratorConfig, preset
from renderer.model.inputs import build_pyramid, nearest_pyramid
from renderer.model.norm import NormMode, set_norm_mode
from renderer.model.pix2pixhd import build_single_generator
from renderer.model.style import FeatureEncoder, StyleStem, StyleTone, feature_level
from renderer.model.warp import WarpMode


class Vid2VidGenerator(nn.Module):
    """``scales[s]`` is NVIDIA's ``netG{s}`` (s = 0 coarsest); ``single_g`` NVIDIA's ``netG_i``.

    State-dict keys: ``scales.{s}.<NVIDIA key of latest_net_G{s}.pth>`` and
    ``single_g.<NVIDIA key of latest_net_G_{size}.pth>``.
    """

    def __init__(self, config: GeneratorConfig, norm_mode: NormMode = "frame") -> None:
        super().__init__()
        config.validate()
        self.config = config
        scales: list[nn.Module] = [CompositeGenerator(config, norm_mode)]
        scales += [CompositeLocalGenerator(config, s, norm_mode) for s in range(1, config.n_scales)]
        self.scales = nn.ModuleList(scales)
        self.single_g = (
            build_single_generator(config.single_g) if config.single_g is not None else None
        )
        if config.feat_nc:
            # Only models with styles have these (keys encoder.*, and scales.{s}.style_stem.* and
            # style_single.* or, for a tone, style_tone.*): every other checkpoint's state dict
            # is exactly as before.
            self.encoder = FeatureEncoder(config.feat_nc, config.feat_ngf,
                                          colour_skip=config.style_input == "tone")
            if config.style_input == "tone":
                self.style_tone = StyleTone(config.label_nc, config.feat_nc)
            else:
                for scale in self.scales:
                    widths = sum(conv.out_channels for conv in scale._stem_convs())
                    scale.style_stem = StyleStem(config.feat_nc, widths, scale.model_down_seg[1].kernel_size[0])
                if self.single_g is not None:
                    single_stem = self.single_g.stem_conv
                    self.style_single = StyleStem(config.feat_nc, single_stem.out_channels,
                                                  single_stem.kernel_size[0])

    def set_norm_mode(self, mode: NormMode) -> Vid2VidGenerator:
        """"frame" (inference: each frame's own statistics) or "batch" (training BatchNorm)."""
        set_norm_mode(self, mode)
        return self

    def set_fast_paths(
        self, label_stem: LabelStemMode = "lookup", warp_mode: WarpMode = "grid_sample"
    ) -> Vid2VidGenerator:
        """Choose the label-stem and warp implementations (use "dense"/"grid_sample" for export)."""
        for scale in self.scales:
            scale.label_stem_mode = label_stem
            scale.warp_mode = warp_mode
        return self

    def masks(
        self, label_stacks: Sequence[Tensor | None], label_codes: Tensor | None = None
    ) -> list[Tensor | None]:
        """The fg mask (B, 1, h, w) of every scale's current frame (None without a fg branch); a
        scale whose stack is None (finest, lookup stem) takes it from ``label_codes``."""
        if not self.config.use_fg:
            return [None] * len(label_stacks)
        masks: list[Tensor | None] = []
        last = self.config.n_scales - 1
        for index, stack in enumerate(label_stacks):
            if stack is not None:
                masks.append(fg_mask(stack, self.config))
            elif label_codes is not None:
                codes = level_codes(label_codes[:, -1:], last - index)  # None only at level 0 or nearest
                labels = codes // 2 if self.config.use_instance else codes
                fg = torch.tensor(self.config.fg_labels, device=labels.device)
                masks.append(torch.isin(labels, fg).to(torch.float32))
            else:
                raise ValueError("a label stack is None and no label_codes were given")
        return masks

    def stems(
        self,
        label_stacks: Sequence[Tensor | None],
        label_codes: Tensor | None = None,
        features: Tensor | None = None,
    ) -> list[tuple[Tensor, Tensor | None]]:
        """Every scale's label stems (see ``CompositeGenerator.label_stems``); ``label_codes``
        (B, n_frames, H, W) int64 are the full-resolution frames (``stem.frame_codes``);
        ``features`` (B, feat_nc, H, W) float the current frame's full-resolution style features
        (models with ``feat_nc`` > 0; None: no style input)."""
        self._check_count(label_stacks, label_stacks)
        last = self.config.n_scales - 1
        return [
            scale.styled_stems(
                *scale.label_stems(stack, label_codes, last - index),
                None if features is None else feature_level(features, last - index),
            )
            for index, (scale, stack) in enumerate(zip(self.scales, label_stacks))
        ]

    def modulations(
        self, label_stacks: Sequence[Tensor | None], label_codes: Tensor | None = None
    ) -> list[list[Tensor]]:
        """Every scale's SPADE label convs (``CompositeGenerator.modulation_stems``; empty lists
        for NVIDIA's design), from the stacks or, with "lookup", the full-resolution codes."""
        self._check_count(label_stacks, label_stacks)
        last = self.config.n_scales - 1
        return [
            scale.modulation_stems(stack, label_codes, last - index)
            for index, (scale, stack) in enumerate(zip(self.scales, label_stacks))
        ]

    def label_pyramid(self, encoded_labels: Tensor, n_scales: int | None = None) -> list[Tensor]:
        """(B, C, H, W) encoded label frame(s) (``inputs.encode_label_frame``, any C) -> the
        label input of every scale, **coarsest first** (as ``label_stacks``), built the way this
        model was trained: NVIDIA's 3×3 average pool ("avg") or nearest downsampling."""
        n_scales = self.config.n_scales if n_scales is None else n_scales
        if self.config.label_pyramid == "nearest":
            return nearest_pyramid(encoded_labels, n_scales)[::-1]
        return build_pyramid(encoded_labels, n_scales)[::-1]

    def needs_label_stacks(self, have_codes: bool) -> list[bool]:
        """Per scale (coarsest first): whether ``stems`` needs that scale's stacked input."""
        last = self.config.n_scales - 1
        return [scale.needs_label_stack(last - i, have_codes) for i, scale in enumerate(self.scales)]

    def forward_from_stems(
        self,
        stems: Sequence[tuple[Tensor, Tensor | None]],
        masks: Sequence[Tensor | None],
        prev_stacks: Sequence[Tensor] | None,
        use_raw_only: bool = False,
        modulations: Sequence[Sequence[Tensor]] | None = None,
    ) -> list[ScaleOutput]:
        """All scales, coarse to fine, from precomputed stems, masks and SPADE label convs
        (``modulations``, see ``modulations``; None for NVIDIA's design) (for engines)."""
        if prev_stacks is None:
            prev_stacks = [None] * len(stems)  # type: ignore[list-item]
        if modulations is None:
            if self.config.generator != "nvidia":
                raise ValueError(f"a {self.config.generator!r} generator needs its label modulations")
            modulations = [()] * len(stems)
        self._check_count(stems, prev_stacks)
        outputs: list[ScaleOutput] = []
        coarse: ScaleOutput | None = None
        for scale, (seg_stem, fg_stem), mask, prev, modulation in zip(
            self.scales, stems, masks, prev_stacks, modulations
        ):
            coarse = scale.forward_from_stems(seg_stem, fg_stem, prev, mask, coarse, use_raw_only, modulation)
            outputs.append(coarse)
        return outputs

    def forward(
        self,
        label_stacks: Sequence[Tensor | None],
        prev_stacks: Sequence[Tensor] | None,
        use_raw_only: bool = False,
        label_codes: Tensor | None = None,
        features: Tensor | None = None,
    ) -> list[ScaleOutput]:
        """One frame through all scales, coarse to fine.

        ``label_stacks[s]`` (B, n_frames·(label_nc+1), H/2^(n−1−s), W/2^(n−1−s)) and
        ``prev_stacks[s]`` (B, (n_frames−1)·3, same h, w) for scale s (0 = coarsest), frames
        oldest first; ``prev_stacks=None``: no history yet (first frame without a single-image
        generator: the image encoder is skipped and each scale returns its hallucinated image).
        ``label_codes`` (B, n_frames, H, W) int64, optional: the full-resolution frames as
        ``label·2 + edge``, for the exact lookup stems; with them the finest stack may be None
        (see ``needs_label_stacks``). ``features`` see ``stems``. Returns one ScaleOutput per
        scale, coarsest first; the last is the frame.
        """
        self._check_count(label_stacks, label_stacks if prev_stacks is None else prev_stacks)
        return self.forward_from_stems(
            self.stems(label_stacks, label_codes, features),
            self.masks(label_stacks, label_codes),
            prev_stacks,
            use_raw_only,
            self.modulations(label_stacks, label_codes),
        )

    def _check_count(self, first: Sequence, second: Sequence) -> None:
        n_scales = self.config.n_scales
        if len(first) != n_scales or len(second) != n_scales:
            raise ValueError(
                f"expected {n_scales} label and previous-output stacks (one per scale), got "
                f"{len(first)} and {len(second)}"
            )

    def first_frame(self, one_hot: Tensor, features: Tensor | None = None) -> Tensor:
        """Single-image generator: (B, label_nc, H, W) one-hot [+ (B, feat_nc, H, W) style
        features] -> (B, 3, H, W) in [-1, 1]."""
        if self.single_g is None:
            raise ValueError("this generator has no single-image generator for first frames")
        if features is None:
            return self.single_g(one_hot)
        if not self.styles_enter_chain:
            raise ValueError("this generator takes no style features into the network (generator "
                             "feat_nc is 0, or its style is a tone: see ``tone``)")
        # A global generator of either design: the config allows styles with no other.
        return self.single_g(one_hot, stem_extra=self.style_single(features))

    @property
    def has_styles(self) -> bool:
        """Whether this generator has a feature encoder and takes style features."""
        return bool(self.config.feat_nc)

    @property
    def styles_enter_chain(self) -> bool:
        """Whether the style features go into the network itself (beside the labels), rather than
        only into ``tone`` on its output."""
        return bool(self.config.feat_nc) and self.config.style_input == "stems"

    def tone(self, image: Tensor, label_ids: Tensor, features: Tensor | None) -> Tensor:
        """The frame a user sees: (B, 3, H, W) in [-1, 1] with the style's per-class colour
        change (``StyleTone``) for (B, H, W) labelIds and (B, feat_nc, H, W) features; the image
        itself for a model without a tone or without style (features None)."""
        if features is None or self.config.style_input != "tone":
            return image
        return self.style_tone(image, label_ids, features)


def build_generator(
    config: GeneratorConfig | str, norm_mode: NormMode = "frame", seed: int | None = None
) -> Vid2VidGenerator:
    """A generator from a config or preset name, with NVIDIA's init (N(0, 0.02) conv weights,
    PyTorch's default conv biases, N(1, 0.02) norm weights); ``seed`` makes every parameter
    reproducible."""
    if isinstance(config, str):
        config = preset(config)
    generator = Vid2VidGenerator(config, norm_mode)
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.weight.normal_(0.0, 0.02, generator=rng)
                if module.bias is not None:
                    # NVIDIA keeps PyTorch's default bias init: U(±1/sqrt(fan_in)), fan_in from
                    # weight dim 1 (as torch computes it for both conv kinds); drawn from ``rng``.
                    fan_in = module.weight.shape[1] * module.weight[0, 0].numel()
                    bound = 1.0 / math.sqrt(fan_in)
                    module.bias.uniform_(-bound, bound, generator=rng)
            elif isinstance(module, nn.BatchNorm2d) and module.affine:
                module.weight.normal_(1.0, 0.02, generator=rng)
                module.bias.zero_()
    return generator
