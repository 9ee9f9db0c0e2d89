"""Image and video metrics shared by `carla-neural compare` and `carla-neural evaluate`.

Pure numpy / OpenCV / torch; never imports pygame or carla. See docs/notes/metrics-api.md.
"""

from renderer.metrics.class_color import ClassColorStats
from renderer.metrics.fid import FeatureStats, fid, frechet_distance, kid, kid_from_stats
from renderer.metrics.inception import InceptionFeatures, InceptionStream, inception_weights_path
from renderer.metrics.psnr import psnr
from renderer.metrics.temporal import (
    TemporalFlowDifference,
    WarpingErrorStream,
    backward_warp,
    dis_flow,
    flow_difference,
    label_consistency_mask,
    warping_error,
)

__all__ = [
    "ClassColorStats",
    "FeatureStats",
    "InceptionFeatures",
    "InceptionStream",
    "TemporalFlowDifference",
    "WarpingErrorStream",
    "backward_warp",
    "dis_flow",
    "fid",
    "flow_difference",
    "frechet_distance",
    "inception_weights_path",
    "kid",
    "kid_from_stats",
    "label_consistency_mask",
    "psnr",
    "warping_error",
]
