"""The vid2vid training loop: one optimisation step per generated frame, as NVIDIA's code does it.

Per clip: the first `real_first_frames` frames are real (they seed the generator's history) and the
single-image generator learns on frame 0; every later frame t is generated from the labels of
t-2..t and the two previous outputs (detached), then
  - the generator steps on GAN + feature matching (image discriminator on (labels, image), for the
    final and the raw image), VGG (when weights exist), flow L1 and flow-warp (where the ground-truth
    flow is trusted), output warp, and the temporal GAN + feature matching of every stride whose
    frames are available;
  - the image and temporal discriminators step on real vs detached fake.
The frame-by-frame baseline (`temporal=False`) trains every frame with the image losses only; a
temporal model does the same (its temporal path off) for its first `frame_steps` clips, as a warm start.

Distributed: launched by torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the environment), every network
is wrapped in DistributedDataParallel; each rank draws different clips.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from renderer.training.config import TrainConfig
from renderer.training.curriculum import SpatialCurriculum, SpatialStage, TemporalCurriculum
from renderer.training.datasets import ClipDataset, hold_out, scan_dataset
from renderer.training.discriminators import MultiScaleDiscriminator, TemporalDiscriminators
from renderer.training.flow import FlowCache, confidence_mask
from renderer.model.inputs import build_pyramid
from renderer.checkpoint import is_our_checkpoint, read_config
from renderer.engines.hardware import precision_support
from renderer.model.style import region_ids
from renderer.segmenter.checkpoint import BUNDLED_DIR, load_segmenter, segmenter_folder
from renderer.segmenter.loss import ensemble_segmentation_loss
from renderer.segmenter.model import Segmenter
from renderer.styles import STYLES_ADDED_TO
from renderer.training.generator import GeneratorOutput, TrainableGenerator
from renderer.training.losses import (
    GANLoss,
    build_vgg_loss,
    compose_flows,
    feature_matching_loss,
    flow_loss,
    flow_warp_loss,
    masked_l1,
    occlusion_weight_loss,
    output_warp_loss,
    region_colour_loss,
)
from renderer.training.run_logs import append_log_line, log_scalars, write_sample_video
from renderer.training.state_io import publish_checkpoint, read_training_state, write_training_state

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
GENERATOR_DIR = "generator"  # our generator format: config.json + model.safetensors


@dataclass
class DistInfo:
    """Where this process sits in a torchrun job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return info


class _StepSampler(Sampler[int]):
    """Item indices for steps start..: (step * world + rank) * batch + k, so resumes draw the same clips."""

    def __init__(self, start_step: int, num_steps: int, batch_size: int, dist_info: DistInfo) -> None:
        self.start_step, self.num_steps, self.batch_size, self.dist_info = start_step, num_steps, batch_size, dist_info

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.start_step + self.num_steps):
            base = (step * self.dist_info.world_size + self.dist_info.rank) * self.batch_size
            yield from range(base, base + self.batch_size)

    def __len__(self) -> int:
        return self.num_steps * self.batch_size


@dataclass
class StepRecord:
    """Scalars of one training clip (means over its generated frames)."""

    step: int
    values: dict[str, float] = field(default_factory=dict)


def amp_settings(amp: bool, device: torch.device) -> tuple[bool, torch.dtype]:
    """(mixed precision on?, its dtype): on CUDA bf16 where supported, else fp16 (with a grad
    scaler); on a CPU only where bf16 is native (AMX / AVX-512 BF16), where it halves the time
    per clip (docs/real-data.md, "Training"); never on a CPU that would emulate it."""
    if amp and device.type == "cuda":
        return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp and device.type == "cpu" and precision_support("bf16", device).native:
        return True, torch.bfloat16
    return False, torch.float32


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def psnr_tensor(fake: torch.Tensor, real: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1]."""
    mse = F.mse_loss((fake.float().clamp(-1, 1) + 1) / 2, (real.float() + 1) / 2).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


@contextlib.contextmanager
def no_param_grads(module: torch.nn.Module) -> Iterator[None]:
    """Let gradients flow through `module` to its input without computing its weights' gradients."""
    params = [p for p in module.parameters() if p.requires_grad]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


class Trainer:
    """Trains a TrainableGenerator with vid2vid's losses; resumable, distributed, logged."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.dist = init_distributed(self.device.type)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        # Same seed on every rank for the weights (DDP also broadcasts them); data draws differ by rank.
        seed_everything(config.seed)
        self.out_dir = Path(config.out_dir)
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)

        sequences = hold_out([seq for path in config.datasets for seq in scan_dataset(path, config.phase)],
                             config.val_sequences)
        if config.val_sequences:
            log.info("held out %s; training on %s", config.val_sequences, [seq.name for seq in sequences])
        cache_dir = config.flow_cache_dir
        self.dataset = ClipDataset(
            sequences, config.clip_length, (config.crop_width, config.crop_height),
            load_width=config.load_width, flip=config.flip, t_step=config.t_step,
            flow_cache=FlowCache(cache_dir, config.dis_preset), seed=config.seed,
            items_per_epoch=None, colour_jitter=config.colour_jitter)

        self.generator = TrainableGenerator.build(config.model, temporal=config.temporal, init_from=config.init_from,
                                                  generator=config.generator,
                                                  feature_channels=config.feature_channels,
                                                  styles_only=config.styles_only,
                                                  style_input=config.style_input)
        self.sequences = sequences
        # Styles added to a frozen model keep its working size (NVIDIA folders record none).
        self.base_working_size = None
        if config.styles_only and is_our_checkpoint(config.init_from):
            self.base_working_size = read_config(config.init_from)[1].get("working_size")
        self.generator.to(self.device)
        multiple = self.generator.size_multiple
        if config.crop_width % multiple or config.crop_height % multiple:
            raise ValueError(f"crop {config.crop_width}x{config.crop_height} must be a multiple of {multiple} "
                             f"for this generator")
        self.spatial = SpatialCurriculum(self.generator.num_scales, config.steps_per_scale, config.finest_alone_steps)
        self.temporal = TemporalCurriculum(config.clip_length, config.max_clip_length, config.clip_double_every)

        label_channels = self.generator.label_channels
        # With neither GAN nor feature-matching weight, nothing reads the image discriminator: skip it.
        self.uses_image_d = config.uses_image_discriminator
        self.image_d = MultiScaleDiscriminator(label_channels + 3, config.d_channels, config.d_layers,
                                               config.d_scales).to(self.device)
        use_temporal_d = config.temporal and config.temporal_strides > 0 and (
            config.weights.temporal_gan > 0 or config.weights.temporal_feature_matching > 0)
        self.temporal_d = TemporalDiscriminators(config.temporal_frames, config.temporal_strides, config.d_channels,
                                                 config.d_layers, config.d_scales).to(self.device) if use_temporal_d else None
        self.gan = GANLoss(config.gan_mode)
        self.vgg = build_vgg_loss(config.vgg_weights, config.use_vgg and config.weights.vgg > 0)
        if self.vgg is not None:
            self.vgg.to(self.device)
        self.seg_teachers: list[Segmenter] = []
        self.frame_width = 0
        for folder in config.seg_teachers:
            try:
                teacher = load_segmenter(folder, self.device)
            except ValueError as err:  # CheckpointError included
                raise ValueError(f"seg_teacher: {err}") from None
            if segmenter_folder(folder).resolve() == BUNDLED_DIR.resolve():
                log.warning("seg_teacher is the bundled segmenter, which also scores segmentation "
                            "consistency (evaluate, compare): that figure is no longer an independent check")
            self.seg_teachers.append(teacher.requires_grad_(False))
        if self.seg_teachers:
            self.frame_width = self.dataset.frame_width()

        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam([p for p in self.generator.parameters() if p.requires_grad],
                                      lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.image_d.parameters(), lr=config.lr, betas=betas)
        self.opt_dt = torch.optim.Adam(self.temporal_d.parameters(), lr=config.lr, betas=betas) \
            if self.temporal_d is not None else None

        self.use_amp, self.amp_dtype = amp_settings(config.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

        # DDP wrappers; the discriminators are called through `.module` for the generator's loss so
        # that each wrapper sees exactly one forward per backward.
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_ddp = DistributedDataParallel(self.generator, device_ids=ids, find_unused_parameters=True)
            self.d_ddp = DistributedDataParallel(self.image_d, device_ids=ids)
            self.dt_ddp = DistributedDataParallel(self.temporal_d, device_ids=ids, find_unused_parameters=True) \
                if self.temporal_d is not None else None
        else:
            self.g_ddp, self.d_ddp, self.dt_ddp = self.generator, self.image_d, self.temporal_d

        self.step = 0
        self.history: list[StepRecord] = []
        self.writer = None
        if config.resume and (self.out_dir / CHECKPOINT_DIR / "latest").is_dir():
            self.load_checkpoint(self.out_dir / CHECKPOINT_DIR / "latest")

    # ------------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        """Constant lr, then linear decay to 0 from `decay_start` to `steps`."""
        start, end = self.config.effective_decay_start, self.config.steps
        if step < start or end <= start:
            return self.config.lr
        return self.config.lr * max(0.0, 1.0 - (step - start) / (end - start))

    def generator_lr_at(self, step: int) -> float:
        """`lr_at`, but 0 during the discriminators' warm-up (`d_warmup_steps`)."""
        return 0.0 if step < self.config.d_warmup_steps else self.lr_at(step)

    def _set_lr(self, step: int) -> None:
        # lr 0 rather than skipping the generator's step: its Adam moments still warm up.
        lr = self.lr_at(step)
        for optimizer, value in ((self.opt_g, self.generator_lr_at(step)), (self.opt_d, lr), (self.opt_dt, lr)):
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = value

    # ------------------------------------------------------------------ data
    def _clip_length(self, step: int) -> int:
        return self.temporal.clip_length(step)

    def _batches(self, start: int) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(step, batch) from `start` to the end, rebuilding the loader when the clip length changes."""
        step = start
        while step < self.config.steps:
            length = self._clip_length(step)
            end = step + 1
            while end < self.config.steps and self._clip_length(end) == length:
                end += 1
            self.dataset.clip_length = length
            loader = DataLoader(self.dataset, batch_size=self.config.batch_size,
                                sampler=_StepSampler(step, end - step, self.config.batch_size, self.dist),
                                num_workers=self.config.num_workers, drop_last=True)
            for batch in loader:
                yield step, batch
                step += 1

    def _prepare(self, batch: dict[str, torch.Tensor], stage: SpatialStage) -> dict[str, torch.Tensor]:
        """Move a clip to the device and down to the stage's resolution; encode the labels."""
        factor = stage.downsample
        label_ids = batch["label_ids"].to(self.device)  # (B, T, H, W)
        edges = batch["edges"].to(self.device)  # (B, T, 1, H, W)
        rgb = batch["rgb"].to(self.device)
        flow = batch["flow"].to(self.device)
        instance_ids = batch["instance_ids"].to(self.device)  # (B, T, H, W)
        bsz, length, height, width = label_ids.shape
        if factor > 1:
            size = (height // factor, width // factor)
            label_ids = label_ids[:, :, ::factor, ::factor][:, :, :size[0], :size[1]]
            instance_ids = instance_ids[:, :, ::factor, ::factor][:, :, :size[0], :size[1]]
            if self.generator.config.label_pyramid == "nearest":
                # The renderer subsamples edges with the labels for such models; train on the same.
                edges = edges[:, :, :, ::factor, ::factor][..., :size[0], :size[1]]
            else:
                edges = F.max_pool2d(edges.flatten(0, 1), factor).view(bsz, length, 1, *size)
            rgb = F.avg_pool2d(rgb.flatten(0, 1), factor).view(bsz, length, 3, *size)
            flow = (F.avg_pool2d(flow.flatten(0, 1), factor) / factor).view(bsz, length, 2, *size)
        labels = self.generator.encode_labels(label_ids.flatten(0, 1), edges.flatten(0, 1))
        labels = labels.view(bsz, length, *labels.shape[1:])
        return {"labels": labels, "rgb": rgb, "flow": flow, "has_flow": batch["has_flow"].to(self.device),
                "regions": region_ids(label_ids, instance_ids), "label_ids": label_ids,
                "frame_width": self.frame_width // factor}

    def _style(self, clip: dict[str, torch.Tensor], t: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Frame t's style source (real frame, region ids) for a model with styles, else None."""
        if not self.generator.net.has_styles:
            return None
        return clip["rgb"][:, t], clip["regions"][:, t]

    # ------------------------------------------------------------------ losses
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.use_amp:
            return torch.autocast(self.device.type, dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def _image_gan_terms(self, labels_t: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generator's GAN and feature-matching loss of one image against the image discriminator."""
        with torch.no_grad():
            pred_real = self.image_d(torch.cat([labels_t, real], 1))
        with no_param_grads(self.image_d):
            pred_fake = self.image_d(torch.cat([labels_t, fake], 1))
        return self.gan(pred_fake, True, False), feature_matching_loss(pred_fake, pred_real)

    def _d_step(self, labels_t: torch.Tensor, real: torch.Tensor, fakes: list[torch.Tensor]) -> float:
        """One image-discriminator update on real vs each fake (detached); one DDP forward."""
        inputs = torch.cat([torch.cat([labels_t, real], 1)] + [torch.cat([labels_t, f.detach()], 1) for f in fakes], 0)
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.gan.discriminator_loss(self.d_ddp(inputs), real.shape[0])
        self._backward_step(loss, self.opt_d)
        return loss.item()

    def _temporal_inputs(self, frames: list[torch.Tensor], flows_by_stride: dict[int, list[torch.Tensor]],
                         t: int, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Frames t-(n-1)s..t (B, n, 3, H, W) and the n-1 flows between them (B, n-1, 2, H, W) / 20."""
        assert self.temporal_d is not None
        stride = self.temporal_d.stride(index)
        n = self.temporal_d.n_frames
        first = t - (n - 1) * stride
        if first < 0:
            return None
        picked = [frames[first + k * stride] for k in range(n)]
        flows = [flows_by_stride[stride][first + k * stride] for k in range(1, n)]
        return torch.stack(picked, 1), torch.stack(flows, 1) / 20.0

    def _strided_flows(self, flow: torch.Tensor) -> dict[int, list[torch.Tensor]]:
        """Backward flows t -> t-s for every stride s of the temporal discriminators (B, 2, H, W) each."""
        length = flow.shape[1]
        by_stride = {1: [flow[:, t] for t in range(length)]}
        if self.temporal_d is None:
            return by_stride
        for index in range(1, len(self.temporal_d.discriminators)):
            stride = self.temporal_d.stride(index)
            chained = []
            for t in range(length):
                if t < stride:
                    chained.append(torch.zeros_like(flow[:, 0]))
                    continue
                total = flow[:, t]
                for k in range(1, stride):
                    total = compose_flows(total, flow[:, t - k])
                chained.append(total)
            by_stride[stride] = chained
        return by_stride

    def _backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                       frozen: list[torch.nn.Parameter] | None = None) -> None:
        self.scaler.scale(loss).backward()
        if frozen:
            for param in frozen:
                param.grad = None
        self.scaler.step(optimizer)
        self.scaler.update()

    # ------------------------------------------------------------------ one clip
    def in_frame_phase(self, step: int) -> bool:
        """Whether clip `step` (0-based) trains frame by frame: the baseline, or a temporal model's warm start."""
        return not self.config.temporal or step < self.config.frame_steps

    def train_clip(self, batch: dict[str, torch.Tensor], stage: SpatialStage, frame_phase: bool) -> dict[str, float]:
        """All optimisation steps of one clip; returns mean scalars. `frame_phase` (see
        `in_frame_phase`): train every frame with the temporal path off."""
        weights = self.config.weights
        clip = self._prepare(batch, stage)
        labels, rgb, flow = clip["labels"], clip["rgb"], clip["flow"]
        length = rgb.shape[1]
        frozen = self.generator.frozen_parameters(stage.active_scales, stage.finest_alone)
        sums: dict[str, float] = {}

        def add(name: str, value: float) -> None:
            sums[name] = sums.get(name, 0.0) + value

        counts: dict[str, int] = {}

        def record(values: dict[str, float]) -> None:
            for name, value in values.items():
                add(name, value)
                counts[name] = counts.get(name, 0) + 1

        # The single-image generator on the clip's first frame; in the frame phase, the composite
        # generator (temporal path off) on every frame. A tone trains on the single-image
        # generator's frames alone, every frame of the clip: a temporal step starts from real
        # frames, whose colours the frozen model warps forward, where a renderer's history is
        # its own untoned output, so those steps would teach the tone too small a change.
        tone_only = self.config.style_input == "tone"
        if self.config.temporal:
            for t in range(length if tone_only else 1):
                record(self._single_frame_step(clip, t, stage))
        if frame_phase:
            for t in range(length):
                record(self._single_frame_step(clip, t, stage, frame_by_frame=True))

        if not frame_phase and not tone_only and length > self.config.real_first_frames:
            n_prev = self.generator.n_frames - 1
            active = stage.active_scales
            outputs: list[torch.Tensor] = [rgb[:, t] for t in range(self.config.real_first_frames)]
            # Per frame, every scale's image (coarsest first): each scale's history is its own output.
            scale_history = [build_pyramid(rgb[:, t], active)[::-1] for t in range(self.config.real_first_frames)]
            flows_by_stride = self._strided_flows(flow)
            for t in range(self.config.real_first_frames, length):
                window = [labels[:, max(0, t - k)] for k in range(self.generator.n_frames - 1, -1, -1)]
                prev = [torch.cat([scale_history[max(0, t - k)][s].detach() for k in range(n_prev, 0, -1)], 1)
                        for s in range(active)]
                real_t, real_prev = rgb[:, t], rgb[:, t - 1]
                ref_flow = flow[:, t]
                conf = confidence_mask(real_t, real_prev, ref_flow, self.config.confidence_threshold)

                self.opt_g.zero_grad(set_to_none=True)
                with self._autocast():
                    out: GeneratorOutput = self.g_ddp(torch.cat(window, 1), prev, active,
                                                      style=self._style(clip, t))
                    fake = out.image
                    terms: dict[str, torch.Tensor] = {}
                    if self.uses_image_d:
                        terms["G_GAN"], terms["G_FM"] = self._image_gan_terms(labels[:, t], real_t, fake)
                        if out.raw is not None:
                            gan_raw, fm_raw = self._image_gan_terms(labels[:, t], real_t, out.raw)
                            terms["G_GAN"] = terms["G_GAN"] + gan_raw
                            terms["G_FM"] = terms["G_FM"] + fm_raw
                    if self.vgg is not None:
                        terms["G_VGG"] = self.vgg(fake.float(), real_t.float()) + (
                            self.vgg(out.raw.float(), real_t.float()) if out.raw is not None else 0.0)
                    if weights.l1 > 0:
                        terms["G_L1"] = masked_l1(fake, real_t)
                    if weights.region_colour > 0:
                        terms["G_Region"] = region_colour_loss(fake, real_t, clip["regions"][:, t])
                    if self.seg_teachers:
                        terms["G_Seg"] = ensemble_segmentation_loss(self.seg_teachers, fake, clip["label_ids"][:, t],
                                                                    clip["frame_width"])
                    if out.flow is not None:
                        terms["F_Flow"] = flow_loss(out.flow, ref_flow, conf) / (2 ** (stage.active_scales - 1))
                        terms["F_Warp"] = flow_warp_loss(out.flow, real_prev, real_t, conf)
                    if out.weight is not None and weights.occlusion_weight > 0:
                        terms["W"] = occlusion_weight_loss(out.weight, conf)
                    terms["G_Warp"] = output_warp_loss(fake, outputs[t - 1].detach(), ref_flow, conf)
                    t_inputs = []
                    if self.temporal_d is not None:
                        outputs_now = outputs + [fake]
                        real_frames = [rgb[:, k] for k in range(t + 1)]
                        for index in range(len(self.temporal_d.discriminators)):
                            fake_in = self._temporal_inputs(outputs_now, flows_by_stride, t, index)
                            if fake_in is None:
                                continue
                            real_in = self._temporal_inputs(real_frames, flows_by_stride, t, index)
                            t_inputs.append((index, real_in, fake_in))
                            with torch.no_grad():
                                pred_real = self.temporal_d.score(index, *real_in)
                            with no_param_grads(self.temporal_d):
                                pred_fake = self.temporal_d.score(index, *fake_in)
                            terms[f"G_T_GAN{index}"] = self.gan(pred_fake, True, False)
                            terms[f"G_T_FM{index}"] = feature_matching_loss(pred_fake, pred_real)
                    total = self._weighted_total(terms)
                self._backward_step(total, self.opt_g, frozen)
                values = {k: float(v.item()) for k, v in terms.items()}
                values["G_total"] = float(total.item())
                values["PSNR"] = psnr_tensor(fake.detach(), real_t)

                fakes = [fake] + ([out.raw] if out.raw is not None else [])
                if self.uses_image_d:
                    values["D_image"] = self._d_step(labels[:, t], real_t, fakes)
                if self.temporal_d is not None and t_inputs:
                    values["D_temporal"] = self._dt_step(t_inputs)
                record(values)
                outputs.append(fake.detach())
                scale_history.append([image.detach() for image in out.scale_images])
            self._last_sample = (rgb.detach(), torch.stack(outputs, 1))
        return {name: total / counts[name] for name, total in sums.items()}

    def _weighted_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = self.config.weights
        factor = {
            "G_GAN": weights.gan, "G_FM": weights.feature_matching, "G_VGG": weights.vgg, "G_L1": weights.l1,
            "G_Region": weights.region_colour, "G_Seg": weights.segmentation,
            "F_Flow": weights.flow, "F_Warp": weights.flow_warp, "G_Warp": weights.output_warp,
            "W": weights.occlusion_weight,
        }
        total = None
        for name, value in terms.items():
            if name.startswith("G_T_GAN"):
                scale = weights.temporal_gan
            elif name.startswith("G_T_FM"):
                scale = weights.temporal_feature_matching
            else:
                scale = factor[name]
            part = scale * value.float()
            total = part if total is None else total + part
        assert total is not None
        return total

    def _dt_step(self, t_inputs: list[tuple[int, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]]) -> float:
        """One temporal-discriminator update over every stride that had frames."""
        assert self.opt_dt is not None and self.dt_ddp is not None
        self.opt_dt.zero_grad(set_to_none=True)
        num = len(self.temporal_d.discriminators)
        inputs: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * num
        sizes = [0] * num
        for index, (real_frames, real_flows), (fake_frames, fake_flows) in t_inputs:
            inputs[index] = (torch.cat([real_frames, fake_frames.detach()], 0), torch.cat([real_flows, fake_flows], 0))
            sizes[index] = real_frames.shape[0]
        with self._autocast():
            all_outputs = self.dt_ddp(inputs)
            loss = None
            for index, outputs in enumerate(all_outputs):
                if outputs is None:
                    continue
                part = self.gan.discriminator_loss(outputs, sizes[index])
                loss = part if loss is None else loss + part
        assert loss is not None
        self._backward_step(loss, self.opt_dt)
        return loss.item()

    def _single_frame_step(self, clip: dict[str, torch.Tensor], t: int, stage: SpatialStage,
                           frame_by_frame: bool = False) -> dict[str, float]:
        """pix2pixHD-style step on frame t of a prepared clip (`_prepare`): the single-image generator
        (a temporal model's first frames), or with `frame_by_frame` the composite generator with its
        temporal path off."""
        labels_t, real, regions = clip["labels"][:, t], clip["rgb"][:, t], clip["regions"][:, t]
        if not frame_by_frame and not self.generator.has_single:
            return {}
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            fake = self.g_ddp(labels_t, None, stage.active_scales, frame_by_frame, style=self._style(clip, t)).image
            terms: dict[str, torch.Tensor] = {}
            if self.uses_image_d:
                terms["G_GAN"], terms["G_FM"] = self._image_gan_terms(labels_t, real, fake)
            if self.vgg is not None:
                terms["G_VGG"] = self.vgg(fake.float(), real.float())
            if self.config.weights.l1 > 0:
                terms["G_L1"] = masked_l1(fake, real)
            if self.config.weights.region_colour > 0:
                terms["G_Region"] = region_colour_loss(fake, real, regions)
            if self.seg_teachers:
                terms["G_Seg"] = ensemble_segmentation_loss(self.seg_teachers, fake, clip["label_ids"][:, t],
                                                            clip["frame_width"])
            total = self._weighted_total(terms)
        self._backward_step(total, self.opt_g)
        d_loss = self._d_step(labels_t, real, [fake]) if self.uses_image_d else None
        # S_: the single-image generator; B_: a temporal model's frame-by-frame (baseline-style) warm start.
        prefix = "" if not self.config.temporal else ("B_" if frame_by_frame else "S_")
        values = {prefix + k: float(v.item()) for k, v in terms.items()}
        values[prefix + "G_total"] = float(total.item())
        values[prefix + "PSNR"] = psnr_tensor(fake.detach(), real)
        if d_loss is not None:
            values[prefix + "D_image"] = d_loss
        if frame_by_frame or self.config.style_input == "tone":
            self._last_sample = (real.detach().unsqueeze(1), fake.detach().unsqueeze(1))
        return values

    # ------------------------------------------------------------------ loop
    def train(self, progress: bool = True, until: int | None = None) -> list[StepRecord]:
        """Run from the current step to `config.steps` (or stop after step `until`, checkpointed, as an
        interrupted run would); saves checkpoints and, at the end, the final generator."""
        from tqdm import tqdm

        if self.dist.is_main and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        if self.dist.is_main:
            self.config.save(self.out_dir / "train_config.json")
        bar = tqdm(total=self.config.steps, initial=self.step, disable=not (progress and self.dist.is_main),
                   desc="train" if self.config.temporal else "train (frame-by-frame)", unit="clip")
        started = time.monotonic()
        stage = self.spatial.stage(self.step)
        for step, batch in self._batches(self.step):
            stage = self.spatial.stage(step)
            self._set_lr(step)
            self.generator.train()
            values = self.train_clip(batch, stage, self.in_frame_phase(step))
            self.step = step + 1
            self.history.append(StepRecord(self.step, values))
            if self.dist.is_main:
                self._log(values, stage)
                append_log_line(self.out_dir / "train_log.jsonl", self.step, values)
                bar.update(1)
                if "PSNR" in values:
                    bar.set_postfix(psnr=f"{values['PSNR']:.2f}", g=f"{values.get('G_total', 0):.3f}")
            if self.step % self.config.save_every == 0 or self.step == self.config.steps or self.step == until:
                self.save_checkpoint()
            if until is not None and self.step >= until:
                bar.close()
                return self.history
        bar.close()
        if self.dist.is_main:
            elapsed = time.monotonic() - started
            log.info("trained to step %d in %.1f s", self.step, elapsed)
            folder = self.export_generator(self.out_dir / GENERATOR_DIR)
            if self.generator.net.has_styles:
                self.export_styles(folder)
            if self.writer is not None:
                self.writer.flush()
        return self.history

    def _log(self, values: dict[str, float], stage: SpatialStage) -> None:
        if self.writer is None:
            return
        if self.step % self.config.log_every == 0 or self.step == 1:
            log_scalars(self.writer, values, self.step)
            self.writer.add_scalar("schedule/lr", self.lr_at(self.step - 1), self.step)
            self.writer.add_scalar("schedule/lr_generator", self.generator_lr_at(self.step - 1), self.step)
            self.writer.add_scalar("schedule/clip_length", self._clip_length(self.step - 1), self.step)
            self.writer.add_scalar("schedule/active_scales", stage.active_scales, self.step)
            self.writer.add_scalar("schedule/frame_by_frame", float(self.in_frame_phase(self.step - 1)), self.step)
        if self.step % self.config.image_every == 0 and getattr(self, "_last_sample", None) is not None:
            real, fake = self._last_sample
            # Real clip on top, generated clip below, frames left to right; images in [0, 1].
            frames = min(real.shape[1], fake.shape[1])
            offset = real.shape[1] - fake.shape[1] if fake.shape[1] < real.shape[1] else 0
            top = torch.cat([real[0, offset + k] for k in range(frames)], dim=2)
            bottom = torch.cat([fake[0, k] for k in range(frames)], dim=2)
            strip = ((torch.cat([top, bottom], dim=1).float().clamp(-1, 1) + 1) / 2).cpu()
            self.writer.add_image("samples/real_over_fake", strip, self.step)
            video = ((fake[:1].float().clamp(-1, 1) + 1) / 2).cpu()
            write_sample_video(video[0], self.out_dir / "samples" / f"step_{self.step:07d}.mp4")

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path | None:
        """Write checkpoints/latest atomically: generator, discriminators, optimizers, RNG."""
        if not self.dist.is_main:
            if self.dist.enabled:
                dist.barrier()
            return None

        def write(staging: Path) -> None:
            self.export_generator(staging / GENERATOR_DIR)
            meta = {"step": self.step, "config": self.config.to_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None}
            write_training_state(staging, self._state_modules(), self._state_optimizers(), meta)

        latest = publish_checkpoint(self.out_dir / CHECKPOINT_DIR, self.step, write)
        if self.dist.enabled:
            dist.barrier()
        return latest

    def _state_modules(self) -> dict[str, torch.nn.Module | None]:
        return {"image_d": self.image_d, "temporal_d": self.temporal_d}

    def _state_optimizers(self) -> dict[str, torch.optim.Optimizer | None]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d, "opt_dt": self.opt_dt}

    def load_checkpoint(self, folder: Path) -> None:
        """Resume: generator, discriminators, optimizer states and the step from a checkpoint folder."""
        self.generator.load_weights(folder / GENERATOR_DIR)
        self.generator.to(self.device)
        meta = read_training_state(folder, self._state_modules(), self._state_optimizers())
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.step = int(meta["step"])
        log.info("resumed from %s at step %d", folder, self.step)

    def export_generator(self, folder: Path) -> Path:
        """Write the generator in our checkpoint format (config.json + model.safetensors)."""
        size = [self.config.crop_width, self.config.crop_height]
        extra: dict[str, object] = {"trained_steps": self.step, "temporal": self.config.temporal}
        if self.config.styles_only:
            size = list(self.base_working_size or size)
            extra[STYLES_ADDED_TO] = self.config.init_from
        # The working size it was trained at (W, H): the renderer's default size for it.
        extra.update(size=size, working_size=size)
        return self.generator.save(folder, extra=extra)

    def export_styles(self, folder: Path) -> Path:
        """Cluster the instance-pooled features of the training frames (at the load size the
        encoder trained at) and store them with the generator in ``folder`` (docs/styles.md)."""
        from renderer.styles import compute_styles, save_styles

        bank = compute_styles(self.generator.net, self.sequences, self.config.style_clusters,
                              load_width=self.config.load_width, seed=self.config.seed)
        names = ",".join(seq.name for seq in self.sequences)
        return save_styles(folder, bank, source=f"training sequences {names}")

    def close(self) -> None:
        """Flush logs and leave the process group."""
        if self.writer is not None:
            self.writer.close()
        if self.dist.enabled and dist.is_initialized():
            dist.destroy_process_group()
