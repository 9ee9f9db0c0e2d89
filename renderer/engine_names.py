"""Engine names, the one list of them: torch-free, so that option parsers and the scenario schema
check a name without importing torch (``renderer.engines`` builds the engines themselves)."""

from __future__ import annotations

ENGINE_NAMES = ("torch", "torch-fp16", "torch-bf16", "compile", "onnx", "openvino", "tensorrt")
# "auto" names no back end of its own: `renderer.engines.pick_engine` turns it into one of ENGINE_NAMES.
AUTO = "auto"
ENGINE_CHOICES = ENGINE_NAMES + (AUTO,)
# What a live run (record, drive, a scenario's `rendering.engine`) may ask for: reduced precision
# is left to `bench` and `render`, where its frames are compared with fp32.
LIVE_ENGINES = ("torch", "compile", "onnx", "openvino", "tensorrt", AUTO)
