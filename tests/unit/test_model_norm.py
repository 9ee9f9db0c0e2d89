"""Per-frame-statistics normalisation (NVIDIA's test-time behaviour) and ordinary BatchNorm."""

from __future__ import annotations

import torch
from torch import nn

from renderer.model.norm import FrameStatNorm2d, set_norm_mode


def make_norm(mode: str) -> FrameStatNorm2d:
    norm = FrameStatNorm2d(4, mode)  # type: ignore[arg-type]
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        norm.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
        norm.running_mean.fill_(3.0)
        norm.running_var.fill_(9.0)
    return norm


def test_frame_mode_uses_the_frames_own_statistics_and_leaves_running_stats() -> None:
    features = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 3 + 2
    norm = make_norm("frame").eval()  # eval() must not switch to running statistics
    out = norm(features)
    mean = features.mean(dim=(2, 3), keepdim=True)
    var = features.var(dim=(2, 3), unbiased=False, keepdim=True)
    expected = (features - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, 4, 1, 1) + norm.bias.view(1, 4, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)
    # The same as NVIDIA's BatchNorm left in training mode on a batch of one ...
    reference = nn.BatchNorm2d(4).train()
    reference.load_state_dict(make_norm("batch").state_dict())
    assert torch.allclose(out, reference(features), atol=1e-5)
    # ... without touching the running statistics.
    assert torch.equal(norm.running_mean, torch.full((4,), 3.0))
    assert torch.equal(norm.running_var, torch.full((4,), 9.0))


def test_frame_mode_normalises_each_sample_separately() -> None:
    features = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    features[1] = features[1] * 10 + 5
    norm = make_norm("frame")
    together = norm(features)
    assert torch.allclose(together[0:1], norm(features[0:1]), atol=1e-6)
    assert torch.allclose(together[1:2], norm(features[1:2]), atol=1e-5)


def test_batch_mode_is_ordinary_batchnorm() -> None:
    features = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(2))
    norm = make_norm("batch").train()
    reference = nn.BatchNorm2d(4).train()
    reference.load_state_dict(norm.state_dict())
    assert torch.allclose(norm(features), reference(features), atol=1e-6)
    assert torch.allclose(norm.running_mean, reference.running_mean)
    assert not torch.equal(norm.running_mean, torch.full((4,), 3.0))  # updated while training
    norm.eval()
    reference.eval()
    assert torch.allclose(norm(features), reference(features), atol=1e-6)


def test_set_norm_mode_switches_every_layer() -> None:
    model = nn.Sequential(FrameStatNorm2d(2), nn.Sequential(FrameStatNorm2d(3)))
    set_norm_mode(model, "batch")
    assert all(m.mode == "batch" for m in model.modules() if isinstance(m, FrameStatNorm2d))
    set_norm_mode(model, "frame")
    assert all(m.mode == "frame" for m in model.modules() if isinstance(m, FrameStatNorm2d))
