"""vid2vid's sequential generators: ``CompositeGenerator`` (coarsest scale) and
``CompositeLocalGenerator`` (each finer scale), with NVIDIA's parameter names and shapes.

Each scale encodes the stacked label frames and the stacked previous outputs, and decodes three
things: a hallucinated image, a backward flow to the previous output with an occlusion weight, and
(optionally) a foreground image composed in where the current frame's labels are cars.

With ``generator: spade`` the hallucinated image's decoder (its residual blocks and upsamplings)
is a ``SPADEDecoder`` modulated by the current label frame (``spade_img``); the encoders, the
flow/weight decoder and the foreground branch stay as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from renderer.model.blocks import ResnetBlock, downsample, head, stem, upsample
from renderer.model.config import GeneratorConfig
from renderer.model.norm import FrameStatNorm2d, NormMode
from renderer.model.spade import SPADEDecoder
from renderer.model.stem import (
    channels_from_codes,
    lookup_stem,
    lookup_table,
    pooled_lookup_stem,
    present_channel_conv,
)
from renderer.model.warp import WarpMode, warp

LabelStemMode = Literal["lookup", "present", "dense"]

FLOW_SCALE = 20.0  # NVIDIA's flow head output is multiplied by 20 · 2^scale
# The level-1 lookup stem pays a fixed cost for its indices; below this many stem output channels
# the present-channel conv is cheaper (measured at 512x256 on a 2-core AVX2 CPU).
POOLED_LOOKUP_MIN_CHANNELS = 64


@dataclass
class ScaleOutput:
    """What one scale produces for one frame (all (B, C, h, w) float, images in [-1, 1]).

    ``image`` is the composed frame; ``raw`` the hallucinated image (with the foreground composed
    in); ``flow`` the backward flow in pixels of this scale; ``weight`` the occlusion weight (1 =
    take the hallucinated image). ``fg`` is the foreground branch's image (None without it).
    ``img_feat``, ``flow_feat``, ``fg_feat`` feed the next finer scale.
    """

    image: Tensor
    raw: Tensor
    flow: Tensor
    weight: Tensor
    fg: Tensor | None
    img_feat: Tensor
    flow_feat: Tensor
    fg_feat: Tensor | None


def level_codes(label_codes: Tensor, level: int) -> Tensor:
    """Codes (B, n_frames, H, W) of the full-size frames -> those of nearest-pyramid ``level``
    (every 2**level-th row and column)."""
    step = 2**level
    return label_codes[:, :, ::step, ::step]


def fg_mask(label_stack: Tensor, config: GeneratorConfig) -> Tensor:
    """Foreground mask (B, 1, h, w) of the current (last) frame of a stacked label input."""
    offset = (config.n_frames - 1) * config.label_channels
    mask = label_stack[:, offset + config.fg_labels[0] : offset + config.fg_labels[0] + 1]
    for label in config.fg_labels[1:]:
        mask = mask + label_stack[:, offset + label : offset + label + 1]
    return mask.clamp(0, 1)


class _CompositeBase(nn.Module):
    """Shared stems, composition and forward; subclasses build the layers and ``_body``."""

    use_fg: bool
    flow_multiplier: float
    config: GeneratorConfig
    model_down_seg: nn.Sequential
    model_down_img: nn.Sequential
    indv_down: nn.Sequential
    model_final_flow: nn.Sequential
    model_final_w: nn.Sequential
    indv_final: nn.Sequential

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        # "lookup": table lookup on label codes when given (finest scale), else "present";
        # "present": convolve only the non-zero label channels; "dense": the plain conv (for
        # tracing/export, where shapes must not depend on the data). All exact; fast paths apply
        # only without autograd.
        self.label_stem_mode: LabelStemMode = "lookup"
        self.warp_mode: WarpMode = "grid_sample"
        self._table_cache: dict[tuple[int, ...], tuple[tuple, torch.Tensor]] = {}
        self.spade_img: SPADEDecoder | None = None  # generator "spade": the image decoder

    def _stem_convs(self) -> list[nn.Conv2d]:
        convs = [self.model_down_seg[1]]
        if self.use_fg:
            convs.append(self.indv_down[1])
        return convs  # type: ignore[return-value]

    def _lookup_table(self, convs: list[nn.Conv2d] | None = None, n_frames: int | None = None) -> torch.Tensor:
        """The lookup table of ``convs`` (default: the label stems) on ``n_frames`` one-hot
        frames (default: config.n_frames), rebuilt when their weights change."""
        convs = self._stem_convs() if convs is None else convs
        n_frames = self.config.n_frames if n_frames is None else n_frames
        which = tuple(id(conv) for conv in convs)
        key = tuple((conv.weight.data_ptr(), conv.weight._version) for conv in convs)
        cached = self._table_cache.get(which)
        if cached is None or cached[0] != key:
            config = self.config
            with torch.no_grad():
                table = lookup_table(convs, config.label_nc, config.use_instance, n_frames)
            cached = self._table_cache[which] = (key, table)
        return cached[1]

    def label_stems(
        self, label_stack: Tensor | None, label_codes: Tensor | None = None, level: int = 0
    ) -> tuple[Tensor, Tensor | None]:
        """Stem conv outputs (before norm) of the encoder and the fg encoder, (B, ngf, h, w) and
        (B, fg_ngf, h, w) | None.

        ``label_codes`` (B, n_frames, H, W) int64 (``stem.frame_codes``) are the *full-resolution*
        one-hot frames; this scale's input is pyramid level ``level`` of them (0 = full size).
        With codes, "lookup" mode uses the table lookup at level 0 (then ``label_stack`` may be
        None) and, for wide stems, at level 1; otherwise the non-zero channels of ``label_stack``.
        """
        convs = self._stem_convs()
        fast = not torch.is_grad_enabled()
        lookup = fast and self.label_stem_mode == "lookup" and label_codes is not None
        widths = [conv.out_channels for conv in convs]
        nearest = self.config.label_pyramid == "nearest"
        if lookup and (
            level == 0
            or nearest
            or (level == 1 and sum(widths) >= POOLED_LOOKUP_MIN_CHANNELS)
        ):
            biases = [conv.bias for conv in convs]
            bias = torch.cat(biases) if all(b is not None for b in biases) else None  # type: ignore[arg-type]
            n_codes = self.config.label_nc * (2 if self.config.use_instance else 1)
            if nearest and level > 0:
                # A nearest pyramid level is the full-size frame subsampled: still one-hot.
                label_codes = level_codes(label_codes, level)
            stem_fn = lookup_stem if (level == 0 or nearest) else pooled_lookup_stem
            stacked = stem_fn(label_codes, self._lookup_table(), bias, n_codes)
            outputs = list(stacked.split(widths, dim=1))
        elif label_stack is None:
            raise ValueError(
                "label_stack is None: only the lookup stem (pyramid level 0 or label_pyramid "
                "'nearest'; label_codes given, "
                "label_stem_mode 'lookup') works without it"
            )
        elif fast and self.label_stem_mode in ("lookup", "present"):
            channels = None
            if label_codes is not None:
                config = self.config
                channels = channels_from_codes(label_codes, config.label_nc, config.use_instance)
            outputs = present_channel_conv(label_stack, convs, reflect_pad=3, channels=channels)
        else:
            padded = self.model_down_seg[0](label_stack)
            outputs = [conv(padded) for conv in convs]
        return outputs[0], (outputs[1] if self.use_fg else None)

    def styled_stems(
        self, seg_stem: Tensor, fg_stem: Tensor | None, features: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """The label stems plus the style features' part (``renderer.model.style.StyleStem``);
        ``features`` (B, feat_nc, h, w) at this scale's resolution, or None: the stems unchanged."""
        if features is None:
            return seg_stem, fg_stem
        style_stem = getattr(self, "style_stem", None)
        if style_stem is None:
            raise ValueError("this generator takes no style features into the network (generator "
                             "feat_nc is 0, or its style is a tone)")
        extra = style_stem(features)
        if fg_stem is None:
            return seg_stem + extra, None
        seg_extra, fg_extra = extra.split([seg_stem.shape[1], fg_stem.shape[1]], dim=1)
        return seg_stem + seg_extra, fg_stem + fg_extra

    def modulation_stems(
        self, label_stack: Tensor | None, label_codes: Tensor | None = None, level: int = 0
    ) -> list[Tensor]:
        """The SPADE image decoder's shared label convs before their ReLU: one
        (B, layers·spade_hidden, h/f, w/f) tensor per decoder resolution (``SPADEDecoder.embed``),
        from the current (last) frame of ``label_stack`` or, in "lookup" mode, of ``label_codes``
        (see ``label_stems``) by exact table lookup; [] for NVIDIA's design."""
        decoder = self.spade_img
        if decoder is None:
            return []
        config = self.config
        fast = not torch.is_grad_enabled()
        if fast and self.label_stem_mode == "lookup" and label_codes is not None:
            n_codes = config.label_nc * (2 if config.use_instance else 1)
            outputs = []
            for resolution in decoder.resolutions:
                convs = decoder.shared_convs(resolution)
                # factor(resolution) = 2^(n_up - resolution) below this scale's own level
                codes = level_codes(label_codes[:, -1:], level + decoder.n_up - resolution)
                bias = torch.cat([conv.bias for conv in convs])  # type: ignore[misc]
                table = self._lookup_table(convs, n_frames=1)
                outputs.append(lookup_stem(codes, table, bias, n_codes, kernel=3))
            return outputs
        if label_stack is None:
            raise ValueError("label_stack is None: only the lookup path (label_codes given) works without it")
        current = label_stack[:, -config.label_channels :]
        if fast and self.label_stem_mode in ("lookup", "present"):
            return [
                torch.cat(
                    present_channel_conv(current[..., :: decoder.factor(r), :: decoder.factor(r)],
                                         decoder.shared_convs(r), reflect_pad=1),
                    dim=1,
                )
                for r in decoder.resolutions
            ]
        return decoder.embed(current)

    def needs_label_stack(self, level: int, have_codes: bool) -> bool:
        """Whether ``label_stems`` at pyramid ``level`` needs the stacked one-hot input."""
        exact_lookup = level == 0 or self.config.label_pyramid == "nearest"
        return not (have_codes and exact_lookup and self.label_stem_mode == "lookup")

    def _flow_and_weight(self, flow_feat: Tensor) -> tuple[Tensor, Tensor]:
        # One pad and one 3-channel conv for both heads (same input; exact).
        flow_conv, weight_conv = self.model_final_flow[1], self.model_final_w[1]
        padded = self.model_final_flow[0](flow_feat)
        both = F.conv2d(
            padded,
            torch.cat([flow_conv.weight, weight_conv.weight]),  # type: ignore[list-item]
            torch.cat([flow_conv.bias, weight_conv.bias]),  # type: ignore[list-item]
        )
        return both[:, :2] * self.flow_multiplier, torch.sigmoid(both[:, 2:])

    def _compose(
        self,
        img_raw: Tensor,
        img_feat: Tensor,
        flow_feat: Tensor,
        prev_stack: Tensor | None,
        mask: Tensor | None,
        fg_feat: Tensor | None,
        use_raw_only: bool,
    ) -> ScaleOutput:
        flow, weight = self._flow_and_weight(flow_feat)
        if use_raw_only or prev_stack is None:
            image = img_raw
        else:
            previous = prev_stack[:, -img_raw.shape[1] :]
            image = img_raw * weight + warp(previous, flow, self.warp_mode) * (1 - weight)
        fg = None
        if self.use_fg:
            assert fg_feat is not None
            if mask is None:
                raise ValueError("this generator has a foreground branch: pass the fg mask")
            fg = self.indv_final(fg_feat)
            image = fg * mask + image * (1 - mask)
            img_raw = fg * mask + img_raw * (1 - mask)
        return ScaleOutput(image, img_raw, flow, weight, fg, img_feat, flow_feat, fg_feat)

    def _encode(self, seg_stem: Tensor, prev_stack: Tensor | None) -> Tensor:
        encoded = self.model_down_seg[2:](seg_stem)
        if prev_stack is None:
            # No history (first frame of a blank start). NVIDIA feeds zeros here, but a constant
            # image makes every per-frame-normalised layer of this encoder amplify float
            # rounding noise to O(1): an ill-conditioned, layout-dependent result. Skip it.
            return encoded
        return encoded + self.model_down_img(prev_stack)

    def _body(
        self,
        seg_stem: Tensor,
        fg_stem: Tensor | None,
        prev_stack: Tensor | None,
        coarse: ScaleOutput | None,
        modulation: Sequence[Tensor],
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        raise NotImplementedError

    def forward_from_stems(
        self,
        seg_stem: Tensor,
        fg_stem: Tensor | None,
        prev_stack: Tensor | None,
        mask: Tensor | None = None,
        coarse: ScaleOutput | None = None,
        use_raw_only: bool = False,
        modulation: Sequence[Tensor] = (),
    ) -> ScaleOutput:
        """Everything after the label stems (see ``label_stems``) and the SPADE label convs
        (``modulation``, see ``modulation_stems``; none for NVIDIA's design): for engines that
        compute them outside their graph."""
        img_feat, flow_feat, fg_feat = self._body(seg_stem, fg_stem, prev_stack, coarse, modulation)
        img_raw = self.model_final_img(img_feat)
        return self._compose(img_raw, img_feat, flow_feat, prev_stack, mask, fg_feat, use_raw_only)

    def forward(
        self,
        label_stack: Tensor,
        prev_stack: Tensor | None,
        mask: Tensor | None = None,
        coarse: ScaleOutput | None = None,
        use_raw_only: bool = False,
        label_codes: Tensor | None = None,
        level: int = 0,
        features: Tensor | None = None,
    ) -> ScaleOutput:
        """One frame at this scale.

        ``label_stack`` (B, n_frames·(label_nc+1), h, w) and ``prev_stack``
        (B, (n_frames−1)·3, h, w), frames oldest first, or None when there is no history yet
        (the image encoder is skipped and the hallucinated image returned); ``mask`` (B, 1, h, w) the fg mask of the
        current frame (needed with a fg branch); ``coarse`` the next coarser scale's output
        (needed at finer scales); ``use_raw_only`` skips the warp (first frame of a blank start);
        ``label_codes`` and ``level`` see ``label_stems``; ``features`` (B, feat_nc, h, w) the
        pooled style features at this scale's resolution (models with ``feat_nc`` > 0).
        """
        seg_stem, fg_stem = self.styled_stems(*self.label_stems(label_stack, label_codes, level), features)
        modulation = self.modulation_stems(label_stack, label_codes, level)
        return self.forward_from_stems(seg_stem, fg_stem, prev_stack, mask, coarse, use_raw_only, modulation)


class CompositeGenerator(_CompositeBase):
    """Coarsest scale: full encoder (``n_downsampling`` downsamplings, residual blocks split
    between the shared encoder and the image and flow decoders) plus a foreground generator."""

    def __init__(self, config: GeneratorConfig, norm_mode: NormMode = "frame") -> None:
        super().__init__(config)
        ngf, n_down, n_blocks = config.ngf, config.n_downsampling, config.n_blocks
        self.use_fg = config.use_fg
        self.flow_multiplier = FLOW_SCALE

        def norm(channels: int) -> nn.Module:
            return FrameStatNorm2d(channels, norm_mode)

        if self.use_fg:
            fg_ngf = ngf // 2 if n_down > 2 else ngf
            indv_down = stem(config.input_nc, fg_ngf, norm)
            for i in range(n_down):
                indv_down += downsample(fg_ngf * 2**i, fg_ngf * 2 ** (i + 1), norm)
            fg_width = fg_ngf * 2**n_down
            self.indv_down = nn.Sequential(*indv_down)
            self.indv_res = nn.Sequential(*[ResnetBlock(fg_width, norm) for _ in range(n_blocks)])
            indv_up: list[nn.Module] = []
            for i in range(n_down):
                indv_up += upsample(fg_width // 2**i, fg_width // 2 ** (i + 1), norm)
            self.indv_up = nn.Sequential(*indv_up)
            self.indv_final = nn.Sequential(
                *head(fg_ngf, config.output_nc, nn.Tanh(), config.full_res_kernel)
            )

        width = ngf * 2**n_down
        encoder: list[nn.Module] = []
        for i in range(n_down):
            encoder += downsample(ngf * 2**i, ngf * 2 ** (i + 1), norm)
        encoder += [ResnetBlock(width, norm) for _ in range(n_blocks - n_blocks // 2)]
        self.model_down_seg = nn.Sequential(*stem(config.input_nc, ngf, norm), *encoder)
        self.model_down_img = nn.Sequential(
            *stem(config.prev_output_nc, ngf, norm, config.full_res_kernel), *copy.deepcopy(encoder)
        )
        # Registration order as before SPADE existed: a seeded init draws the same weights.
        res_blocks = nn.Sequential(*[ResnetBlock(width, norm) for _ in range(n_blocks // 2)])
        decoder: list[nn.Module] = []
        for i in range(n_down):
            decoder += upsample(width // 2**i, width // 2 ** (i + 1), norm)
        if config.generator == "spade":
            self.model_res_flow = res_blocks
            self.model_up_flow = nn.Sequential(*decoder)
            self.spade_img = SPADEDecoder(
                width, n_blocks // 2, n_down, config.label_channels, config.spade_hidden, norm_mode
            )
        else:
            self.model_res_img = res_blocks
            self.model_res_flow = copy.deepcopy(self.model_res_img)
            self.model_up_img = nn.Sequential(*decoder)
            self.model_up_flow = copy.deepcopy(self.model_up_img)
        self.model_final_img = nn.Sequential(*head(ngf, config.output_nc, nn.Tanh(), config.full_res_kernel))
        self.model_final_flow = nn.Sequential(*head(ngf, 2, None, config.full_res_kernel))
        self.model_final_w = nn.Sequential(*head(ngf, 1, nn.Sigmoid(), config.full_res_kernel))

    def _body(
        self,
        seg_stem: Tensor,
        fg_stem: Tensor | None,
        prev_stack: Tensor | None,
        coarse: ScaleOutput | None,
        modulation: Sequence[Tensor],
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        encoded = self._encode(seg_stem, prev_stack)
        if self.spade_img is not None:
            img_feat = self.spade_img(encoded, modulation)
        else:
            img_feat = self.model_up_img(self.model_res_img(encoded))
        flow_feat = self.model_up_flow(self.model_res_flow(encoded))
        fg_feat = None
        if self.use_fg:
            assert fg_stem is not None
            fg_feat = self.indv_up(self.indv_res(self.indv_down[2:](fg_stem)))
        return img_feat, flow_feat, fg_feat


class CompositeLocalGenerator(_CompositeBase):
    """A finer scale ``scale`` ≥ 1: one downsampling, adds the coarser scale's features, residual
    blocks and one upsampling per decoder; ngf = config.ngf // 2**scale."""

    def __init__(self, config: GeneratorConfig, scale: int, norm_mode: NormMode = "frame") -> None:
        if scale < 1:
            raise ValueError(f"CompositeLocalGenerator is for scales >= 1, got {scale}")
        super().__init__(config)
        ngf = config.scale_ngf(scale)
        self.scale = scale
        self.use_fg = config.use_fg
        self.flow_multiplier = FLOW_SCALE * 2**scale

        def norm(channels: int) -> nn.Module:
            return FrameStatNorm2d(channels, norm_mode)

        if self.use_fg:
            # NVIDIA halves the fg width by the *coarsest* scale's downsampling count.
            fg_ngf = ngf // 2 if config.n_downsampling > 2 else ngf
            self.indv_down = nn.Sequential(
                *stem(config.input_nc, fg_ngf, norm), *downsample(fg_ngf, fg_ngf * 2, norm)
            )
            self.indv_up = nn.Sequential(
                *[ResnetBlock(fg_ngf * 2, norm) for _ in range(config.n_blocks_local)],
                *upsample(fg_ngf * 2, fg_ngf, norm),
            )
            self.indv_final = nn.Sequential(
                *head(fg_ngf, config.output_nc, nn.Tanh(), config.full_res_kernel)
            )

        self.model_down_seg = nn.Sequential(
            *stem(config.input_nc, ngf, norm), *downsample(ngf, ngf * 2, norm)
        )
        self.model_down_img = nn.Sequential(
            *stem(config.prev_output_nc, ngf, norm, config.full_res_kernel), *downsample(ngf, ngf * 2, norm)
        )
        decoder = nn.Sequential(
            *[ResnetBlock(ngf * 2, norm) for _ in range(config.n_blocks_local)],
            *upsample(ngf * 2, ngf, norm),
        )
        # Registration order as before SPADE existed: a seeded init draws the same weights.
        spade = config.generator == "spade"
        if spade:
            self.spade_img = SPADEDecoder(
                ngf * 2, config.n_blocks_local, 1, config.label_channels, config.spade_hidden, norm_mode
            )
        else:
            self.model_up_img = decoder
        self.model_final_img = nn.Sequential(*head(ngf, config.output_nc, nn.Tanh(), config.full_res_kernel))
        self.model_up_flow = decoder if spade else copy.deepcopy(decoder)
        self.model_final_flow = nn.Sequential(*head(ngf, 2, None, config.full_res_kernel))
        self.model_final_w = nn.Sequential(*head(ngf, 1, nn.Sigmoid(), config.full_res_kernel))

    def _body(
        self,
        seg_stem: Tensor,
        fg_stem: Tensor | None,
        prev_stack: Tensor | None,
        coarse: ScaleOutput | None,
        modulation: Sequence[Tensor],
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        if coarse is None:
            raise ValueError("a finer scale needs the coarser scale's output (coarse=...)")
        encoded = self._encode(seg_stem, prev_stack)
        features = encoded + coarse.img_feat
        img_feat = self.spade_img(features, modulation) if self.spade_img is not None else self.model_up_img(features)
        flow_feat = self.model_up_flow(encoded + coarse.flow_feat)
        fg_feat = None
        if self.use_fg:
            assert fg_stem is not None and coarse.fg_feat is not None
            fg_feat = self.indv_up(self.indv_down[2:](fg_stem) + coarse.fg_feat)
        return img_feat, flow_feat, fg_feat
