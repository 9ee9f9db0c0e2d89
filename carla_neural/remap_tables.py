"""CARLA semantic tag schemes, by name: tag value -> (CARLA tag name, Cityscapes label name).

The Cityscapes side is a label *name* from cityscapesscripts' `helpers/labels.py`; ids, trainIds
and colours are looked up there (see `carla_neural.remap`), never typed in here.
"""

from __future__ import annotations

import re

# CARLA 0.9.14 and later (0.9.16, 0.10): tags 1..19 follow the Cityscapes trainId order.
SCHEME_0_9_14: dict[int, tuple[str, str]] = {
    0: ("unlabeled", "unlabeled"),
    1: ("roads", "road"),
    2: ("sidewalks", "sidewalk"),
    3: ("building", "building"),
    4: ("wall", "wall"),
    5: ("fence", "fence"),
    6: ("pole", "pole"),
    7: ("traffic light", "traffic light"),
    8: ("traffic sign", "traffic sign"),
    9: ("vegetation", "vegetation"),
    10: ("terrain", "terrain"),
    11: ("sky", "sky"),
    12: ("pedestrian", "person"),
    13: ("rider", "rider"),
    14: ("car", "car"),
    15: ("truck", "truck"),
    16: ("bus", "bus"),
    17: ("train", "train"),
    18: ("motorcycle", "motorcycle"),
    19: ("bicycle", "bicycle"),
    20: ("static", "static"),
    21: ("dynamic", "dynamic"),
    # "other" and "water" have no Cityscapes twin; override them from YAML if a model wants otherwise.
    22: ("other", "unlabeled"),
    23: ("water", "unlabeled"),
    # Lane markings are part of the road surface in Cityscapes.
    24: ("road lines", "road"),
    25: ("ground", "ground"),
    26: ("bridge", "bridge"),
    27: ("rail track", "rail track"),
    28: ("guard rail", "guard rail"),
}

# CARLA up to 0.9.13: a different order, and one "vehicles" tag for cars, trucks and buses.
SCHEME_0_9_13: dict[int, tuple[str, str]] = {
    0: ("unlabeled", "unlabeled"),
    1: ("building", "building"),
    2: ("fence", "fence"),
    3: ("other", "unlabeled"),
    4: ("pedestrian", "person"),
    5: ("pole", "pole"),
    6: ("road line", "road"),
    7: ("road", "road"),
    8: ("sidewalk", "sidewalk"),
    9: ("vegetation", "vegetation"),
    10: ("vehicles", "car"),
    11: ("wall", "wall"),
    12: ("traffic sign", "traffic sign"),
    13: ("sky", "sky"),
    14: ("ground", "ground"),
    15: ("bridge", "bridge"),
    16: ("rail track", "rail track"),
    17: ("guard rail", "guard rail"),
    18: ("traffic light", "traffic light"),
    19: ("static", "static"),
    20: ("dynamic", "dynamic"),
    21: ("water", "unlabeled"),
    22: ("terrain", "terrain"),
}

SCHEMES: dict[str, dict[int, tuple[str, str]]] = {
    "0.9.14": SCHEME_0_9_14,
    "0.9.13": SCHEME_0_9_13,
}


def scheme_for_version(version: str) -> str:
    """Name of the tag scheme a CARLA version uses: "0.9.13" for <= 0.9.13, else "0.9.14"."""
    match = re.fullmatch(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?([-.+\w]*)\s*", version)
    if match is None:
        raise ValueError(
            f"cannot read CARLA version {version!r}: expected a version such as '0.9.16' or "
            f"'0.9.13', or a scheme name ({', '.join(SCHEMES)})"
        )
    major, minor, patch = (int(part) if part else 0 for part in match.groups()[:3])
    return "0.9.13" if (major, minor, patch) <= (0, 9, 13) else "0.9.14"


def resolve_scheme(name_or_version: str) -> str:
    """A scheme name from either a scheme name or any CARLA version string ("0.9.16" -> "0.9.14")."""
    if name_or_version in SCHEMES:
        return name_or_version
    return scheme_for_version(str(name_or_version))
