"""Typed configuration of the vid2vid generator family, with named presets.

Field names follow NVIDIA's options where one exists (``ngf``, ``n_downsample_G`` →
``n_downsampling``, ``n_blocks``, ``n_blocks_local``, ``n_scales_spatial`` → ``n_scales``,
``fg``, ``fg_labels``, ``n_frames_G`` → ``n_frames``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError

SingleKind = Literal["global", "local"]
LabelPyramid = Literal["avg", "nearest"]
# "nvidia": NVIDIA's design (every norm has learnt affine parameters; NVIDIA's checkpoints).
# "spade": the image decoders are SPADE residual blocks (Park et al. 2019), whose parameter-free
# norms are modulated per pixel by the labels (renderer.model.spade; our own models only).
GeneratorKind = Literal["nvidia", "spade"]
StyleInput = Literal["stems", "tone"]
GENERATOR_KINDS: tuple[str, ...] = get_args(GeneratorKind)
STYLE_INPUTS: tuple[str, ...] = get_args(StyleInput)

# Bounds are generous (NVIDIA's largest street model: ngf 128, 3 downsamplings, 9 blocks, 3
# scales) but keep a hostile or mistyped config.json from building a model that cannot fit in
# memory: every field is checked, with these bounds and exact types, before any tensor exists.
# Strict(): 8.0 is not an int and "no" is not a bool.
Count = Annotated[int, Strict(), Field(ge=0, le=32)]
Channels = Annotated[int, Strict(), Field(ge=1, le=512)]
Downsamplings = Annotated[int, Strict(), Field(ge=0, le=6)]
LabelId = Annotated[int, Strict(), Field(ge=0, le=255)]
Flag = Annotated[bool, Strict()]
# The widest layer (ngf · 2^downsamplings) of any generator: NVIDIA's models use 1024.
MAX_WIDTH = 2048


class ConfigError(ValueError):
    """A generator config with a wrong type, a value out of bounds or inconsistent fields; one line
    per problem, each naming the field and what is allowed."""


@dataclass(frozen=True)
class SingleGConfig:
    """pix2pixHD single-image generator for the first frames (instance norm, labels only)."""

    kind: SingleKind = "global"
    ngf: Channels = 64  # for "local": the enhancer's ngf; its global part has ngf·2^n_local_enhancers
    n_downsampling: Downsamplings = 4
    n_blocks: Count = 9
    n_local_enhancers: Annotated[int, Strict(), Field(ge=0, le=3)] = 1  # "local" only
    n_blocks_local: Count = 3  # "local" only
    label_nc: Annotated[int, Strict(), Field(ge=1, le=256)] = 35
    output_nc: Annotated[int, Strict(), Field(ge=1, le=4)] = 3
    generator: GeneratorKind = "nvidia"  # "spade": SPADE residual blocks decode ("global" only)
    spade_hidden: Channels = 32  # "spade" only: channels of each SPADE layer's shared label conv

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this."""
        extra = self.n_local_enhancers if self.kind == "local" else 0
        return 2 ** (self.n_downsampling + extra)

    def validate(self) -> None:
        """Raise ConfigError naming each bad field (types, bounds, widest layer)."""
        _validate_fields(_SINGLE_ADAPTER, self, "single_g.")
        extra = self.n_local_enhancers if self.kind == "local" else 0
        width = self.ngf * 2 ** (self.n_downsampling + extra)
        _check(width <= MAX_WIDTH, "single_g.ngf", self.ngf,
               f"ngf·2^(n_downsampling{' + n_local_enhancers' if extra else ''}) <= {MAX_WIDTH} (got {width})")
        _check(self.generator == "nvidia" or self.kind == "global", "single_g.generator", self.generator,
               "'spade' only with single_g.kind 'global'")


@dataclass(frozen=True)
class GeneratorConfig:
    """The sequential generator: ``n_scales`` composite generators, coarsest first."""

    ngf: Channels = 128  # coarsest scale; scale s uses ngf // 2**s
    # coarsest scale's downsamplings (finer scales always have one)
    n_downsampling: Annotated[int, Strict(), Field(ge=1, le=6)] = 3
    n_blocks: Count = 9  # residual blocks of the coarsest scale (split between encoder and decoders)
    n_blocks_local: Count = 3  # residual blocks of each finer scale's decoders
    n_scales: Annotated[int, Strict(), Field(ge=1, le=4)] = 3
    use_fg: Flag = True  # foreground (car) branch composed in with the fg mask
    fg_labels: Annotated[tuple[LabelId, ...], Field(max_length=256)] = (26,)
    label_nc: Annotated[int, Strict(), Field(ge=1, le=256)] = 35
    use_instance: Flag = True  # one instance-edge channel per frame
    n_frames: Annotated[int, Strict(), Field(ge=2, le=8)] = 3  # label frames (t-2, t-1, t)
    output_nc: Annotated[int, Strict(), Field(ge=1, le=4)] = 3
    single_g: SingleGConfig | None = field(default_factory=SingleGConfig)
    # Our own models only (NVIDIA: 7 and "avg"). ``full_res_kernel``: kernel of the
    # previous-image stems and of the output heads (image, flow, weight, fg), which run at each
    # scale's full resolution. ``label_pyramid``: how coarser scales get their label input;
    # "nearest" keeps it exactly one-hot, so every scale's label stem is an exact table lookup.
    full_res_kernel: Annotated[int, Strict(), Field(ge=1, le=15)] = 7
    label_pyramid: LabelPyramid = "avg"
    # Multimodal styles (pix2pixHD §3.4, vid2vid §3): ``feat_nc`` instance-pooled feature channels
    # from a feature encoder trained with the generator, fed to every scale (and the single-image
    # generator) beside the labels; ``feat_ngf`` the encoder's width. 0 (the default, and every
    # NVIDIA model): no encoder and no feature input, the state dict exactly as before.
    feat_nc: Annotated[int, Strict(), Field(ge=0, le=16)] = 0
    feat_ngf: Annotated[int, Strict(), Field(ge=1, le=64)] = 16
    # Where the features enter: "stems", beside the labels (the above); "tone", only a per-class
    # gain and offset of the output colour (``renderer.model.style.StyleTone``), so that the
    # frames the generator feeds back, and so its motion, stay exactly its own.
    style_input: StyleInput = "stems"
    # Our own models only. "spade": each scale's image decoder is made of SPADE residual blocks
    # modulated by the current label frame (needs label_pyramid "nearest": the labels a scale
    # sees stay one-hot, so the SPADE label convs are exact table lookups at inference).
    # ``spade_hidden``: channels of each SPADE layer's shared conv on the labels.
    generator: GeneratorKind = "nvidia"
    spade_hidden: Channels = 32

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
        """Raise ConfigError naming each bad field: types and bounds, then how fields fit together."""
        _validate_fields(_GENERATOR_ADAPTER, self, "")
        _check(
            self.full_res_kernel % 2 == 1,
            "full_res_kernel",
            self.full_res_kernel,
            "an odd kernel size 1..15 (NVIDIA: 7)",
        )
        width = self.ngf * 2**self.n_downsampling
        _check(width <= MAX_WIDTH, "ngf", self.ngf, f"ngf·2^n_downsampling <= {MAX_WIDTH} (got {width})")
        _check(
            self.generator == "nvidia" or self.label_pyramid == "nearest",
            "label_pyramid",
            self.label_pyramid,
            "'nearest' with generator 'spade' (its label maps must stay one-hot at every scale)",
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
        _check(
            self.style_input == "stems" or self.feat_nc > 0,
            "style_input",
            self.style_input,
            "'stems' unless feat_nc > 0 (a tone needs style features)",
        )
        if self.feat_nc and self.single_g is not None:
            _check(
                self.single_g.kind == "global",
                "feat_nc",
                self.feat_nc,
                "0 with a 'local' single-image generator (styles need single_g.kind 'global' or none)",
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
        """Plain JSON-ready dict; without styles the style fields are left out, so that a
        checkpoint without styles writes the config.json it wrote before they existed."""
        values = dataclasses.asdict(self)
        if not self.feat_nc:
            del values["feat_nc"], values["feat_ngf"]
        if self.style_input == "stems":
            del values["style_input"]  # the config.json of every checkpoint before tones
        return values

    @classmethod
    def from_dict(cls, values: Any) -> GeneratorConfig:
        """Build and validate from a dict (e.g. config.json's ``generator``): exact types, bounds,
        no unknown fields; ConfigError names each bad field."""
        try:
            config = _GENERATOR_ADAPTER.validate_python(values)
        except ValidationError as error:
            raise ConfigError(describe_validation_error(error, root=cls)) from None
        config.validate()
        return config

    def replace(self, **changes: Any) -> GeneratorConfig:
        """A copy with some fields changed, validated."""
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config


# Stdlib dataclasses take pydantic's config from this attribute; unknown keys are an error.
for _cls in (SingleGConfig, GeneratorConfig):
    _cls.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
_SINGLE_ADAPTER = TypeAdapter(SingleGConfig)
_GENERATOR_ADAPTER = TypeAdapter(GeneratorConfig)


def describe_validation_error(error: ValidationError, prefix: str = "", root: type | None = None) -> str:
    """One '; '-joined clause per problem: the dotted field, the value given and what is allowed.

    ``root``: the dataclass validated, to list the allowed names when a field is unknown.
    """
    problems = []
    for item in error.errors(include_url=False):
        parts = [str(part) for part in item["loc"] if not str(part).startswith("function-")]
        where = prefix + ".".join(parts) if parts else prefix.rstrip(".") or "the whole object"
        given = item.get("input")
        shown = repr(given) if not isinstance(given, (dict, list)) else f"a {type(given).__name__}"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        if item["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            known = _field_names(root, parts[:-1])
            allowed = f"; allowed: {', '.join(known)}" if known else ""
            problems.append(f"field {where!r} is unknown{allowed}")
        elif item["type"] == "missing":
            problems.append(f"field {where!r} is missing")
        else:
            problems.append(f"field {where!r} = {shown}: {item['msg']}")
    return "; ".join(problems) or str(error)


def _field_names(root: type | None, path: list[str]) -> list[str]:
    cls = root
    for name in path:
        if cls is None or not dataclasses.is_dataclass(cls):
            return []
        cls = {"single_g": SingleGConfig}.get(name) if cls is GeneratorConfig else None
    return [f.name for f in dataclasses.fields(cls)] if cls is not None and dataclasses.is_dataclass(cls) else []


def _validate_fields(adapter: TypeAdapter, config: Any, prefix: str) -> None:
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    if isinstance(values.get("single_g"), SingleGConfig):
        values["single_g"] = dataclasses.asdict(values["single_g"])
    try:
        adapter.validate_python(values)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, prefix, type(config))) from None


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"generator config field {name!r} = {value!r} is invalid; allowed: {allowed}")


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
# ``lite`` with SPADE image decoders, its widths chosen so that one frame at 512x256 costs the
# same multiply-adds as ``lite``'s (within 5 %, tests/unit/test_model_spade.py; docs/spade.md).
# The SPADE decoders cost more per channel (two convs per block and a gamma/beta conv per norm),
# so ngf drops from 8 to 6 and each SPADE layer's shared conv has 2 channels: 0.627 GMAC per frame
# against lite's 0.613 (+2.2 %). (ngf 4 with spade_hidden 8 is the other +2.2 % choice.)
PRESETS["lite_spade"] = PRESETS["lite"].replace(
    generator="spade",
    ngf=6,
    spade_hidden=2,
    single_g=dataclasses.replace(PRESETS["lite"].single_g, generator="spade", spade_hidden=8),  # type: ignore[arg-type]
)
# (preset, generator) -> the preset of the same model in that design, for ``preset(name, generator)``.
PRESET_TWINS: dict[tuple[str, str], str] = {("lite", "spade"): "lite_spade", ("lite_spade", "nvidia"): "lite"}


def preset(name: str, generator: str | None = None) -> GeneratorConfig:
    """The named preset config ('lite', 'lite_spade', 'nvidia_1024_g1', 'nvidia_2048').

    ``generator`` ("nvidia" or "spade", None: the preset's own) picks that design: the preset's
    own twin where one exists (``lite`` + "spade" is ``lite_spade``, widths chosen for equal
    multiply-adds; ``lite_spade`` + "nvidia" is ``lite``), else the same widths with
    ``with_generator``.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[name]
    if generator is None or generator == config.generator:
        return config
    twin = PRESET_TWINS.get((name, generator))
    return PRESETS[twin] if twin is not None else with_generator(config, generator)


def with_generator(config: GeneratorConfig, generator: str) -> GeneratorConfig:
    """``config`` with the sequential and single-image generators of design ``generator``, same
    widths ("spade" also switches the label pyramid to "nearest", which it needs)."""
    if generator not in GENERATOR_KINDS:
        raise ValueError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATOR_KINDS)}")
    changes: dict[str, Any] = {"generator": generator}
    if generator == "spade":
        changes["label_pyramid"] = "nearest"
    # A local-enhancer single-image generator keeps NVIDIA's design (SPADE's is "global" only).
    if config.single_g is not None and config.single_g.kind == "global":
        changes["single_g"] = dataclasses.replace(config.single_g, generator=generator)
    return config.replace(**changes)
