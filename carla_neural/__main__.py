"""`python -m carla_neural` runs the `carla-neural` command."""

from carla_neural.cli import main

main(prog_name="carla-neural")
