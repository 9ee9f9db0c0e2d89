"""`carla-neural worker`: serve the renderer over ZeroMQ (the same command as `python -m renderer.worker`)."""

from renderer.worker import command

__all__ = ["command"]
