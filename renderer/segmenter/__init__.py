"""A small segmentation network (RGB -> 19 Cityscapes train classes) for semantic consistency."""

from renderer.segmenter.checkpoint import BUNDLED_DIR, load_segmenter, save_segmenter
from renderer.segmenter.classes import CLASS_NAMES, NUM_CLASSES, colorize_train_ids, label_ids_to_train_ids
from renderer.segmenter.inference import predict_train_ids
from renderer.segmenter.model import Segmenter, SegmenterConfig

__all__ = [
    "BUNDLED_DIR",
    "CLASS_NAMES",
    "NUM_CLASSES",
    "Segmenter",
    "SegmenterConfig",
    "colorize_train_ids",
    "label_ids_to_train_ids",
    "load_segmenter",
    "predict_train_ids",
    "save_segmenter",
]
