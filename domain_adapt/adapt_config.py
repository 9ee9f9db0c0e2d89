"""The configuration of `carla-neural adapt`: one validated dataclass, saved as train_config.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from renderer.training.config import SavedConfig, check_weights, config_from_dict, need
from renderer.training.losses import GANLoss

FLOW_MODES = ("auto", "require", "off")


@dataclass
class AdaptWeights:
    """Multipliers of each generator term of unpaired fine-tuning (see docs/domain_adapt.md)."""

    gan: float = 1.0  # image discriminator on generated simulator frames (final and raw image)
    temporal_gan: float = 1.0  # temporal discriminator on clips of generated simulator frames
    segmentation: float = 1.0  # the frozen segmenter recovers the input labels (cross-entropy)
    warp: float = 10.0  # output vs previous output warped by the simulator's flow (L1)
    anchor_l1: float = 10.0  # on real label maps: adapted output vs the source model's (L1)
    anchor_feature: float = 10.0  # ... and their image-discriminator features (L1)


@dataclass
class AdaptConfig(SavedConfig):
    """Everything an adaptation run needs; `validate()` checks every field."""

    checkpoint: str = "bundled"  # the source model: "bundled", our folder or an NVIDIA folder
    sim: list[str] = field(default_factory=list)  # run folders / NVIDIA-layout trees of simulator labels
    real: str = ""  # NVIDIA-layout tree with train_A (labels) and train_B (photos)
    real_hold_out: list[str] = field(default_factory=list)  # real sequences never used (e.g. seq0004)
    segmenter: str = "bundled"
    out_dir: str = "runs/adapt"

    crop_width: int = 256
    crop_height: int = 128
    load_width: int | None = None  # frames are resized to this width first (None: crop_width)
    flip: bool = True
    clip_length: int = 4
    # The run-time label transform (carla_neural.label_transform) applied to the simulator maps,
    # as `--adapt-labels` applies it before the renderer: the model learns the maps it will get.
    adapt_labels: bool = False
    transform_config: str | None = None  # its JSON (None: the calibrated one)
    flow: str = "auto"  # auto: warp loss where a run has flow PNGs; require: refuse runs without; off
    dis_preset: str = "medium"  # DIS flow of the real photos (the temporal discriminator's real clips)
    flow_cache_dir: str | None = None

    steps: int = 1000
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    gan_mode: str = "lsgan"
    weights: AdaptWeights = field(default_factory=AdaptWeights)
    d_channels: int = 32
    d_layers: int = 3
    d_scales: int = 2
    temporal_frames: int = 3
    temporal_strides: int = 1

    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    image_every: int = 100
    save_every: int = 100
    resume: bool = True

    @property
    def frame_width(self) -> int:
        """The width frames are loaded at (the generator's working width)."""
        return self.load_width or self.crop_width

    def validate(self) -> "AdaptConfig":
        """Raise ConfigError naming the first bad field and what it allows; return self."""
        need(self, bool(self.checkpoint), "checkpoint", "'bundled' or a checkpoint folder")
        need(self, bool(self.sim) and all(isinstance(p, str) and p for p in self.sim), "sim",
             "a non-empty list of simulator run folders or NVIDIA-layout label trees")
        need(self, bool(self.real), "real", "an NVIDIA-layout folder with train_A/ and train_B/")
        need(self, isinstance(self.real_hold_out, list) and all(isinstance(n, str) and n for n in self.real_hold_out),
             "real_hold_out", "a list of sequence names")
        need(self, self.crop_width >= 16 and self.crop_width % 8 == 0, "crop_width", "a multiple of 8, >= 16")
        need(self, self.crop_height >= 16 and self.crop_height % 8 == 0, "crop_height", "a multiple of 8, >= 16")
        need(self, self.load_width is None or self.load_width >= self.crop_width, "load_width", ">= crop_width or null")
        need(self, self.clip_length >= 2, "clip_length", ">= 2 (the first frame starts the sequence)")
        need(self, self.transform_config is None or (self.adapt_labels and bool(self.transform_config)),
             "transform_config", "a JSON file, given together with adapt_labels true")
        need(self, self.flow in FLOW_MODES, "flow", f"one of {', '.join(FLOW_MODES)}")
        need(self, self.dis_preset in ("ultrafast", "fast", "medium"), "dis_preset", "one of ultrafast, fast, medium")
        need(self, self.steps >= 1, "steps", ">= 1")
        need(self, 0 < self.lr < 1, "lr", "in (0, 1)")
        need(self, 0 <= self.beta1 < 1, "beta1", "in [0, 1)")
        need(self, 0 <= self.beta2 < 1, "beta2", "in [0, 1)")
        need(self, self.gan_mode in GANLoss.MODES, "gan_mode", f"one of {', '.join(GANLoss.MODES)}")
        need(self, self.d_channels >= 4, "d_channels", ">= 4")
        need(self, 1 <= self.d_layers <= 5, "d_layers", "in 1..5")
        need(self, 1 <= self.d_scales <= 4, "d_scales", "in 1..4")
        need(self, self.temporal_frames >= 2, "temporal_frames", ">= 2")
        need(self, 0 <= self.temporal_strides <= 3, "temporal_strides", "in 0..3")
        need(self, self.temporal_strides == 0 or self.weights.temporal_gan == 0
             or self.clip_length >= self.temporal_frames, "clip_length",
             f">= temporal_frames ({self.temporal_frames}) for the temporal discriminator")
        need(self, self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device",
             "auto, cpu, cuda or cuda:N")
        need(self, self.log_every >= 1 and self.save_every >= 1 and self.image_every >= 1, "log_every",
             "log_every, image_every and save_every all >= 1")
        check_weights(self.weights)
        return self

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "AdaptConfig":
        """Build and validate from a dict; unknown keys are an error naming the known ones."""
        return config_from_dict(cls, values, {"weights": AdaptWeights}).validate()
