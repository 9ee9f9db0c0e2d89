#!/usr/bin/env bash
# The figures the README quotes, one after another. Run on an otherwise idle machine from the repo root.
# NVIDIA's code is not part of this repository: clone NVIDIA/vid2vid into external/vid2vid first
# (the last step is skipped without it).
set -x
date
.venv/bin/carla-neural bench --configs lite --engines torch,onnx,compile --sizes 512x256 --threads 2 --frames 30 --no-paper --json runs/bench/lite.json
OMP_NUM_THREADS=1 .venv/bin/carla-neural bench-world
.venv/bin/carla-neural bench-transport --frames 200
.venv/bin/carla-neural bench-stages --checkpoint bundled --json runs/bench/stages.json
if [ -d external/vid2vid ]; then
  .venv/bin/python bench/nvidia_reference.py --vid2vid external/vid2vid --config nvidia_1024_g1 --size 512x256 \
    --steps 4 --threads 2 --engines torch,onnx --json runs/bench/nvidia.json
fi
date
