"""Training schedules by optimisation step: spatial (coarse to fine scales) and temporal (clip length).

Spatial, as in vid2vid: train the coarsest scale alone at its own resolution, then add the next finer
scale every `steps_per_scale` steps (0: every scale from the start); right after a scale is added it may train alone for
`finest_alone_steps` steps (vid2vid's niter_fix_global) while the coarser scales stay frozen.
Temporal: the clip length starts at `initial_length` and doubles every `double_every` steps up to
`max_length` (vid2vid's niter_step).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpatialStage:
    """What trains at one step: how many scales run, and whether only the finest of them learns."""

    active_scales: int
    finest_alone: bool
    downsample: int  # the training resolution is the full crop divided by this


@dataclass
class SpatialCurriculum:
    """Adds finer generator scales on a schedule."""

    num_scales: int = 1
    steps_per_scale: int = 0
    finest_alone_steps: int = 0

    def __post_init__(self) -> None:
        if self.num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {self.num_scales}")
        if self.steps_per_scale < 0:
            raise ValueError("steps_per_scale must be >= 0 (0: every scale from the start)")
        if self.finest_alone_steps < 0:
            raise ValueError("finest_alone_steps must be >= 0")

    def stage(self, step: int) -> SpatialStage:
        """The stage at optimisation step `step` (0-based)."""
        if self.num_scales == 1 or self.steps_per_scale == 0:
            return SpatialStage(self.num_scales, False, 1)
        active = min(self.num_scales, 1 + step // self.steps_per_scale)
        since_added = step - (active - 1) * self.steps_per_scale
        alone = active > 1 and since_added < self.finest_alone_steps
        return SpatialStage(active, alone, 2 ** (self.num_scales - active))


@dataclass
class TemporalCurriculum:
    """Clip length doubles every `double_every` steps (0: never), from `initial_length` to `max_length`."""

    initial_length: int = 4
    max_length: int = 8
    double_every: int = 0

    def __post_init__(self) -> None:
        if self.initial_length < 1 or self.max_length < self.initial_length:
            raise ValueError(
                f"need 1 <= initial_length <= max_length, got {self.initial_length} and {self.max_length}")
        if self.double_every < 0:
            raise ValueError("double_every must be >= 0")

    def clip_length(self, step: int) -> int:
        """Frames per training clip at step `step`."""
        if self.double_every == 0:
            return self.initial_length
        return min(self.max_length, self.initial_length * 2 ** (step // self.double_every))
