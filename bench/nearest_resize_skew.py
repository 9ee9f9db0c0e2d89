"""How far OpenCV's INTER_NEAREST and the renderer's pixel-centre rule disagree on real label maps.

    python bench/nearest_resize_skew.py [DATA_DIR]

DATA_DIR holds Cityscapes video in NVIDIA's vid2vid layout (train_A, train_inst); the default is
../shared/data/cityscapes-sequences beside the checkout, or $CARLA_NEURAL_CITYSCAPES. Reads every
6th frame of seq0000..seq0003 and prints, per output size, the share of label pixels and of
instance-edge pixels on which the two rules differ (docs/performance.md, "Nearest resize").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from renderer.edges import instance_edges
from renderer.resize import resize_nearest


def main(argv: list[str]) -> int:
    """Print the table; 1 when the data is missing."""
    default = os.environ.get("CARLA_NEURAL_CITYSCAPES",
                             str(Path(__file__).resolve().parents[1] / "../shared/data/cityscapes-sequences"))
    data = Path(argv[0] if argv else default)
    labels = sorted(data.glob("train_A/seq000[0-3]/*.png"))[::6]
    if not labels:
        print(f"no label maps under {data}/train_A/seq0000..3: give the Cityscapes sequences folder")
        return 1
    print(f"{len(labels)} label maps from {data}")
    for width, height in ((1024, 512), (512, 256), (256, 128)):
        label_share, edge_share = [], []
        for path in labels:
            label_ids = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            corner = cv2.resize(label_ids, (width, height), interpolation=cv2.INTER_NEAREST)
            label_share.append(float((corner != resize_nearest(label_ids, width, height)).mean()))
            instance_path = data / "train_inst" / path.parent.name / path.name
            instance_ids = cv2.imread(str(instance_path), cv2.IMREAD_UNCHANGED).astype(np.int32)
            corner_edges = instance_edges(cv2.resize(instance_ids, (width, height), interpolation=cv2.INTER_NEAREST))
            edge_share.append(float((corner_edges != instance_edges(resize_nearest(instance_ids, width, height))).mean()))
        print(f"{width}x{height}: label pixels differ {100 * np.mean(label_share):.2f} % (max "
              f"{100 * np.max(label_share):.2f} %), instance edges {100 * np.mean(edge_share):.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
