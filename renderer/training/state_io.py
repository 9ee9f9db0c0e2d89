"""Training state in safetensors + JSON (no pickle in our files): optimizers, module weights, RNG, and
the atomic `checkpoints/latest` folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def flatten_optimizer(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (for safetensors) and JSON-ready metadata."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}.state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    meta = {"param_groups": state_dict["param_groups"], "scalars": scalars}
    return tensors, meta


def restore_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                      meta: dict[str, Any]) -> None:
    """Load what `flatten_optimizer` wrote back into `optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}.state."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(index), {})[field] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


TRAINING_TENSORS = "training.safetensors"
TRAINING_META = "training.json"


def write_training_state(folder: Path, modules: dict[str, nn.Module | None],
                         optimizers: dict[str, torch.optim.Optimizer | None], meta: dict[str, Any]) -> None:
    """Write `folder/training.safetensors` (module weights, optimizer tensors, torch RNG) and
    `folder/training.json` (`meta` plus the optimizers' scalars); None entries are left out."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        if module is not None:
            tensors.update({f"{name}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    meta = {**meta, "optimizers": {}}
    for name, optimizer in optimizers.items():
        if optimizer is not None:
            opt_tensors, opt_meta = flatten_optimizer(name, optimizer)
            tensors.update(opt_tensors)
            meta["optimizers"][name] = opt_meta
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(folder / TRAINING_TENSORS))
    (folder / TRAINING_META).write_text(json.dumps(meta, indent=1))


def read_training_state(folder: Path, modules: dict[str, nn.Module | None],
                        optimizers: dict[str, torch.optim.Optimizer | None]) -> dict[str, Any]:
    """Load what `write_training_state` wrote into `modules` and `optimizers` (None entries and
    optimizers the file lacks are skipped), restore the torch RNG; returns the metadata."""
    meta = json.loads((folder / TRAINING_META).read_text())
    tensors = load_file(str(folder / TRAINING_TENSORS))
    for name, module in modules.items():
        if module is not None:
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        if optimizer is not None and name in meta["optimizers"]:
            restore_optimizer(name, optimizer, tensors, meta["optimizers"][name])
    torch.set_rng_state(tensors["rng.torch"])
    return meta


def publish_checkpoint(root: Path, step: int, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a staging folder under `root`, then make it `root/latest` atomically (a
    crash leaves the previous `latest` whole); returns `root/latest`."""
    staging = root / f".staging_{step}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    write(staging)
    latest = root / "latest"
    previous = root / ".latest_old"
    if latest.exists():
        latest.rename(previous)
    staging.rename(latest)
    if previous.exists():
        shutil.rmtree(previous)
    return latest
