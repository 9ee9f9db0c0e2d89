"""Unpaired fine-tuning of a vid2vid generator on simulator label sequences (`carla-neural adapt`).

A CARLA user has label maps, instance maps and flow from the simulator, but no photo of the same
frames. Per step the generator renders one simulator clip frame by frame from its own outputs (the
first frame by the single-image generator, as at inference), with one optimisation step per frame:
  - G_GAN: an image discriminator that learns real photos (unpaired: `--real`'s train_B) from the
    generated frames (final and raw image). It sees the image alone: simulator and real label maps
    differ, so a discriminator shown the labels could tell the domains apart by the labels;
  - G_T_GAN<k>: temporal discriminators on clips of real video vs clips of generated frames. They
    get zero flow for both: the simulator's exact flow and the real photos' estimated flow differ
    in character and would give the domain away;
  - G_Seg: the frozen bundled segmenter must recover the input labels (trainIds) from the frame;
  - G_Warp: the frame matches the previous one warped along the simulator's ground-truth flow,
    where the flow lands inside the frame and on the same class (`adapt_losses.flow_trust_mask`);
  - A_L1, A_FM: on real label maps the adapted generator stays with the frozen source model: the
    same frame of a real clip, from the same labels and the source's own history, through both.
The discriminators step after each frame. Checkpoints (`checkpoints/latest`), the exported
generator (`generator/`), `train_config.json`, `adapt_log.jsonl`, tensorboard and sample strips go
to the run folder, which a second run resumes.
"""

from __future__ import annotations

import copy
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from carla_neural.label_transform import LabelTransform, TransformConfigError, load_transform_config
from domain_adapt.adapt_config import AdaptConfig
from domain_adapt.adapt_losses import anchor_terms, flow_trust_mask
from domain_adapt.sequences import GapInputError, find_sequences
from renderer.checkpoint import CheckpointError, is_our_checkpoint, read_config
from renderer.checkpoint_ref import resolve_checkpoint
from renderer.segmenter import load_segmenter
from renderer.segmenter.loss import segmentation_loss
from renderer.segmenter.model import Segmenter
from renderer.styles import STYLES_FILE, styles_on_frozen_base
from renderer.training.datasets import (
    ClipDataset,
    DatasetError,
    Sequence,
    hold_out,
    load_frame,
    read_recorded_flow,
    scan_nvidia_layout,
)
from renderer.training.discriminators import MultiScaleDiscriminator, TemporalDiscriminators
from renderer.training.flow import FlowCache
from renderer.training.generator import GeneratorOutput, TrainableGenerator
from renderer.training.losses import GANLoss, output_warp_loss
from renderer.training.run_logs import append_log_line, log_scalars
from renderer.training.state_io import publish_checkpoint, read_training_state, write_training_state
from renderer.training.trainer import (
    CHECKPOINT_DIR,
    GENERATOR_DIR,
    no_param_grads,
    resolve_device,
    seed_everything,
)

log = logging.getLogger(__name__)

CITYSCAPES_LABEL_NC = 35  # labelIds 0..33 and NVIDIA's extra channel
LOG_FILE = "adapt_log.jsonl"
CONFIG_FILE = "train_config.json"


class AdaptInputError(ValueError):
    """An input `adapt` cannot use; the one-line message names the file or field and what to do."""


@dataclass
class AdaptInputs:
    """Everything `check_inputs` loaded and checked, before any file is written."""

    source_folder: Path
    source_metadata: dict[str, Any]
    generator: TrainableGenerator
    segmenter: Segmenter
    sim_sequences: list[Sequence]
    real_sequences: list[Sequence]
    working_size: tuple[int, int]  # (W, H) of the simulator frames as the generator sees them
    sim_without_flow: list[str] = field(default_factory=list)
    label_transform: LabelTransform | None = None  # applied to the simulator maps (config.adapt_labels)


def _load_source(config: AdaptConfig) -> tuple[Path, dict[str, Any], TrainableGenerator]:
    try:
        folder = resolve_checkpoint(config.checkpoint)
        metadata = read_config(folder)[1] if is_our_checkpoint(folder) else {}
        generator = TrainableGenerator.build(init_from=str(folder))
    except (CheckpointError, ValueError, OSError, RuntimeError) as error:
        raise AdaptInputError(f"--checkpoint {config.checkpoint}: {error}") from None
    where = folder / "config.json" if is_our_checkpoint(folder) else folder
    if generator.config.label_nc != CITYSCAPES_LABEL_NC:
        raise AdaptInputError(
            f"{where}: generator.label_nc is {generator.config.label_nc}, not {CITYSCAPES_LABEL_NC}: adapt "
            "needs a generator on Cityscapes labelIds (the segmenter and the simulator maps speak them)")
    if metadata.get("temporal") is False:
        raise AdaptInputError(f"{where}: metadata.temporal is false (a frame-by-frame baseline); adapt a "
                              "temporal vid2vid checkpoint")
    if generator.net.single_g is None:
        raise AdaptInputError(f"{where}: the checkpoint has no single-image generator to start sequences; "
                              "give one trained with it (or an NVIDIA folder with label2city_single/)")
    if generator.net.has_styles and not styles_on_frozen_base(metadata):
        # The simulator maps come without photos to encode, so adapt trains without a style input:
        # right only for a model that renders without one (styles added by `train --styles-only`).
        raise AdaptInputError(f"{where}: the model's styles trained with its generator (no metadata."
                              "styles_added_to), and adapt has no photos to take a style from; adapt the "
                              "model without styles, or one whose styles `train --styles-only` added")
    return folder, metadata, generator


def _check_frames(seq: Sequence, config: AdaptConfig, label_nc: int, option: str) -> tuple[int, int]:
    """The first frame of `seq` reads (labels, photo, instances and flow of one size), holds labelIds
    the generator knows and is large enough for the crop; returns its (W, H) at the working width.
    AdaptInputError starting with `option` (the command-line option that named it) otherwise."""
    try:
        labels = load_frame(seq, 0)[0]
        height, width = labels.shape
        loaded_height = round(height * config.frame_width / width)
        if seq.flow_paths is not None and len(seq) > 1:
            read_recorded_flow(seq.flow_paths[1], (height, width), config.frame_width, loaded_height)
    except (DatasetError, ValueError, FileNotFoundError) as error:  # ValueError: a flow PNG that is not KITTI
        raise AdaptInputError(f"{option}: {error}") from None
    if int(labels.max()) >= label_nc:
        raise AdaptInputError(f"{option}: {seq.label_paths[0]}: label id {int(labels.max())} >= {label_nc}; label "
                              "maps must hold Cityscapes labelIds (0..33), e.g. `record`'s frames/label_ids")
    if loaded_height < config.crop_height:
        raise AdaptInputError(
            f"{option}: {seq.label_paths[0]} is {width}x{height}: at width {config.frame_width} it is "
            f"{loaded_height} rows, fewer than the crop height {config.crop_height}; give a smaller --size or "
            "a larger --load-width")
    if len(seq) < config.clip_length:
        raise AdaptInputError(f"{option}: sequence {seq.name} has {len(seq)} frames, fewer than --clip-length "
                              f"{config.clip_length}")
    return config.frame_width, loaded_height


def _sim_sequences(config: AdaptConfig, label_nc: int) -> tuple[list[Sequence], list[str]]:
    sequences, without_flow = [], []
    for path in config.sim:
        try:
            found = find_sequences(path)
        except GapInputError as error:
            raise AdaptInputError(f"--maps: {error}") from None
        for label_seq in found:
            name = f"{Path(path).name}/{label_seq.name}"
            flows = None if config.flow == "off" else label_seq.flow_paths
            if flows is None and config.flow != "off":
                without_flow.append(name)
            seq = Sequence(name, label_seq.label_paths, None, label_seq.instance_paths, flows)
            _check_frames(seq, config, label_nc, "--maps")
            sequences.append(seq)
    if without_flow and config.flow == "require":
        raise AdaptInputError(
            f"--maps: {', '.join(without_flow)} hold(s) no flow PNGs (frames/flow/ of a run, <phase>_flow/ of "
            "an NVIDIA tree) and --flow require was given: record with the flow sensor on (the scenario's "
            "cameras.sensors lists flow, as by default) or pass --flow auto to skip the warp loss there")
    return sequences, without_flow


def _real_sequences(config: AdaptConfig, label_nc: int) -> list[Sequence]:
    try:
        sequences = scan_nvidia_layout(config.real, "train")
        sequences = hold_out(sequences, config.real_hold_out) if config.real_hold_out else sequences
    except DatasetError as error:
        raise AdaptInputError(f"--real: {error}") from None
    for seq in sequences:
        if not seq.rgb_paths:
            raise AdaptInputError(f"--real: {Path(config.real) / 'train_B' / seq.name} holds no photos; give "
                                  "real photos in train_B/<seq>/ beside the labels in train_A/<seq>/")
        _check_frames(seq, config, label_nc, "--real")
    return sequences


def check_inputs(config: AdaptConfig) -> AdaptInputs:
    """Load and check the source model, the simulator maps, the real video and the segmenter;
    AdaptInputError (one line naming the file or field) on the first problem."""
    config.validate()
    folder, metadata, generator = _load_source(config)
    multiple = generator.size_multiple
    if config.crop_width % multiple or config.crop_height % multiple:
        raise AdaptInputError(f"--size {config.crop_width}x{config.crop_height}: must be a multiple of "
                              f"{multiple} for the generator of {folder}")
    label_nc = generator.config.label_nc
    sim, without_flow = _sim_sequences(config, label_nc)
    real = _real_sequences(config, label_nc)
    try:
        segmenter = load_segmenter(config.segmenter)
    except CheckpointError as error:
        raise AdaptInputError(f"--segmenter: {error}") from None
    working_size = _check_frames(sim[0], config, label_nc, "--maps")
    transform = None
    if config.adapt_labels:
        try:
            transform = LabelTransform(load_transform_config(config.transform_config))
        except TransformConfigError as error:
            raise AdaptInputError(f"--transform-config: {error}") from None
    return AdaptInputs(folder, metadata, generator, segmenter, sim, real, working_size, without_flow, transform)


def _clip(dataset: ClipDataset, index: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Item `index` of `dataset` as a batch of one on `device`."""
    return {key: value.unsqueeze(0).to(device) for key, value in dataset[index].items()}


class Adapter:
    """Fine-tunes a generator on simulator label clips against unpaired real video (module docstring)."""

    def __init__(self, config: AdaptConfig, inputs: AdaptInputs | None = None) -> None:
        self.config = config.validate()
        self.inputs = inputs or check_inputs(config)
        if self.inputs.sim_without_flow:
            log.warning("no flow PNGs in %s: the temporal warp loss (G_Warp) is skipped for those sequences",
                        ", ".join(self.inputs.sim_without_flow))
        self.device = resolve_device(config.device)
        seed_everything(config.seed)
        self.out_dir = Path(config.out_dir)

        self.generator = self.inputs.generator.to(self.device).train()
        # The source model, frozen: what the adapted one must still produce on real maps.
        self.source = copy.deepcopy(self.generator).requires_grad_(False)
        self.segmenter = self.inputs.segmenter.to(self.device).eval().requires_grad_(False)
        self.image_d = MultiScaleDiscriminator(3, config.d_channels, config.d_layers, config.d_scales).to(self.device)
        use_temporal = config.temporal_strides > 0 and config.weights.temporal_gan > 0
        self.temporal_d = TemporalDiscriminators(config.temporal_frames, config.temporal_strides, config.d_channels,
                                                 config.d_layers, config.d_scales).to(self.device) if use_temporal else None
        self.gan = GANLoss(config.gan_mode)
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.image_d.parameters(), lr=config.lr, betas=betas)
        self.opt_dt = torch.optim.Adam(self.temporal_d.parameters(), lr=config.lr, betas=betas) \
            if self.temporal_d is not None else None

        crop = (config.crop_width, config.crop_height)
        self.sim_data = ClipDataset(self.inputs.sim_sequences, config.clip_length, crop, load_width=config.frame_width,
                                    flip=config.flip, seed=config.seed, label_transform=self.inputs.label_transform)
        self.real_data = ClipDataset(self.inputs.real_sequences, config.clip_length, crop,
                                     load_width=config.frame_width, flip=config.flip,
                                     flow_cache=FlowCache(config.flow_cache_dir, config.dis_preset), seed=config.seed + 1)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.writer = None
        self._last_sample: dict[str, torch.Tensor] | None = None
        latest = self.out_dir / CHECKPOINT_DIR / "latest"
        if config.resume and latest.is_dir():
            self.load_checkpoint(latest)

    # ------------------------------------------------------------------ one frame, one clip
    def _frame(self, model: TrainableGenerator, labels: torch.Tensor, t: int,
               history: list[list[torch.Tensor]]) -> GeneratorOutput:
        """Frame t of a clip of encoded labels (B, T, C, H, W): the single-image generator at t = 0,
        else the sequential generator on labels t-2..t and the per-scale images of `history`."""
        if t == 0:
            return model(labels[:, 0], None)
        n_prev = model.n_frames - 1
        window = torch.cat([labels[:, max(0, t - k)] for k in range(n_prev, -1, -1)], 1)
        prev = [torch.cat([history[max(0, t - k)][s] for k in range(n_prev, 0, -1)], 1)
                for s in range(model.num_scales)]
        return model(window, prev)

    def _encode(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        label_ids, edges = clip["label_ids"], clip["edges"]
        batch, length = label_ids.shape[:2]
        labels = self.generator.encode_labels(label_ids.flatten(0, 1), edges.flatten(0, 1))
        return labels.view(batch, length, *labels.shape[1:])

    def _weighted_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = self.config.weights
        factor = {"G_GAN": weights.gan, "G_Seg": weights.segmentation, "G_Warp": weights.warp,
                  "A_L1": weights.anchor_l1, "A_FM": weights.anchor_feature}
        total = torch.zeros((), device=self.device)
        for name, value in terms.items():
            scale = weights.temporal_gan if name.startswith("G_T_GAN") else factor[name]
            if scale > 0:
                total = total + scale * value.float()
        return total

    def train_clip(self, sim: dict[str, torch.Tensor], real: dict[str, torch.Tensor]) -> dict[str, float]:
        """One simulator clip and one real clip, one generator and discriminator step per frame;
        returns the mean of each term over the clip's frames."""
        sim_labels, real_labels = self._encode(sim), self._encode(real)
        sim_ids, flow, has_flow, real_rgb = sim["label_ids"], sim["flow"], sim["has_flow"], real["rgb"]
        label_nc = self.generator.config.label_nc
        sim_out: list[torch.Tensor] = []
        sim_history: list[list[torch.Tensor]] = []
        source_history: list[list[torch.Tensor]] = []
        source_out: list[torch.Tensor] = []
        adapted_real: list[torch.Tensor] = []
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for t in range(sim_ids.shape[1]):
            with torch.no_grad():
                source = self._frame(self.source, real_labels, t, source_history)
            self.opt_g.zero_grad(set_to_none=True)
            out = self._frame(self.generator, sim_labels, t, sim_history)
            fake = out.image
            images = [fake] + ([out.raw] if out.raw is not None else [])
            terms: dict[str, torch.Tensor] = {}
            with no_param_grads(self.image_d):
                terms["G_GAN"] = sum(self.gan(self.image_d(image), True, False) for image in images)
            terms["G_Seg"] = segmentation_loss(self.segmenter, fake, sim_ids[:, t], self.config.frame_width)
            if t > 0 and bool(has_flow[:, t].all()):
                trust = flow_trust_mask(sim_labels[:, t - 1], sim_ids[:, t], flow[:, t], label_nc)
                terms["G_Warp"] = output_warp_loss(fake, sim_out[t - 1], flow[:, t], trust)
            t_inputs = self._temporal_terms(terms, sim_out + [fake], real_rgb, t)
            adapted = self._frame(self.generator, real_labels, t, source_history).image
            terms["A_L1"], terms["A_FM"] = anchor_terms(adapted, source.image, self.image_d)
            total = self._weighted_total(terms)
            total.backward()
            self.opt_g.step()

            values = {name: float(value.item()) for name, value in terms.items()}
            values["G_total"] = float(total.item())
            values["D_image"] = self._image_d_step(real_rgb[:, t], [image.detach() for image in images])
            if t_inputs:
                values["D_temporal"] = self._temporal_d_step(t_inputs)
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
            sim_out.append(fake.detach())
            sim_history.append([image.detach() for image in out.scale_images])
            source_history.append(source.scale_images)
            source_out.append(source.image)
            adapted_real.append(adapted.detach())
        self._last_sample = {"sim_ids": sim_ids, "sim_out": torch.stack(sim_out, 1), "real_ids": real["label_ids"],
                             "real_rgb": real_rgb, "source": torch.stack(source_out, 1),
                             "adapted": torch.stack(adapted_real, 1)}
        return {name: total / counts[name] for name, total in sums.items()}

    def _temporal_terms(self, terms: dict[str, torch.Tensor], generated: list[torch.Tensor],
                        real_rgb: torch.Tensor, t: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """Add G_T_GAN<k> for every stride whose frames end at t; returns (k, real, fake) clips
        (B, n, 3, H, W) for the temporal discriminators' step."""
        if self.temporal_d is None:
            return []
        inputs = []
        n = self.temporal_d.n_frames
        for index in range(len(self.temporal_d.discriminators)):
            stride = self.temporal_d.stride(index)
            first = t - (n - 1) * stride
            if first < 0:
                continue
            fake = torch.stack([generated[first + k * stride] for k in range(n)], 1)
            real = torch.stack([real_rgb[:, first + k * stride] for k in range(n)], 1)
            with no_param_grads(self.temporal_d):
                terms[f"G_T_GAN{index}"] = self.gan(self.temporal_d.score(index, fake, self._no_flow(fake)), True, False)
            inputs.append((index, real, fake.detach()))
        return inputs

    @staticmethod
    def _no_flow(frames: torch.Tensor) -> torch.Tensor:
        batch, n, _, height, width = frames.shape
        return frames.new_zeros(batch, n - 1, 2, height, width)

    def _image_d_step(self, real: torch.Tensor, fakes: list[torch.Tensor]) -> float:
        self.opt_d.zero_grad(set_to_none=True)
        loss = self.gan.discriminator_loss(self.image_d(torch.cat([real] + fakes, 0)), real.shape[0])
        loss.backward()
        self.opt_d.step()
        return float(loss.item())

    def _temporal_d_step(self, inputs: list[tuple[int, torch.Tensor, torch.Tensor]]) -> float:
        assert self.temporal_d is not None and self.opt_dt is not None
        self.opt_dt.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=self.device)
        for index, real, fake in inputs:
            both = torch.cat([real, fake], 0)
            loss = loss + self.gan.discriminator_loss(self.temporal_d.score(index, both, self._no_flow(both)),
                                                      real.shape[0])
        loss.backward()
        self.opt_dt.step()
        return float(loss.item())

    # ------------------------------------------------------------------ loop
    def train(self, progress: bool = True, until: int | None = None) -> list[dict[str, float]]:
        """Run to `config.steps` (or stop after step `until`, checkpointed, as an interrupted run
        would); writes checkpoints, logs, samples and at the end `generator/`."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.writer is None:
            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        self.config.save(self.out_dir / CONFIG_FILE)
        bar = tqdm(total=self.config.steps, initial=self.step, disable=not progress,
                   desc=f"adapt ({self.device.type})", unit="clip")
        while self.step < self.config.steps:
            sim = _clip(self.sim_data, self.step, self.device)
            real = _clip(self.real_data, self.step, self.device)
            values = self.train_clip(sim, real)
            self.step += 1
            self.history.append(values)
            append_log_line(self.out_dir / LOG_FILE, self.step, values)
            if self.step % self.config.log_every == 0 or self.step == 1:
                log_scalars(self.writer, values, self.step)
            if self.step % self.config.image_every == 0 or self.step == self.config.steps:
                self.write_sample()
            bar.update(1)
            bar.set_postfix(seg=f"{values['G_Seg']:.3f}", anchor=f"{values['A_L1']:.3f}")
            if self.step % self.config.save_every == 0 or self.step == self.config.steps or self.step == until:
                self.save_checkpoint()
            if until is not None and self.step >= until:
                break
        bar.close()
        if self.step >= self.config.steps:
            self.export_generator(self.out_dir / GENERATOR_DIR)
        self.writer.flush()
        return self.history

    def write_sample(self) -> Path | None:
        """samples/step_N.png (and tensorboard): rows sim labels | generated, then real labels |
        real photo | source model | adapted model on the real clip; frames left to right."""
        from carla_neural.remap import colorize_label_ids

        if self._last_sample is None:
            return None
        sample = self._last_sample

        def images(frames: torch.Tensor) -> np.ndarray:
            rgb = ((frames[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            return np.concatenate(list(rgb), axis=1)

        def labels(label_ids: torch.Tensor) -> np.ndarray:
            return np.concatenate([colorize_label_ids(frame.cpu().numpy().astype(np.uint8))
                                   for frame in label_ids[0]], axis=1)

        strip = np.concatenate([labels(sample["sim_ids"]), images(sample["sim_out"]), labels(sample["real_ids"]),
                                images(sample["real_rgb"]), images(sample["source"]), images(sample["adapted"])], 0)
        path = self.out_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
        if self.writer is not None:
            self.writer.add_image("samples/sim_then_real", strip, self.step, dataformats="HWC")
        return path

    # ------------------------------------------------------------------ files
    def save_checkpoint(self) -> Path:
        """Write checkpoints/latest atomically: generator, discriminators, optimizers, RNG, step."""
        def write(staging: Path) -> None:
            self.export_generator(staging / GENERATOR_DIR)
            write_training_state(staging, self._state_modules(), self._state_optimizers(),
                                 {"step": self.step, "config": self.config.to_dict()})

        return publish_checkpoint(self.out_dir / CHECKPOINT_DIR, self.step, write)

    def _state_modules(self) -> dict[str, torch.nn.Module | None]:
        return {"image_d": self.image_d, "temporal_d": self.temporal_d}

    def _state_optimizers(self) -> dict[str, torch.optim.Optimizer | None]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d, "opt_dt": self.opt_dt}

    def load_checkpoint(self, folder: Path) -> None:
        """Resume: the adapted generator, discriminators, optimizers, RNG and step of a checkpoint."""
        try:
            self.generator.load_weights(folder / GENERATOR_DIR)
        except (CheckpointError, ValueError) as error:
            raise AdaptInputError(f"cannot resume from {folder}: {error}; use another --out or --no-resume") from None
        self.generator.to(self.device)
        meta = read_training_state(folder, self._state_modules(), self._state_optimizers())
        self.step = int(meta["step"])
        if meta.get("config", {}).get("checkpoint") != self.config.checkpoint:
            log.warning("resuming %s, which adapted %s, with --checkpoint %s as the anchor", folder,
                        meta.get("config", {}).get("checkpoint"), self.config.checkpoint)
        log.info("resumed from %s at step %d", folder, self.step)

    def export_generator(self, folder: Path) -> Path:
        """The adapted generator in our checkpoint format (config.json + model.safetensors)."""
        metadata = {key: value for key, value in self.inputs.source_metadata.items() if key != "temporal"}
        # The source as the user named it ("bundled" stays portable; a path stays a path).
        metadata.update({"adapted_from": self.config.checkpoint, "adapt_steps": self.step,
                         "adapt_sim": list(self.config.sim), "adapt_real": self.config.real})
        # The maps it was adapted on went through this transform: run it with --adapt-labels.
        transform = self.inputs.label_transform
        metadata["adapt_label_transform"] = transform.config.model_dump(mode="json") if transform else None
        metadata["working_size"] = list(self.inputs.working_size)  # the size it was adapted at
        saved = self.generator.save(folder, extra=metadata)
        # Styles added to a frozen model ride along unchanged (adapt trains no style input); their
        # clusters are the source's, and metadata.styles (copied above) describes them.
        bank = self.inputs.source_folder / STYLES_FILE
        if self.generator.net.has_styles and bank.is_file():
            shutil.copyfile(bank, Path(folder) / STYLES_FILE)
        return saved

    def close(self) -> None:
        """Flush and close the tensorboard writer."""
        if self.writer is not None:
            self.writer.close()
