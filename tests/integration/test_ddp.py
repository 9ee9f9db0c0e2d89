"""DistributedDataParallel wiring on CPU: 2 processes (gloo), a few steps, equal parameters on both ranks."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from renderer.model.config import GeneratorConfig, SingleGConfig

TINY = GeneratorConfig(ngf=8, n_downsampling=2, n_blocks=1, n_blocks_local=1, n_scales=2,
                       single_g=SingleGConfig(ngf=4, n_downsampling=2, n_blocks=1))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, data: str, model: str, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from renderer.training.config import TrainConfig
    from renderer.training.trainer import Trainer

    config = TrainConfig(datasets=[data], crop_width=64, crop_height=32, model=model, steps=3, clip_length=4,
                         max_clip_length=4, d_channels=8, d_layers=2, d_scales=1, temporal_strides=1,
                         out_dir=out, device="cpu", save_every=2, image_every=1000).validate()
    trainer = Trainer(config)
    assert trainer.dist.world_size == world_size and trainer.dist.rank == rank
    first_batch = next(trainer._batches(0))[1]
    trainer.train(progress=False)
    tensors = {f"G.{k}": v.contiguous() for k, v in trainer.generator.state_dict().items()}
    tensors.update({f"D.{k}": v.contiguous() for k, v in trainer.image_d.state_dict().items()})
    tensors["first_clip_rgb"] = first_batch["rgb"].contiguous()
    save_file(tensors, str(Path(out) / f"rank{rank}.safetensors"))
    trainer.close()


@pytest.mark.slow
def test_two_gloo_ranks_train_in_step(tmp_path) -> None:
    from carla_neural.dataset_export import ExportConfig, export_dataset

    data = tmp_path / "data"
    export_dataset(ExportConfig(out=str(data), world="builtin", sequences=2, frames=5, width=64, height=32, seed=5,
                                warmup=2))
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps({"generator": TINY.to_dict()}))
    out = tmp_path / "run"
    out.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(model), str(out)), nprocs=2, join=True)
    rank0 = load_file(str(out / "rank0.safetensors"))
    rank1 = load_file(str(out / "rank1.safetensors"))
    # Each rank drew its own clips...
    assert not torch.equal(rank0.pop("first_clip_rgb"), rank1.pop("first_clip_rgb"))
    # ...and gradients were averaged, so the weights stayed identical.
    for key in rank0:
        assert torch.allclose(rank0[key], rank1[key], atol=1e-6), key
    assert (out / "generator" / "model.safetensors").is_file()
    assert json.loads((out / "checkpoints" / "latest" / "training.json").read_text())["step"] == 3
