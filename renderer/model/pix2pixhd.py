"""pix2pixHD's single-image generators (``GlobalGenerator``, ``LocalEnhancer``) as vid2vid uses
them for the first frames: instance norm without affine, NVIDIA's parameter names and shapes."""

from __future__ import annotations

from torch import Tensor, nn

from renderer.model.blocks import ResnetBlock, downsample, head, stem, upsample
from renderer.model.config import SingleGConfig
from renderer.model.norm import InstanceNormNoAffine
from renderer.model.spade import SPADEDecoder

MAX_CHANNELS = 1024  # vid2vid's GlobalGenerator caps widths at 1024


def _global_layers(
    input_nc: int, output_nc: int, ngf: int, n_down: int, n_blocks: int
) -> list[nn.Module]:
    layers = stem(input_nc, ngf, InstanceNormNoAffine)
    for i in range(n_down):
        layers += downsample(
            min(MAX_CHANNELS, ngf * 2**i), min(MAX_CHANNELS, ngf * 2 ** (i + 1)), InstanceNormNoAffine
        )
    width = min(MAX_CHANNELS, ngf * 2**n_down)
    layers += [ResnetBlock(width, InstanceNormNoAffine) for _ in range(n_blocks)]
    for i in range(n_down):
        layers += upsample(
            min(MAX_CHANNELS, ngf * 2 ** (n_down - i)),
            min(MAX_CHANNELS, ngf * 2 ** (n_down - i - 1)),
            InstanceNormNoAffine,
        )
    layers += head(ngf, output_nc, nn.Tanh())
    return layers


def _through_stem(layers: nn.Sequential, one_hot: Tensor, stem_extra: Tensor | None) -> Tensor:
    """Run ``layers`` (pad, stem conv, ...) on (B, label_nc, H, W) one-hot labels, adding
    ``stem_extra`` (B, C, H, W) to the stem conv's output where given (the style input)."""
    if stem_extra is None:
        return layers(one_hot)
    return layers[2:](layers[1](layers[0](one_hot)) + stem_extra)


class GlobalGenerator(nn.Module):
    """Encoder, residual blocks, decoder, 7×7 Tanh head; parameters ``model.{i}.*``."""

    def __init__(self, config: SingleGConfig) -> None:
        super().__init__()
        self.model = nn.Sequential(
            *_global_layers(
                config.label_nc, config.output_nc, config.ngf, config.n_downsampling, config.n_blocks
            )
        )

    @property
    def stem_conv(self) -> nn.Conv2d:
        """The first convolution (on the one-hot labels), where style features join."""
        return self.model[1]

    def forward(self, one_hot: Tensor, stem_extra: Tensor | None = None) -> Tensor:
        """(B, label_nc, H, W) one-hot labels [+ (B, ngf, H, W) added to the stem conv's output]
        -> (B, 3, H, W) image in [-1, 1]."""
        return _through_stem(self.model, one_hot, stem_extra)


class LocalEnhancer(nn.Module):
    """A global generator (without its head) at 1/2^n resolution, refined by ``n_local_enhancers``
    local enhancers; parameters ``model.*``, ``model{n}_1.*``, ``model{n}_2.*``."""

    def __init__(self, config: SingleGConfig) -> None:
        super().__init__()
        n_local = config.n_local_enhancers
        self.n_local_enhancers = n_local
        global_layers = _global_layers(
            config.label_nc,
            config.output_nc,
            config.ngf * 2**n_local,
            config.n_downsampling,
            config.n_blocks,
        )
        self.model = nn.Sequential(*global_layers[:-3])  # drop pad, conv, tanh of the head
        for n in range(1, n_local + 1):
            width = config.ngf * 2 ** (n_local - n)
            encoder = stem(config.label_nc, width, InstanceNormNoAffine) + downsample(
                width, width * 2, InstanceNormNoAffine
            )
            decoder: list[nn.Module] = [
                ResnetBlock(width * 2, InstanceNormNoAffine) for _ in range(config.n_blocks_local)
            ]
            decoder += upsample(width * 2, width, InstanceNormNoAffine)
            if n == n_local:
                decoder += head(config.ngf, config.output_nc, nn.Tanh())
            setattr(self, f"model{n}_1", nn.Sequential(*encoder))
            setattr(self, f"model{n}_2", nn.Sequential(*decoder))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, one_hot: Tensor) -> Tensor:
        """(B, label_nc, H, W) one-hot labels -> (B, 3, H, W) image in [-1, 1]."""
        pyramid = [one_hot]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        features = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            encoder = getattr(self, f"model{n}_1")
            decoder = getattr(self, f"model{n}_2")
            features = decoder(encoder(pyramid[self.n_local_enhancers - n]) + features)
        return features


class SpadeGlobalGenerator(nn.Module):
    """``generator: spade`` for first frames: the global generator's encoder (stem and
    downsamplings), then a ``SPADEDecoder`` modulated by the one-hot labels (its residual blocks
    and upsamplings), then the 7×7 Tanh head."""

    def __init__(self, config: SingleGConfig) -> None:
        super().__init__()
        n_down = config.n_downsampling
        # The global generator's stem (4 modules) and downsamplings (3 each), without its blocks.
        layers = _global_layers(config.label_nc, config.output_nc, config.ngf, n_down, n_blocks=0)
        self.encoder = nn.Sequential(*layers[: 4 + 3 * n_down])
        self.decoder = SPADEDecoder(
            config.ngf * 2**n_down, config.n_blocks, n_down, config.label_nc, config.spade_hidden,
            max_channels=MAX_CHANNELS,
        )
        self.head = nn.Sequential(*head(self.decoder.out_channels, config.output_nc, nn.Tanh()))

    @property
    def stem_conv(self) -> nn.Conv2d:
        """The first convolution (on the one-hot labels), where style features join."""
        return self.encoder[1]

    def forward(self, one_hot: Tensor, stem_extra: Tensor | None = None) -> Tensor:
        """(B, label_nc, H, W) one-hot labels [+ (B, ngf, H, W) added to the stem conv's output]
        -> (B, 3, H, W) image in [-1, 1]."""
        encoded = _through_stem(self.encoder, one_hot, stem_extra)
        return self.head(self.decoder(encoded, self.decoder.embed(one_hot)))


def build_single_generator(config: SingleGConfig) -> nn.Module:
    """The single-image generator described by ``config``."""
    if config.generator == "spade":
        if config.kind != "global":
            raise ValueError(f"single_g.generator 'spade' needs kind 'global', got {config.kind!r}")
        return SpadeGlobalGenerator(config)
    if config.kind == "global":
        return GlobalGenerator(config)
    if config.kind == "local":
        return LocalEnhancer(config)
    raise ValueError(f"single_g.kind must be 'global' or 'local', got {config.kind!r}")
