"""vid2vid generator family with NVIDIA's parameter layout (see docs/notes/renderer-api.md)."""

from renderer.model.composite import CompositeGenerator, CompositeLocalGenerator, ScaleOutput
from renderer.model.config import PRESETS, GeneratorConfig, SingleGConfig, preset
from renderer.model.generator import Vid2VidGenerator, build_generator
from renderer.model.norm import FrameStatNorm2d, set_norm_mode
from renderer.model.warp import warp

__all__ = [
    "PRESETS",
    "CompositeGenerator",
    "CompositeLocalGenerator",
    "FrameStatNorm2d",
    "GeneratorConfig",
    "ScaleOutput",
    "SingleGConfig",
    "Vid2VidGenerator",
    "build_generator",
    "preset",
    "set_norm_mode",
    "warp",
]
