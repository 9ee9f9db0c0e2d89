"""Train the segmenter: random crops of in-memory frames, cross-entropy, Adam with a cosine schedule.

Resumable: OUT/checkpoints/latest holds the model, the optimizer and the step; each step's batch is
drawn from a generator seeded with (seed, step), so a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from renderer.cpus import torch_threads
from renderer.metrics.segmentation import SegmentationScores
from renderer.segmenter.checkpoint import load_segmenter, read_segmenter_config, save_segmenter
from renderer.segmenter.classes import IGNORE, NUM_CLASSES
from renderer.segmenter.data import FrameBank, load_frame_bank, random_batch
from renderer.segmenter.inference import predict_train_ids
from renderer.segmenter.model import Segmenter, SegmenterConfig, parameter_count
from renderer.training.datasets import scan_dataset
from renderer.training.state_io import flatten_optimizer, restore_optimizer

log = logging.getLogger(__name__)

CLASS_WEIGHTS = ("none", "inverse-sqrt")
LATEST = "checkpoints/latest"


class SegmenterTrainError(ValueError):
    """A training setup that cannot run; the message names the option and what to do."""


@dataclass
class SegmenterTrainConfig:
    """Everything a segmenter run needs; checked by validate() before anything is read or written."""

    data: str
    out_dir: str
    val_sequences: tuple[str, ...] = ("seq0004",)
    train_sequences: tuple[str, ...] | None = None  # None: every sequence not held out
    steps: int = 600
    batch_size: int = 8
    crop_width: int = 256
    crop_height: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 20
    class_weights: str = "none"
    jitter: float = 0.2
    seed: int = 0
    threads: int = 1
    val_every: int = 200
    checkpoint_every: int = 50
    resume: bool = True
    stop_at: int | None = None  # leave after this step (resumable later); None: run to `steps`
    model: SegmenterConfig = field(default_factory=SegmenterConfig)

    def validate(self) -> None:
        """Raise SegmenterTrainError naming the first bad field and its allowed values."""
        positive = ("steps", "batch_size", "crop_width", "crop_height", "threads", "val_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise SegmenterTrainError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stop_at is not None and self.stop_at < 1:
            raise SegmenterTrainError(f"stop_at must be >= 1, got {self.stop_at}")
        if not self.lr > 0:
            raise SegmenterTrainError(f"lr must be > 0, got {self.lr}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise SegmenterTrainError(f"class_weights must be one of {', '.join(CLASS_WEIGHTS)}, got {self.class_weights!r}")
        if not 0 <= self.jitter < 1:
            raise SegmenterTrainError(f"jitter must be in [0, 1), got {self.jitter}")
        if self.crop_width % 16 or self.crop_height % 16:
            raise SegmenterTrainError(f"crop must be a multiple of 16, got {self.crop_width}x{self.crop_height}")
        if self.crop_width > self.model.input_width or self.crop_height > self.model.input_height:
            raise SegmenterTrainError(f"crop {self.crop_width}x{self.crop_height} is larger than the working size "
                                      f"{self.model.input_width}x{self.model.input_height}")
        overlap = set(self.val_sequences) & set(self.train_sequences or ())
        if overlap:
            raise SegmenterTrainError(f"sequences {sorted(overlap)} are both trained on and held out")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        values["val_sequences"] = list(self.val_sequences)
        values["train_sequences"] = list(self.train_sequences) if self.train_sequences is not None else None
        values["model"] = self.model.to_dict()
        return values


@dataclass
class SegmenterTrainResult:
    """What a run wrote and scored: the segmenter folder, the step reached, the held-out figures."""

    segmenter_dir: Path
    step: int
    schedule_steps: int
    train_seconds: float
    val: dict[str, Any] | None
    train_frames: int
    val_frames: int
    logs_dir: Path


def _split(config: SegmenterTrainConfig) -> tuple[list, list]:
    sequences = scan_dataset(config.data)
    names = [seq.name for seq in sequences]
    unknown = [name for name in (*config.val_sequences, *(config.train_sequences or ())) if name not in names]
    if unknown:
        raise SegmenterTrainError(f"--data {config.data} has no sequence {', '.join(unknown)}; it holds {', '.join(names)}")
    held_out = set(config.val_sequences)
    chosen = set(config.train_sequences) if config.train_sequences is not None else set(names) - held_out
    train = [seq for seq in sequences if seq.name in chosen]
    val = [seq for seq in sequences if seq.name in held_out]
    if not train:
        raise SegmenterTrainError(f"no sequence left to train on in {config.data} once {sorted(held_out)} are held out")
    return train, val


def class_weights(bank: FrameBank, kind: str) -> torch.Tensor | None:
    """(19,) float32 loss weights: None, or 1/sqrt(pixel share) normalised to mean 1 over seen classes."""
    if kind == "none":
        return None
    counts = bank.class_pixel_counts().astype(np.float64)
    seen = counts > 0
    weights = np.zeros(NUM_CLASSES)
    weights[seen] = 1.0 / np.sqrt(counts[seen] / counts.sum())
    weights[seen] /= weights[seen].mean()
    return torch.tensor(weights, dtype=torch.float32)


def evaluate_bank(model: Segmenter, bank: FrameBank, batch_size: int = 4) -> dict[str, Any]:
    """SegmentationScores.summary() of the model on every frame of `bank` (at the bank's size)."""
    scores = SegmentationScores()
    for start in range(0, len(bank), batch_size):
        predictions = predict_train_ids(model, list(bank.rgb[start:start + batch_size]), batch_size)
        for prediction, target in zip(predictions, bank.train_ids[start:start + batch_size]):
            scores.update(prediction, target)
    model.train()
    return scores.summary()


def _lr_at(config: SegmenterTrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _save_state(out: Path, model: Segmenter, optimizer: torch.optim.Optimizer, step: int,
                elapsed: float, config: SegmenterTrainConfig) -> None:
    latest = out / LATEST
    staging = latest.with_name("latest.partial")
    shutil.rmtree(staging, ignore_errors=True)
    save_segmenter(model, staging, {"step": step})
    tensors, meta = flatten_optimizer("adam", optimizer)
    save_file(tensors, str(staging / "optimizer.safetensors"))
    (staging / "trainer_state.json").write_text(json.dumps(
        {"step": step, "train_seconds": elapsed, "optimizer": meta, "config": config.to_dict()}, indent=2) + "\n")
    # Swap whole folders so a crash leaves either the old state or the new one, never a mix.
    previous = latest.with_name("latest.old")
    shutil.rmtree(previous, ignore_errors=True)
    if latest.exists():
        latest.rename(previous)
    staging.rename(latest)
    shutil.rmtree(previous, ignore_errors=True)


def _resume(out: Path, config: SegmenterTrainConfig, optimizer_factory) -> tuple[Segmenter, Any, int, float] | None:
    latest = out / LATEST
    if not (config.resume and (latest / "trainer_state.json").is_file()):
        return None
    saved, _ = read_segmenter_config(latest)
    if saved != config.model:
        raise SegmenterTrainError(f"{latest} holds a segmenter of another shape ({saved}); use the same model "
                                  "options, another --out, or --no-resume")
    model = load_segmenter(latest)
    model.train()
    state = json.loads((latest / "trainer_state.json").read_text())
    optimizer = optimizer_factory(model)
    restore_optimizer("adam", optimizer, load_file(str(latest / "optimizer.safetensors")), state["optimizer"])
    return model, optimizer, int(state["step"]), float(state.get("train_seconds", 0.0))


def train_segmenter(config: SegmenterTrainConfig, progress: bool = True) -> SegmenterTrainResult:
    """Train (or resume) per `config`; writes OUT/segmenter, OUT/checkpoints, OUT/tensorboard, OUT/val_metrics.json."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    config.validate()
    train_sequences, val_sequences = _split(config)
    out = Path(config.out_dir)
    with torch_threads(config.threads):
        torch.manual_seed(config.seed)

        def make_optimizer(model: Segmenter) -> torch.optim.Optimizer:
            return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

        resumed = _resume(out, config, make_optimizer)
        if resumed is None:
            model = Segmenter(config.model)
            optimizer, step, elapsed = make_optimizer(model), 0, 0.0
        else:
            model, optimizer, step, elapsed = resumed
            log.info("resuming %s at step %d", out, step)
        width, height = config.model.input_width, config.model.input_height
        frames = sum(len(seq) for seq in train_sequences + val_sequences)
        with tqdm(total=frames, desc="decoding frames", unit="frame", disable=not progress) as bar:
            train_bank = load_frame_bank(train_sequences, width, height, bar)
            val_bank = load_frame_bank(val_sequences, width, height, bar) if val_sequences else None
        weights = class_weights(train_bank, config.class_weights)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        writer = SummaryWriter(str(out / "tensorboard"))
        log.info("segmenter: %d parameters, %d train frames, %d val frames", parameter_count(model),
                 len(train_bank), len(val_bank) if val_bank else 0)
        model.train()
        val = None
        bar = tqdm(total=config.steps, initial=step, desc="segmenter", unit="step", disable=not progress)
        started = time.perf_counter() - elapsed
        last = min(config.steps, config.stop_at or config.steps)
        while step < last:
            rng = np.random.default_rng([config.seed, step])
            rgb, target = random_batch(train_bank, rng, config.batch_size, config.crop_width, config.crop_height,
                                       config.jitter)
            lr = _lr_at(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(rgb), target, weight=weights, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            writer.add_scalar("loss/cross_entropy", loss.item(), step)
            writer.add_scalar("lr", lr, step)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if val_bank is not None and (step % config.val_every == 0 or step == config.steps):
                val = evaluate_bank(model, val_bank)
                writer.add_scalar("val/miou", val["miou"] or 0.0, step)
                writer.add_scalar("val/pixel_accuracy", val["pixel_accuracy"] or 0.0, step)
                bar.set_postfix(loss=f"{loss.item():.3f}", val_miou=f"{val['miou']:.3f}")
            if step % config.checkpoint_every == 0 or step == last:
                _save_state(out, model, optimizer, step, time.perf_counter() - started, config)
        bar.close()
        seconds = time.perf_counter() - started
        if val is None and val_bank is not None and step == config.steps:
            val = evaluate_bank(model, val_bank)
        metadata = {
            "data": str(config.data),
            "train_sequences": [seq.name for seq in train_sequences],
            "val_sequences": [seq.name for seq in val_sequences],
            "train_frames": len(train_bank),
            "steps": step,
            "schedule_steps": config.steps,
            "train_seconds": round(seconds, 1),
            "threads": config.threads,
            "parameters": parameter_count(model),
            "train_config": config.to_dict(),
            "val": {key: val[key] for key in ("miou", "pixel_accuracy", "per_class_iou")} if val else None,
        }
        segmenter_dir = save_segmenter(model, out / "segmenter", metadata)
        if val is not None:
            (out / "val_metrics.json").write_text(json.dumps(val, indent=2) + "\n")
        writer.close()
    return SegmenterTrainResult(segmenter_dir, step, config.steps, seconds, val, len(train_bank),
                                len(val_bank) if val_bank else 0, out / "tensorboard")

