"""The training configuration: one validated dataclass, saved as JSON beside every checkpoint."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from renderer.model.config import GENERATOR_KINDS, STYLE_INPUTS
from renderer.training.losses import GANLoss, LossWeights


class ConfigError(ValueError):
    """A configuration value that is out of range; the message names the field and what is allowed."""


T = TypeVar("T")


def need(config: Any, condition: bool, name: str, allowed: str) -> None:
    """ConfigError naming field `name` of `config`, its value and what it allows, unless `condition`."""
    if not condition:
        raise ConfigError(f"config field {name!r} = {getattr(config, name)!r}: must be {allowed}")


def check_weights(weights: Any) -> None:
    """Every field of a loss-weights dataclass is a number >= 0; ConfigError naming the first that is not."""
    for name, value in dataclasses.asdict(weights).items():
        if not value >= 0:
            raise ConfigError(f"config field 'weights.{name}' = {value}: must be >= 0")


class SavedConfig:
    """A config dataclass that is written as JSON beside the run it configures."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


def config_from_dict(cls: type[T], values: dict[str, Any], nested: dict[str, type]) -> T:
    """A config dataclass from a dict (not yet validated); `nested` names fields that are dataclasses
    themselves. Unknown keys, at either level, are a ConfigError naming the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown config field(s) {sorted(unknown)}; known: {sorted(known)}")
    values = dict(values)
    for name, field_cls in nested.items():
        if isinstance(values.get(name), dict):
            inner = {f.name for f in dataclasses.fields(field_cls)}
            bad = set(values[name]) - inner
            if bad:
                raise ConfigError(f"unknown {name} field(s) {sorted(bad)}; known: {sorted(inner)}")
            values[name] = field_cls(**values[name])
    return cls(**values)


@dataclass
class TrainConfig(SavedConfig):
    """Everything a training run needs; `validate()` checks every field."""

    # Data
    datasets: list[str] = field(default_factory=list)
    phase: str = "train"
    # Sequences kept out of training by name (held out for choosing settings and for figures).
    val_sequences: list[str] = field(default_factory=list)
    crop_width: int = 256
    crop_height: int = 128
    load_width: int | None = None
    flip: bool = True
    t_step: int = 1
    flow_cache_dir: str | None = None
    dis_preset: str = "medium"
    confidence_threshold: float = 0.05
    num_workers: int = 0

    # Generator
    model: str = "lite"  # a preset name of renderer.model, or a path to a config.json
    # "nvidia" or "spade": the generator design (None: the model's own); "spade" with the lite
    # preset is lite_spade (equal multiply-adds per frame), see renderer.model.config.preset.
    generator: str | None = None
    temporal: bool = True  # False: the frame-by-frame (pix2pixHD-style) baseline
    init_from: str | None = None  # our checkpoint folder or an NVIDIA checkpoint folder (fine-tuning)
    real_first_frames: int = 2
    # Styles (docs/styles.md): a feature encoder of this many channels trains with the generator
    # (0: none); at the end its per-class clusters (style_clusters per class) join the checkpoint.
    feature_channels: int = 0
    style_clusters: int = 8
    # Train only the feature encoder and the style convolutions; the rest of the generator keeps
    # `init_from`'s weights, so the model without a style renders exactly as that model did.
    styles_only: bool = False
    # Recolour each class per clip by up to this fraction (datasets.class_colour_jitter), so the
    # photo's colours reach the generator only through the style encoder. 0: off.
    colour_jitter: float = 0.0
    # Where the styles' features enter (GeneratorConfig.style_input): "stems", beside the labels;
    # "tone", a per-class colour change of the output only, added to a frozen model
    # (styles_only), trained on single frames (the history a renderer feeds back is untoned).
    style_input: str = "stems"

    # Curriculum
    # Temporal model only: for the first `frame_steps` clips its generator trains frame by frame
    # (temporal path off, the baseline's objective), then temporally. 0: temporal from the start.
    frame_steps: int = 0
    steps_per_scale: int = 0
    finest_alone_steps: int = 0
    clip_length: int = 4
    max_clip_length: int = 8
    clip_double_every: int = 0

    # Optimisation
    steps: int = 1000
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: int | None = None  # step at which the linear decay to 0 begins (default: half way)
    # Fine-tuning with a fresh discriminator: for the first `d_warmup_steps` clips the generator
    # does not move (its lr is 0) while the discriminators learn its output against the photos,
    # so that the generator's first updates follow a discriminator that already knows its flaws.
    d_warmup_steps: int = 0

    # Losses and discriminators
    gan_mode: str = "lsgan"
    weights: LossWeights = field(default_factory=LossWeights)
    vgg_weights: str | None = None
    use_vgg: bool = True
    d_channels: int = 64
    d_layers: int = 3
    d_scales: int = 2
    temporal_strides: int = 2
    temporal_frames: int = 3
    # Segmenter folder(s) (renderer.segmenter) for weights.segmentation: one, or a list whose losses
    # are averaged (an ensemble, so that the generator cannot paint for one network's quirks). Train
    # them apart from the one that scores segmentation consistency, or that figure stops being an
    # independent check.
    seg_teacher: str | list[str] | None = None

    # Engineering
    out_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision: CUDA (bf16 or fp16), CPUs with native bf16 (trainer.amp_settings)
    log_every: int = 10
    image_every: int = 200
    save_every: int = 500
    resume: bool = True

    def validate(self) -> "TrainConfig":
        """Raise ConfigError on the first bad field; return self."""
        need(self, bool(self.datasets), "datasets", "a non-empty list of dataset folders")
        need(self, isinstance(self.val_sequences, list) and all(isinstance(n, str) and n for n in self.val_sequences),
             "val_sequences", "a list of sequence names")
        need(self, self.crop_width >= 16 and self.crop_width % 8 == 0, "crop_width", "a multiple of 8, >= 16")
        need(self, self.crop_height >= 16 and self.crop_height % 8 == 0, "crop_height", "a multiple of 8, >= 16")
        need(self, self.load_width is None or self.load_width >= self.crop_width, "load_width", ">= crop_width or null")
        need(self, self.t_step >= 1, "t_step", ">= 1")
        need(self, self.generator is None or self.generator in GENERATOR_KINDS, "generator",
             f"one of {', '.join(GENERATOR_KINDS)} or null")
        need(self, self.dis_preset in ("ultrafast", "fast", "medium"), "dis_preset", "one of ultrafast, fast, medium")
        need(self, 0 < self.confidence_threshold <= 1, "confidence_threshold", "in (0, 1]")
        need(self, self.num_workers >= 0, "num_workers", ">= 0")
        need(self, self.real_first_frames in (1, 2), "real_first_frames", "1 or 2")
        need(self, isinstance(self.feature_channels, int) and 0 <= self.feature_channels <= 16, "feature_channels",
             "0 (no styles) .. 16")
        need(self, not self.styles_only or (self.feature_channels > 0 and self.init_from is not None),
             "styles_only", "false, or true with feature_channels > 0 and init_from (the model to add styles to)")
        need(self, self.style_input in STYLE_INPUTS, "style_input", f"one of {', '.join(STYLE_INPUTS)}")
        need(self, self.style_input == "stems" or (self.styles_only and self.temporal), "style_input",
             "'stems', or 'tone' with styles_only on a temporal model (a tone is added to a frozen model)")
        need(self, 0 <= self.colour_jitter < 1 and (self.colour_jitter == 0 or self.feature_channels > 0),
             "colour_jitter", "in [0, 1), and 0 unless feature_channels > 0 (it trains styles)")
        need(self, isinstance(self.style_clusters, int) and 1 <= self.style_clusters <= 64, "style_clusters", "1..64")
        need(self, self.clip_length >= self.real_first_frames + 1 or not self.temporal, "clip_length",
             f">= real_first_frames + 1 ({self.real_first_frames + 1}) for temporal training")
        need(self, self.clip_length >= 1, "clip_length", ">= 1")
        need(self, self.max_clip_length >= self.clip_length, "max_clip_length", ">= clip_length")
        need(self, self.clip_double_every >= 0, "clip_double_every", ">= 0")
        need(self, self.steps_per_scale >= 0, "steps_per_scale", ">= 0")
        need(self, self.frame_steps == 0 or (self.temporal and 0 < self.frame_steps < self.steps), "frame_steps",
             "0, or in (0, steps) on a temporal model (some clips must train the temporal path)")
        need(self, self.finest_alone_steps >= 0, "finest_alone_steps", ">= 0")
        need(self, self.steps >= 1, "steps", ">= 1")
        need(self, self.batch_size >= 1, "batch_size", ">= 1")
        need(self, 0 < self.lr < 1, "lr", "in (0, 1)")
        need(self, 0 <= self.beta1 < 1, "beta1", "in [0, 1)")
        need(self, 0 <= self.beta2 < 1, "beta2", "in [0, 1)")
        need(self, self.decay_start is None or 0 <= self.decay_start <= self.steps, "decay_start", "in [0, steps] or null")
        need(self, 0 <= self.d_warmup_steps < self.steps, "d_warmup_steps",
             "in [0, steps) (some clips must train the generator)")
        need(self, self.d_warmup_steps == 0 or self.uses_image_discriminator,
             "d_warmup_steps", "0 when no term reads the image discriminator (weights.gan and "
             "weights.feature_matching are 0)")
        need(self, self.gan_mode in GANLoss.MODES, "gan_mode", f"one of {', '.join(GANLoss.MODES)}")
        need(self, self.d_channels >= 4, "d_channels", ">= 4")
        need(self, 1 <= self.d_layers <= 5, "d_layers", "in 1..5")
        need(self, 1 <= self.d_scales <= 4, "d_scales", "in 1..4")
        need(self, 0 <= self.temporal_strides <= 3, "temporal_strides", "in 0..3")
        need(self, self.temporal_frames >= 2, "temporal_frames", ">= 2")
        need(self, self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device",
             "auto, cpu, cuda or cuda:N")
        need(self, self.log_every >= 1 and self.save_every >= 1 and self.image_every >= 1, "log_every",
             "log_every, image_every and save_every all >= 1")
        check_weights(self.weights)
        need(self, (self.weights.segmentation > 0) == (self.seg_teacher is not None), "seg_teacher",
             "a segmenter folder exactly when weights.segmentation > 0 (the teacher of that term)")
        need(self, self.seg_teacher is None or (len(self.seg_teachers) > 0 and all(
            isinstance(t, str) and t for t in self.seg_teachers)), "seg_teacher",
             "a segmenter folder or a non-empty list of them")
        w = self.weights
        if not w.gan + w.feature_matching + w.l1 + (w.vgg if self.use_vgg else 0.0) > 0:
            raise ConfigError("config fields 'weights.gan', 'weights.feature_matching', 'weights.l1' and "
                              "'weights.vgg' are all 0: give at least one image term a weight > 0")
        return self

    @property
    def seg_teachers(self) -> list[str]:
        """The teacher segmenter folders of weights.segmentation, as a list (empty without the term)."""
        if self.seg_teacher is None:
            return []
        return list(self.seg_teacher) if isinstance(self.seg_teacher, (list, tuple)) else [self.seg_teacher]

    @property
    def uses_image_discriminator(self) -> bool:
        """Whether any loss term reads the image discriminator (GAN or feature matching)."""
        return self.weights.gan > 0 or self.weights.feature_matching > 0

    @property
    def effective_decay_start(self) -> int:
        return self.steps // 2 if self.decay_start is None else self.decay_start

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build and validate from a dict; unknown keys are an error naming the known ones."""
        return config_from_dict(cls, values, {"weights": LossWeights}).validate()

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
