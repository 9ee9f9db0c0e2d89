"""Multimodal styles (pix2pixHD §3.4, vid2vid §3): the feature encoder, instance-wise average
pooling, and the small convolutions that feed the pooled features to the generator.

The encoder maps a real frame to ``feat_nc`` channels; averaging them over each instance (and each
stuff region, whose instance id is its label id) leaves one vector per object. The generator
receives that map beside its labels. A convolution over concatenated inputs is the sum of the
convolutions over each part, so the feature input is one extra reflect-padded convolution whose
output is added to the label stem's (``StyleStem``): the label stems and their exact fast paths stay
as they are, and a model without styles has none of these modules.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from renderer.model.blocks import downsample, head, stem, upsample
from renderer.model.norm import InstanceNormNoAffine

ENCODER_DOWNSAMPLINGS = 3  # the encoder's input sides must be multiples of 2**3


class FeatureEncoder(nn.Module):
    """Encoder-decoder from an RGB frame to ``feat_nc`` channels in [-1, 1] (before pooling).

    ``colour_skip`` (the encoder of a tone): the output convolution also sees the frame itself,
    and has no tanh. The instance norms after every other convolution take each frame's absolute
    colours out, so without the skip a bright and a dull sky encode alike, and a tone is a change
    of absolute colour; a tanh saturated on the brightest regions (skies) and gave them one value."""

    def __init__(self, feat_nc: int, ngf: int = 16, n_down: int = ENCODER_DOWNSAMPLINGS,
                 colour_skip: bool = False) -> None:
        super().__init__()
        layers = stem(3, ngf, InstanceNormNoAffine)
        for i in range(n_down):
            layers += downsample(ngf * 2**i, ngf * 2 ** (i + 1), InstanceNormNoAffine)
        for i in range(n_down, 0, -1):
            layers += upsample(ngf * 2**i, ngf * 2 ** (i - 1), InstanceNormNoAffine)
        self.colour_skip = colour_skip
        if colour_skip:
            self.model = nn.Sequential(*layers)
            self.head = nn.Sequential(*head(ngf + 3, feat_nc, None))
        else:
            layers += head(ngf, feat_nc, nn.Tanh())
            self.model = nn.Sequential(*layers)
        self.size_multiple = 2**n_down

    def forward(self, rgb: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1], H and W multiples of ``size_multiple`` -> (B, feat_nc, H, W)
        (in [-1, 1] unless ``colour_skip``)."""
        if self.colour_skip:
            return self.head(torch.cat([self.model(rgb), rgb], 1))
        return self.model(rgb)


class StyleStem(nn.Module):
    """The feature part of a stem convolution: reflect pad, k×k conv without bias (the label stem
    has the bias), from ``feat_nc`` channels to the stem's output channels."""

    def __init__(self, feat_nc: int, out_channels: int, kernel: int = 7) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(feat_nc, out_channels, kernel, bias=False)

    def forward(self, features: Tensor) -> Tensor:
        """(B, feat_nc, h, w) -> (B, out_channels, h, w), to add to the label stem's output."""
        return self.conv(self.pad(features))


class StyleTone(nn.Module):
    """A style as a colour change of the output alone: per class c, a gain g and an offset b per
    RGB channel, linear in the pixel's style features f, ``[g, b] = weight[c] @ f``, applied in
    [0, 1] as ``x·(1 + g) + b`` (the form of ``training.datasets.class_colour_jitter``'s gains).
    No bias, so zero features (no style) leave the image exactly as it is; zero-initialised, so
    training starts from the untouched image."""

    def __init__(self, label_nc: int, feat_nc: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(label_nc, 6, feat_nc))

    def forward(self, image: Tensor, label_ids: Tensor, features: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1], (B, H, W) int64 labelIds, (B, feat_nc, H, W) features ->
        (B, 3, H, W) in [-1, 1]."""
        params = torch.einsum("bhwof,bfhw->bohw", self.weight[label_ids.long()], features.to(self.weight.dtype))
        return self._toned(image, params)

    def table(self, vectors: Tensor) -> Tensor:
        """(label_nc, feat_nc) per-class style vectors -> (label_nc, 6) gains and offsets: a
        style's whole tone, for ``apply_table`` (a renderer computes it once per style)."""
        return torch.einsum("cof,cf->co", self.weight, vectors.to(self.weight.dtype))

    def apply_table(self, image: Tensor, label_ids: Tensor, table: Tensor) -> Tensor:
        """``forward`` for per-class vectors, from their ``table``: one lookup per pixel."""
        return self._toned(image, table[label_ids.long()].permute(0, 3, 1, 2))

    @staticmethod
    def _toned(image: Tensor, params: Tensor) -> Tensor:
        gain, offset = params.to(image.dtype).split(3, dim=1)
        # x·(1 + g) + b in [0, 1], written as a change of the [-1, 1] image so that g = b = 0
        # returns it bit for bit.
        return (image + (image + 1) * gain + 2 * offset).clamp(-1, 1)


def feature_level(features: Tensor, level: int) -> Tensor:
    """(B, C, H, W) full-resolution features -> pyramid ``level`` (every 2**level-th row and
    column): pooled features are constant over each region, so subsampling keeps them exact."""
    step = 2**level
    return features[..., ::step, ::step]


REGION_STRIDE = 1 << 16  # instance ids are below 2**16 (uint16 PNGs)


def region_ids(label_ids: Tensor, instance_ids: Tensor) -> Tensor:
    """(..., H, W) labelIds and instance ids -> (..., H, W) int64 region ids: one per (label,
    instance) pair. Cityscapes' instance ids (label·1000 + k, stuff its label id) already name
    one class each; 8-bit instance maps (NVIDIA's sample: small ids per object, 255 for all stuff)
    do not, and pooling by them alone would average road, sky and buildings into one region."""
    return label_ids.long() * REGION_STRIDE + instance_ids.long()


def pool_by_instance(features: Tensor, instance_ids: Tensor) -> Tensor:
    """(B, C, H, W) float features, (B, H, W) integer instance ids -> (B, C, H, W): each pixel
    holds the mean feature of its instance (differentiable, so the encoder trains through it)."""
    if instance_ids.shape != (features.shape[0], *features.shape[2:]):
        raise ValueError(f"instance ids {tuple(instance_ids.shape)} do not match features "
                         f"{tuple(features.shape)}")
    pooled = []
    for sample in range(features.shape[0]):
        _, inverse = torch.unique(instance_ids[sample].flatten(), return_inverse=True)
        n_regions = int(inverse.max()) + 1
        flat = features[sample].flatten(1)  # (C, H·W)
        sums = flat.new_zeros(flat.shape[0], n_regions).index_add_(1, inverse, flat)
        counts = torch.bincount(inverse, minlength=n_regions).to(flat.dtype)
        pooled.append((sums / counts).index_select(1, inverse).view_as(features[sample]))
    return torch.stack(pooled)


def class_means(features: Tensor, label_ids: Tensor, label_nc: int) -> tuple[Tensor, Tensor]:
    """(1, C, H, W) features and (1, H, W) labelIds -> the mean feature of every class
    (label_nc, C) float32 and whether the class is present (label_nc,) bool."""
    flat = features[0].flatten(1).float()
    labels = label_ids[0].flatten().long()
    sums = flat.new_zeros(flat.shape[0], label_nc).index_add_(1, labels, flat)
    counts = torch.bincount(labels, minlength=label_nc).to(flat.dtype)
    present = counts > 0
    means = (sums / counts.clamp(min=1)).t().contiguous()
    return means, present


def features_from_vectors(vectors: Tensor, label_ids: Tensor) -> Tensor:
    """(label_nc, C) per-class style vectors and (B, H, W) labelIds -> (B, C, H, W) features:
    every instance of a class gets its class's vector (constant over the region, as the pooled
    training features are)."""
    return vectors[label_ids.long()].permute(0, 3, 1, 2).contiguous()
