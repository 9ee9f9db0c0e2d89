"""CARLA 0.9.14+ semantic tags and the built-in world's surface materials."""

from __future__ import annotations

import numpy as np

UNLABELED = 0
ROAD = 1
SIDEWALK = 2
BUILDING = 3
WALL = 4
FENCE = 5
POLE = 6
TRAFFIC_LIGHT = 7
TRAFFIC_SIGN = 8
VEGETATION = 9
TERRAIN = 10
SKY = 11
PEDESTRIAN = 12
CAR = 14
TRUCK = 15
BUS = 16
ROAD_LINE = 24
GROUND = 25
GUARD_RAIL = 28

# Ground materials (the ground map stores these); each maps to one tag and one base colour.
GROUND_GRASS = 0
GROUND_ASPHALT = 1
GROUND_LINE_WHITE = 2
GROUND_LINE_YELLOW = 3
GROUND_SIDEWALK = 4
GROUND_DIRT = 5
GROUND_CURB = 6

GROUND_MATERIAL_TAGS = np.array([TERRAIN, ROAD, ROAD_LINE, ROAD_LINE, SIDEWALK, GROUND, SIDEWALK], np.uint8)
GROUND_MATERIAL_RGB = np.array(
    [
        [88, 112, 56],  # grass
        [78, 78, 82],  # asphalt
        [215, 215, 210],  # white paint
        [220, 180, 60],  # yellow paint
        [150, 146, 140],  # sidewalk slabs
        [120, 100, 78],  # dirt
        [175, 172, 165],  # curb stone
    ],
    np.float32,
) / 255.0

# Surface materials of boxes: they decide the texture the shader applies.
MAT_PLAIN = 0
MAT_FACADE = 1
MAT_CAR_BODY = 2
MAT_GLASS = 3
MAT_FOLIAGE = 4
MAT_SKIN = 5
MAT_LIGHT = 6
MAT_METAL = 7
MAT_CLOTH = 8
MAT_BARK = 9
MAT_CONCRETE = 10
