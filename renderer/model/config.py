"""Typed configuration of the vid2vid generator family, with named presets.

Field names follow NVIDIA's options where one exists (``ngf``, ``n_downsample_G`` →
``n_downsampling``, ``n_blocks``, ``n_blocks_local``, ``n_scales_spatial`` → ``n_scales``,
``fg``, ``fg_labels``, ``n_frames_G`` → ``n_frames``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

SingleKind = Literal["global", "local"]
LabelPyramid = Literal["avg", "nearest"]


@dataclass(frozen=True)
class SingleGConfig:
    """pix2pixHD single-image generator for the first frames (instance norm, labels only)."""

    kind: SingleKind = "global"
    ngf: int = 64  # for "local": the enhancer's ngf; its global part has ngf·2^n_local_enhancers
    n_downsampling: int = 4
    n_blocks: int = 9
    n_local_enhancers: int = 1  # "local" only
    n_blocks_local: int = 3  # "local" only
    label_nc: int = 35
    output_nc: int = 3

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this."""
        extra = self.n_local_enhancers if self.kind == "local" else 0
        return 2 ** (self.n_downsampling + extra)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        _check(self.kind in ("global", "local"), "single_g.kind", self.kind, "'global' or 'local'")
        for name in ("ngf", "label_nc", "output_nc"):
            _check(getattr(self, name) >= 1, f"single_g.{name}", getattr(self, name), ">= 1")
        for name in ("n_downsampling", "n_blocks", "n_local_enhancers", "n_blocks_local"):
            _check(getattr(self, name) >= 0, f"single_g.{name}", getattr(self, name), ">= 0")


@dataclass(frozen=True)
class GeneratorConfig:
    """The sequential generator: ``n_scales`` composite generators, coarsest first."""

    ngf: int = 128  # coarsest scale; scale s uses ngf // 2**s
    n_downsampling: int = 3  # coarsest scale's downsamplings (finer scales always have one)
    n_blocks: int = 9  # residual blocks of the coarsest scale (split between encoder and decoders)
    n_blocks_local: int = 3  # residual blocks of each finer scale's decoders
    n_scales: int = 3
    use_fg: bool = True  # foreground (car) branch composed in with the fg mask
    fg_labels: tuple[int, ...] = (26,)
    label_nc: int = 35
    use_instance: bool = True  # one instance-edge channel per frame
    n_frames: int = 3  # label frames in (t-2, t-1, t); n_frames - 1 previous outputs
    output_nc: int = 3
    single_g: SingleGConfig | None = field(default_factory=SingleGConfig)
    # Our own models only (NVIDIA: 7 and "avg"). ``full_res_kernel``: kernel of the
    # previous-image stems and of the output heads (image, flow, weight, fg), which run at each
    # scale's full resolution. ``label_pyramid``: how coarser scales get their label input;
    # "nearest" keeps it exactly one-hot, so every scale's label stem is an exact table lookup.
    full_res_kernel: int = 7
    label_pyramid: LabelPyramid = "avg"

    @property
    def label_channels(self) -> int:
        """Channels of one encoded label frame: one-hot classes plus the edge channel."""
        return self.label_nc + (1 if self.use_instance else 0)

    @property
    def input_nc(self) -> int:
        """Channels of the stacked label input of one scale (108 for NVIDIA's street models)."""
        return self.label_channels * self.n_frames

    @property
    def prev_output_nc(self) -> int:
        """Channels of the stacked previous outputs (6)."""
        return (self.n_frames - 1) * self.output_nc

    def scale_ngf(self, scale: int) -> int:
        """ngf of scale ``scale`` (0 = coarsest)."""
        return self.ngf // (2**scale)

    @property
    def size_multiple(self) -> int:
        """Working H and W must be multiples of this (pyramid levels times downsamplings)."""
        multiple = 2 ** (self.n_scales - 1 + self.n_downsampling)
        if self.single_g is not None:
            multiple = max(multiple, self.single_g.size_multiple)
        return multiple

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        _check(self.n_scales >= 1, "n_scales", self.n_scales, ">= 1")
        _check(self.n_frames >= 2, "n_frames", self.n_frames, ">= 2")
        _check(self.n_downsampling >= 1, "n_downsampling", self.n_downsampling, ">= 1")
        _check(self.n_blocks >= 0, "n_blocks", self.n_blocks, ">= 0")
        _check(self.n_blocks_local >= 0, "n_blocks_local", self.n_blocks_local, ">= 0")
        _check(
            self.full_res_kernel >= 1 and self.full_res_kernel % 2 == 1,
            "full_res_kernel",
            self.full_res_kernel,
            "an odd kernel size >= 1 (NVIDIA: 7)",
        )
        _check(
            self.label_pyramid in ("avg", "nearest"),
            "label_pyramid",
            self.label_pyramid,
            "'avg' (NVIDIA's 3x3 average pool) or 'nearest'",
        )
        smallest = self.scale_ngf(self.n_scales - 1)
        fg_ngf = smallest // 2 if self.n_downsampling > 2 else smallest
        _check(
            fg_ngf >= 1 and self.ngf % (2 ** (self.n_scales - 1)) == 0,
            "ngf",
            self.ngf,
            f"a multiple of 2**(n_scales-1) = {2 ** (self.n_scales - 1)} large enough for every scale",
        )
        _check(
            all(0 <= label < self.label_nc for label in self.fg_labels),
            "fg_labels",
            self.fg_labels,
            f"label ids in [0, {self.label_nc})",
        )
        if self.single_g is not None:
            self.single_g.validate()
            _check(
                self.single_g.label_nc == self.label_nc,
                "single_g.label_nc",
                self.single_g.label_nc,
                f"equal to label_nc ({self.label_nc})",
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GeneratorConfig:
        """Build and validate from a dict (e.g. config.json); unknown fields are an error."""
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown generator config fields {unknown}; allowed: {sorted(known)}")
        single = values.pop("single_g", dataclasses.MISSING)
        if "fg_labels" in values:
            values["fg_labels"] = tuple(values["fg_labels"])
        if single is dataclasses.MISSING:
            config = cls(**values)
        else:
            if single is not None:
                single_known = {f.name for f in dataclasses.fields(SingleGConfig)}
                bad = sorted(set(single) - single_known)
                if bad:
                    raise ValueError(
                        f"unknown single_g fields {bad}; allowed: {sorted(single_known)}"
                    )
                single = SingleGConfig(**single)
            config = cls(**values, single_g=single)
        config.validate()
        return config

    def replace(self, **changes: Any) -> GeneratorConfig:
        """A copy with some fields changed, validated."""
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"generator config field {name!r} = {value!r} is invalid; allowed: {allowed}")


SINGLE_512 = SingleGConfig(kind="global", ngf=64, n_downsampling=3)
SINGLE_1024 = SingleGConfig(kind="global", ngf=64, n_downsampling=4)
SINGLE_2048 = SingleGConfig(kind="local", ngf=32, n_downsampling=4)

PRESETS: dict[str, GeneratorConfig] = {
    # NVIDIA's released street models (scripts/street/test_*.sh), random weights for benchmarks.
    "nvidia_2048": GeneratorConfig(ngf=128, n_downsampling=3, n_scales=3, single_g=SINGLE_2048),
    "nvidia_1024_g1": GeneratorConfig(ngf=128, n_downsampling=2, n_scales=3, single_g=SINGLE_1024),
    # Our compact model for real time on a CPU (>= 15 fps at 512x256 on 2 cores): the same
    # sequential design (flow warping, occlusion weight, single-image first frames) with far
    # fewer channels. Two scales (coarse ngf 8 at half size with 4 residual blocks of 64 ch at
    # 1/16, fine ngf 4 at full size), no fg branch, 3x3 heads and previous-image stems, and a
    # nearest label pyramid so every label stem is an exact table lookup.
    # See docs/notes/lite-config.md for the measurements.
    "lite": GeneratorConfig(
        ngf=8,
        n_downsampling=3,
        n_blocks=4,
        n_blocks_local=1,
        n_scales=2,
        use_fg=False,
        full_res_kernel=3,
        label_pyramid="nearest",
        single_g=SingleGConfig(kind="global", ngf=16, n_downsampling=3, n_blocks=3),
    ),
}


def preset(name: str) -> GeneratorConfig:
    """The named preset config ('lite', 'nvidia_1024_g1', 'nvidia_2048')."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
