"""The sweep file format (YAML), validated with pydantic; errors name the field like scenario files do.

A sweep names a base scenario (a built-in name or a YAML path, relative to the sweep file) and
the axes to vary; every combination of axis values is one cell. Each axis sets one scenario field:
see AXES.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError, field_validator, model_validator

from scenarios.schema import ScenarioError, StrictModel, format_validation_error, read_yaml

# Axis name -> the scenario field it sets (a path into the scenario document).
AXES: dict[str, tuple[str, ...]] = {
    "weather": ("weather",),
    "seed": ("traffic", "seed"),
    "vehicles": ("traffic", "vehicles"),
    "walkers": ("traffic", "walkers"),
    "map": ("map",),
    "mount": ("cameras", "mount"),
    "checkpoint": ("rendering", "checkpoint"),
    "engine": ("rendering", "engine"),
    "frames": ("duration",),
    "layout": ("builtin", "layout"),
}


class SweepError(ScenarioError):
    """A sweep file that cannot be used; the message lists each problem by field."""


class Sweep(StrictModel):
    """One sweep: the base scenario, the axes of the grid and how each cell is recorded."""

    name: str
    scenario: str
    # Axis name -> the values it takes, in the file's order (which also orders the cells).
    axes: dict[str, list[Any]] = {}
    world: Literal["builtin", "carla"] = "builtin"
    # Frames per cell, unless `axes.frames` varies them (default: the scenario's duration).
    frames: int | None = None
    png: bool = True
    device: Literal["cpu", "cuda"] = "cpu"
    cpus_per_cell: float = 1.0
    # Further attempts for a cell whose process died (killed, lost node); 0: none.
    retries: int = 2

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("axes")
    @classmethod
    def _axes(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        unknown = sorted(str(axis) for axis in value if axis not in AXES)
        if unknown:
            raise ValueError(f"unknown axis {', '.join(unknown)}; allowed: {', '.join(AXES)}")
        for axis, values in value.items():
            if not values:
                raise ValueError(f"axis {axis} has no values; list at least one or leave it out")
            texts = [str(item) for item in values]
            if len(set(texts)) != len(texts):
                raise ValueError(f"axis {axis} lists a value twice: {values}")
        return value

    @field_validator("frames")
    @classmethod
    def _frames(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be 1 or more, got {value}")
        return value

    @field_validator("cpus_per_cell")
    @classmethod
    def _cpus(cls, value: float) -> float:
        if not 0 < value <= 256:
            raise ValueError(f"must be in (0, 256] CPUs, got {value}")
        return value

    @field_validator("retries")
    @classmethod
    def _retries(cls, value: int) -> int:
        if not 0 <= value <= 10:
            raise ValueError(f"must be in 0..10, got {value}")
        return value

    @model_validator(mode="after")
    def _engine_needs_device(self) -> "Sweep":
        if "tensorrt" in self.axes.get("engine", []) and self.device != "cuda":
            raise ValueError("axes.engine lists tensorrt, which runs on a GPU only; set device: cuda")
        return self

    @property
    def needs_gpu(self) -> bool:
        """Each cell's render worker runs on a GPU."""
        return self.device == "cuda"


def parse_sweep(document: Any, origin: str = "<sweep>") -> Sweep:
    """Validate an already-parsed YAML document; raise SweepError listing every problem."""
    if not isinstance(document, dict):
        raise SweepError(f"{origin}: a sweep is a mapping of fields (name, scenario, axes, ...), "
                         f"got {type(document).__name__}")
    try:
        return Sweep.model_validate(document)
    except ValidationError as error:
        raise SweepError(format_validation_error(error, origin, "sweep")) from None


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep YAML file (raises SweepError naming each bad field)."""
    return parse_sweep(read_yaml(path, "sweep", SweepError), str(path))
