"""Mixed precision in training: bf16 on a CPU only where it is native, never emulated."""

from __future__ import annotations

import pytest
import torch

from renderer.engines.hardware import PrecisionSupport
from renderer.training import trainer
from renderer.training.trainer import amp_settings


@pytest.mark.parametrize("native", [True, False])
def test_cpu_trains_in_bf16_only_where_bf16_is_native(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(trainer, "precision_support",
                        lambda precision, device: PrecisionSupport(precision, native, "test"))
    expected = (True, torch.bfloat16) if native else (False, torch.float32)
    assert amp_settings(True, torch.device("cpu")) == expected
    assert amp_settings(False, torch.device("cpu")) == (False, torch.float32)


def test_the_trainer_autocasts_its_convolutions_to_the_chosen_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "precision_support",
                        lambda precision, device: PrecisionSupport(precision, True, "test"))
    use_amp, dtype = amp_settings(True, torch.device("cpu"))
    host = type("Host", (), {"use_amp": use_amp, "amp_dtype": dtype, "device": torch.device("cpu")})()
    conv = torch.nn.Conv2d(3, 4, 3)
    with trainer.Trainer._autocast(host):
        out = conv(torch.randn(1, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    host.use_amp = False
    with trainer.Trainer._autocast(host):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.float32
