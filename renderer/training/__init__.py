"""Training of the vid2vid generator: datasets, flow, discriminators, losses, curriculum, trainer.

Entry points: `renderer.training.trainer.Trainer(TrainConfig)` and the CLI (`carla-neural train`,
`carla-neural train-bundled`, `carla-neural evaluate`). Imports neither pygame nor carla.
"""
