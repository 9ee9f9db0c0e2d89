"""vid2vid renderer: generator, checkpoints, engines, wire protocol, worker and training.

This package never imports pygame or carla, so that a worker host needs only it and torch.
"""

__version__ = "0.1.0"
