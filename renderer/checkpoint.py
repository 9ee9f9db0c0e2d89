"""Checkpoints: our format (``model.safetensors`` + ``config.json``) and NVIDIA's vid2vid folders.

Loading is strict in both cases: every key of the file is used and every parameter and buffer of
the model is filled, with matching shapes, or a ``CheckpointError`` lists what is missing,
unexpected or mis-shaped. Two buffers are optional because nothing ever reads them and old
PyTorch versions did not write them: BatchNorm's ``num_batches_tracked``, and the running
statistics of the single-image generator's instance norms (always normalised per frame).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from renderer.checkpoint_ref import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, is_our_checkpoint
from renderer.model.config import ConfigError, GeneratorConfig, SingleGConfig, describe_validation_error
from renderer.model.generator import Vid2VidGenerator
from renderer.model.norm import InstanceNormNoAffine

log = logging.getLogger(__name__)

FORMAT_NAME = "carla-neural/vid2vid-generator"
FORMAT_VERSION = 1
NVIDIA_SCALE_FILE = "latest_net_G{scale}.pth"
NVIDIA_SINGLE_DIR = "label2city_single"
NVIDIA_SINGLE_FILES = ("latest_net_G_2048.pth", "latest_net_G_1024.pth", "latest_net_G_512.pth")

StateDict = Mapping[str, torch.Tensor]
# A checkpoint's config.json is under 1 KB; anything far larger is not one (and is not parsed).
MAX_CONFIG_BYTES = 1 << 20
# The largest working side a checkpoint may ask for (the cameras' limit too).
MAX_WORKING_SIDE = 4096


# --------------------------------------------------------------------------- strict loading


def _optional_keys(module: nn.Module) -> set[str]:
    optional = set()
    for name, layer in module.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(layer, nn.modules.batchnorm._NormBase):
            optional.add(prefix + "num_batches_tracked")
        if isinstance(layer, InstanceNormNoAffine):
            optional.update(prefix + key for key in ("running_mean", "running_var"))
    return optional


def _listing(title: str, items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit]) + (f", … ({len(items) - limit} more)" if len(items) > limit else "")
    return f"  {title} ({len(items)}): {shown}"


def _mismatch_report(
    module: nn.Module, shapes: Mapping[str, tuple[int, ...]], source: str
) -> str | None:
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    optional = _optional_keys(module)
    missing = [key for key in expected if key not in shapes and key not in optional]
    unexpected = [key for key in shapes if key not in expected]
    mismatched = [
        f"{key} file {shapes[key]} vs model {expected[key]}"
        for key in expected
        if key in shapes and tuple(shapes[key]) != expected[key]
    ]
    if not (missing or unexpected or mismatched):
        return None
    lines = [f"{source} does not match the {type(module).__name__} it was loaded into:"]
    if missing:
        lines.append(_listing("missing keys", missing))
    if unexpected:
        lines.append(_listing("unexpected keys", unexpected))
    if mismatched:
        lines.append(_listing("shape mismatches", mismatched))
    lines.append(
        "  Is this the right file for this model (scale order, preset, single-image "
        "generator size)? Nothing was loaded."
    )
    return "\n".join(lines)


def strict_load(module: nn.Module, state_dict: StateDict, source: str) -> None:
    """Load ``state_dict`` into ``module``, requiring every key and shape to match (see module doc).

    Raises CheckpointError listing missing, unexpected and mis-shaped keys.
    """
    report = _mismatch_report(module, {key: tuple(value.shape) for key, value in state_dict.items()}, source)
    if report is not None:
        raise CheckpointError(report)
    expected = module.state_dict()
    filled = {key: value for key, value in state_dict.items()}
    for key in _optional_keys(module):
        if key not in filled:
            filled[key] = expected[key]
    module.load_state_dict(filled, strict=True)


# --------------------------------------------------------------------------- our format


def save_checkpoint(
    generator: Vid2VidGenerator, folder: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.json``; returns the folder."""
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator": generator.config.to_dict(),
        "metadata": metadata or {},
    }
    return write_weights_and_config(generator, folder, config)


def write_weights_and_config(module: nn.Module, folder: str | Path, config: dict[str, Any]) -> Path:
    """Write ``module``'s state dict to ``folder/model.safetensors`` and ``config`` (with a "format") to config.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    # Write to temporary names first so that a crash never leaves a half-written checkpoint.
    weights_tmp = folder / (WEIGHTS_FILE + ".partial")
    config_tmp = folder / (CONFIG_FILE + ".partial")
    save_file(tensors, str(weights_tmp), metadata={"format": config["format"]})
    config_tmp.write_text(json.dumps(config, indent=2) + "\n")
    weights_tmp.replace(folder / WEIGHTS_FILE)
    config_tmp.replace(folder / CONFIG_FILE)
    return folder


class _Metadata(BaseModel):
    """What we read from ``metadata``; other keys are free-form notes and kept as they are."""

    model_config = ConfigDict(extra="allow")

    working_size: (
        tuple[
            Annotated[int, Strict(), Field(ge=1, le=MAX_WORKING_SIDE)],
            Annotated[int, Strict(), Field(ge=1, le=MAX_WORKING_SIDE)],
        ]
        | None
    ) = None
    # The model a `train --styles-only` run added styles to (renderer.styles.StyleBank.frozen_base).
    styles_added_to: Annotated[str, Strict()] | None = None


class _DocumentHeader(BaseModel):
    """The fields every config.json of ours starts with; the rest is the format's own."""

    model_config = ConfigDict(extra="allow")

    format: str
    format_version: Annotated[int, Strict(), Field(ge=1)] = 1


class _ConfigDocument(_DocumentHeader):
    """A generator's config.json: the header, the generator fields, and metadata."""

    generator: dict[str, Any]
    metadata: _Metadata = Field(default_factory=_Metadata)


_JSON_OBJECT = TypeAdapter(dict[str, Any])
_FIX = "fix that field, or re-export the checkpoint with `carla-neural convert` / training"


def read_config_document(folder: str | Path, format_name: str, format_version: int) -> dict[str, Any]:
    """``folder/config.json`` as a dict, checked to be a JSON object of ``format_name`` at most
    ``format_version`` (size and nesting bounded); CheckpointError names the file and the field."""
    path = Path(folder) / CONFIG_FILE
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CheckpointError(
                f"{path} is {size} bytes; a checkpoint config.json is a few KB: this is not one"
            )
        text = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error}") from error
    try:
        # pydantic's JSON parser bounds nesting depth (a deeply nested file is an error, not a
        # RecursionError).
        raw = _JSON_OBJECT.validate_json(text)
    except ValidationError as error:
        reason = "; ".join(item["msg"] for item in error.errors(include_url=False))
        raise CheckpointError(f"{path} is not a JSON object ({reason})") from None
    if raw.get("format") != format_name:
        raise CheckpointError(f"{path} is not a {format_name} config (field 'format' = {raw.get('format')!r})")
    try:
        header = _DocumentHeader.model_validate(raw)
    except ValidationError as error:
        raise CheckpointError(f"{path}: {describe_validation_error(error)}; {_FIX}") from None
    if header.format_version > format_version:
        raise CheckpointError(
            f"{path} has format_version {header.format_version}; this code reads up to "
            f"{format_version}: update carla-neural"
        )
    return raw


def read_config(folder: str | Path) -> tuple[GeneratorConfig, dict[str, Any]]:
    """The generator config and metadata of one of our checkpoint folders.

    Every field is checked (types, bounds, ``metadata.working_size`` within 1..4096) before anything
    is built; CheckpointError names the file and the field.
    """
    path = Path(folder) / CONFIG_FILE
    raw = read_config_document(folder, FORMAT_NAME, FORMAT_VERSION)
    try:
        document = _ConfigDocument.model_validate(raw)
    except ValidationError as error:
        raise CheckpointError(f"{path}: {describe_validation_error(error)}; {_FIX}") from None
    try:
        config = GeneratorConfig.from_dict(document.generator)
    except ConfigError as error:
        message = str(error).replace("field '", "field 'generator.")
        raise CheckpointError(f"{path}: {message}; {_FIX}") from None
    return config, document.metadata.model_dump(exclude_none=True)


def _unreadable_weights(path: Path, error: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable safetensors file ({error}): it is truncated or corrupt; "
        "copy or export the checkpoint again"
    )


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading the tensors."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise _unreadable_weights(path, error) from None


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> Vid2VidGenerator:
    """Load one of our checkpoint folders (config.json + model.safetensors), strictly.

    The weights' names and shapes are compared with a model built on the meta device first, so a
    config that does not fit its weights allocates nothing.
    """
    folder = Path(folder)
    if not is_our_checkpoint(folder):
        raise CheckpointError(
            f"{folder} is not a carla-neural checkpoint: it needs {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    config, _ = read_config(folder)
    weights = folder / WEIGHTS_FILE
    shapes = _safetensors_shapes(weights)
    with torch.device("meta"):
        skeleton = Vid2VidGenerator(config)
    report = _mismatch_report(skeleton, shapes, f"{weights} (with the generator of {folder / CONFIG_FILE})")
    if report is not None:
        raise CheckpointError(report)
    state = read_weights(weights)
    generator = Vid2VidGenerator(config)
    strict_load(generator, state, str(weights))
    return generator.to(device).eval()


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (on the CPU); CheckpointError when it is truncated or corrupt."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise _unreadable_weights(Path(path), error) from None


# --------------------------------------------------------------------------- NVIDIA's format

_RESBLOCK = re.compile(r"^(?P<seq>[\w]+)\.(?P<index>\d+)\.conv_block\.")
_DIRECT_WEIGHT = re.compile(r"^(?P<seq>[\w]+)\.(?P<index>\d+)\.weight$")


def _resblock_count(state: StateDict, sequence: str) -> int:
    indices = set()
    for key in state:
        match = _RESBLOCK.match(key)
        if match and match["seq"] == sequence:
            indices.add(match["index"])
    return len(indices)


def _direct_conv_weights(state: StateDict, sequence: str) -> list[tuple[int, torch.Tensor]]:
    found = []
    for key, value in state.items():
        match = _DIRECT_WEIGHT.match(key)
        if match and match["seq"] == sequence and value.ndim == 4:
            found.append((int(match["index"]), value))
    return sorted(found, key=lambda item: item[0])


def _require(state: StateDict, key: str, source: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(
            f"{source} has no {key!r}: it is not a vid2vid/pix2pixHD generator state dict "
            f"(first keys: {list(state)[:5]})"
        )
    return state[key]


def infer_generator_config(
    scale_states: list[StateDict], single: SingleGConfig | None
) -> GeneratorConfig:
    """The GeneratorConfig that NVIDIA's ``latest_net_G{s}.pth`` state dicts were saved from."""
    coarsest = scale_states[0]
    stem = _require(coarsest, "model_down_seg.1.weight", "latest_net_G0.pth")
    ngf, input_nc = int(stem.shape[0]), int(stem.shape[1])
    output_nc = int(_require(coarsest, "model_final_img.1.weight", "latest_net_G0.pth").shape[0])
    prev_nc = int(_require(coarsest, "model_down_img.1.weight", "latest_net_G0.pth").shape[1])
    n_frames = prev_nc // output_nc + 1
    label_channels = input_nc // n_frames
    # 36 = 35 Cityscapes labelIds + an instance-edge channel (NVIDIA's street models).
    use_instance = label_channels != 35
    label_nc = label_channels - 1 if use_instance else label_channels
    n_down = sum(1 for index, _ in _direct_conv_weights(coarsest, "model_down_seg") if index != 1)
    n_blocks = _resblock_count(coarsest, "model_down_seg") + _resblock_count(coarsest, "model_res_img")
    n_blocks_local = _resblock_count(scale_states[1], "model_up_img") if len(scale_states) > 1 else 3
    return GeneratorConfig(
        ngf=ngf,
        n_downsampling=n_down,
        n_blocks=n_blocks,
        n_blocks_local=n_blocks_local,
        n_scales=len(scale_states),
        use_fg=any(key.startswith("indv_") for key in coarsest),
        label_nc=label_nc,
        use_instance=use_instance,
        n_frames=n_frames,
        output_nc=output_nc,
        single_g=single,
    )


def infer_single_config(state: StateDict, source: str = "single-image generator") -> SingleGConfig:
    """The SingleGConfig of a pix2pixHD GlobalGenerator/LocalEnhancer state dict."""
    stem = _require(state, "model.1.weight", source)
    convs = _direct_conv_weights(state, "model")
    n_blocks = _resblock_count(state, "model")
    enhancers = sorted({int(m[1]) for key in state if (m := re.match(r"^model(\d+)_1\.", key))})
    if enhancers:
        n_local = len(enhancers)
        # The global part keeps its encoder/decoder but drops its 7x7 head.
        n_down = (len(convs) - 1) // 2
        return SingleGConfig(
            kind="local",
            ngf=int(_require(state, f"model{n_local}_1.1.weight", source).shape[0]),
            n_downsampling=n_down,
            n_blocks=n_blocks,
            n_local_enhancers=n_local,
            n_blocks_local=_resblock_count(state, "model1_2"),
            label_nc=int(stem.shape[1]),
            output_nc=int(_direct_conv_weights(state, f"model{n_local}_2")[-1][1].shape[0]),
        )
    n_down = (len(convs) - 2) // 2
    return SingleGConfig(
        kind="global",
        ngf=int(stem.shape[0]),
        n_downsampling=n_down,
        n_blocks=n_blocks,
        label_nc=int(stem.shape[1]),
        output_nc=int(convs[-1][1].shape[0]),
    )


def torch_load_foreign(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a foreign ``.pth`` state dict safely (``weights_only=True``), stripping ``module.``."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for bad or unsafe files
        raise CheckpointError(
            f"cannot load {path} as plain tensors (weights_only=True): {error}"
        ) from error
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors")
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return dict(state)


def find_nvidia_scale_files(folder: str | Path) -> list[Path]:
    """``latest_net_G0.pth``, ``latest_net_G1.pth``, … present in ``folder`` (consecutive)."""
    folder = Path(folder)
    files = []
    while (folder / NVIDIA_SCALE_FILE.format(scale=len(files))).is_file():
        files.append(folder / NVIDIA_SCALE_FILE.format(scale=len(files)))
    return files


def find_single_g(folder: str | Path, config: GeneratorConfig) -> Path | None:
    """The ``label2city_single`` generator inside or beside ``folder`` that suits ``config``.

    NVIDIA pairs ``label2city_2048`` (3 downsamplings) with ``latest_net_G_2048.pth`` and
    ``label2city_1024_g1`` with ``latest_net_G_1024.pth``; otherwise the first file found.
    """
    folder = Path(folder)
    for candidate_dir in (folder / NVIDIA_SINGLE_DIR, folder.parent / NVIDIA_SINGLE_DIR):
        if not candidate_dir.is_dir():
            continue
        preferred = "latest_net_G_2048.pth" if config.n_downsampling >= 3 else "latest_net_G_1024.pth"
        for name in (preferred, *NVIDIA_SINGLE_FILES):
            if (candidate_dir / name).is_file():
                return candidate_dir / name
    return None


def load_nvidia_checkpoint(
    folder: str | Path, single_g: str | Path | None = None, device: str | torch.device = "cpu"
) -> Vid2VidGenerator:
    """Load NVIDIA's ``latest_net_G{s}.pth`` (+ a ``label2city_single`` file) strictly.

    The configuration is read from tensor shapes. ``single_g`` names the single-image generator
    file; by default it is looked for in ``label2city_single/`` inside or beside ``folder``.
    """
    folder = Path(folder)
    files = find_nvidia_scale_files(folder)
    if not files:
        raise CheckpointError(
            f"{folder} holds no {NVIDIA_SCALE_FILE.format(scale=0)}: give an NVIDIA vid2vid "
            f"checkpoint folder or one of ours ({CONFIG_FILE} + {WEIGHTS_FILE})"
        )
    states = [torch_load_foreign(path) for path in files]
    config = infer_generator_config(states, None)
    single_path = Path(single_g) if single_g is not None else find_single_g(folder, config)
    single_state = None
    if single_path is not None:
        if not single_path.is_file():
            raise CheckpointError(f"single-image generator file {single_path} does not exist")
        single_state = torch_load_foreign(single_path)
        config = infer_generator_config(states, infer_single_config(single_state, str(single_path)))
    else:
        log.warning(
            "no label2city_single generator found in or beside %s: the first frames will start "
            "from a blank history (pass single_g= / --single-g to use one)",
            folder,
        )
    try:
        config.validate()
    except ConfigError as error:
        raise CheckpointError(f"{folder}: inferred an invalid configuration: {error}") from error
    generator = Vid2VidGenerator(config)
    for scale, (path, state) in enumerate(zip(files, states)):
        strict_load(generator.scales[scale], state, str(path))
    if single_state is not None:
        assert generator.single_g is not None
        strict_load(generator.single_g, single_state, str(single_path))
    log.info("loaded NVIDIA checkpoint %s as %s", folder, config)
    return generator.to(device).eval()


def convert_nvidia_checkpoint(
    folder: str | Path, out: str | Path, single_g: str | Path | None = None
) -> Path:
    """Convert an NVIDIA vid2vid folder into our format at ``out``; returns ``out``."""
    generator = load_nvidia_checkpoint(folder, single_g)
    return save_checkpoint(
        generator,
        out,
        metadata={"converted_from": str(Path(folder).resolve()), "single_g": str(single_g or "")},
    )
