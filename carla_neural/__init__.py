"""carla-neural: sources, remap, render client, display, recorder, compare and the CLI."""

__version__ = "0.1.0"
