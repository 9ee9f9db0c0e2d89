"""Frame sources: the built-in world, live CARLA, and replay from disk."""

from carla_neural.sources.base import EgoState, Frame, Source, VehicleControl

__all__ = ["EgoState", "Frame", "Source", "VehicleControl"]
