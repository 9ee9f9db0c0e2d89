"""Calibrate the label transform on the reference statistics and a simulator recording.

`python -m domain_adapt.calibrate SIM [--out carla_neural/assets/label_transform.json]`

- class map: every labelId the reference never holds goes to its plausible class
  (`transform.PLAUSIBLE_CLASS`);
- speck classes: the classes with more small regions per frame in SIM than in the reference;
- median kernel, roughening amplitude and minimum region size: the grid point whose transformed maps score lowest on

    score = |log(boundary share ratio)| + 10 * |jaggedness difference| + region-size JS
            + sum over classes |small regions/frame sim - ref| / sum ref.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from domain_adapt.gap import DEFAULT_REFERENCE, compare, load_stats
from domain_adapt.measure import measure_sequences
from domain_adapt.sequences import find_sequences
from carla_neural.label_transform import CALIBRATED_CONFIG, PLAUSIBLE_CLASS, LabelTransform, LabelTransformConfig

MEDIAN_KERNELS = (0, 3)
JITTERS_PX = (0.0, 1.0, 2.0, 3.0)
MIN_REGIONS_PX = (0, 16)


def boundary_score(gap: dict[str, Any]) -> float:
    """Lower is closer: the rule in the module docstring."""
    boundaries = gap["boundaries"]
    share = boundaries["boundary_share"]
    jagged = boundaries["jaggedness"]
    per_class = boundaries["small_regions_per_class"].values()
    reference_total = sum(row["reference"] or 0.0 for row in per_class) or 1.0
    small = sum(abs((row["sim"] or 0.0) - (row["reference"] or 0.0)) for row in per_class) / reference_total
    return (abs(math.log(share["sim"] / share["reference"])) + 10 * abs(jagged["sim"] - jagged["reference"])
            + (boundaries["region_area_js_divergence"] or 0.0) + small)


def calibrate(sim: Path, reference_path: Path = DEFAULT_REFERENCE) -> dict[str, Any]:
    """The calibrated config and every grid point's score."""
    reference = load_stats(reference_path)
    sequences = find_sequences(sim)
    plain = measure_sequences(sequences, progress=False)
    reference_ids = {int(k) for k in reference["class_pixels"]}
    # Every class the reference lacks, not only those in SIM: CARLA towns hold more than the built-in world.
    class_map = {source: target for source, target in PLAUSIBLE_CLASS.items() if source not in reference_ids}
    small = compare(plain, reference)["boundaries"]["small_regions_per_class"]
    speck_classes = sorted(row["label_id"] for row in small.values()
                           if (row["sim"] or 0.0) > (row["reference"] or 0.0) and row["label_id"] in reference_ids)
    grid = []
    for kernel, jitter, min_region in itertools.product(MEDIAN_KERNELS, JITTERS_PX, MIN_REGIONS_PX):
        config = LabelTransformConfig(class_map=class_map, median_kernel=kernel, jitter_px=jitter,
                                      min_region_px=min_region, speck_classes=speck_classes)
        document = measure_sequences(sequences, LabelTransform(config), progress=False)
        score = boundary_score(compare(document, reference))
        grid.append({"median_kernel": kernel, "jitter_px": jitter, "min_region_px": min_region,
                     "score": round(score, 4)})
        print(f"median {kernel} jitter {jitter} min region {min_region}: score {score:.4f}", flush=True)
    best = min(grid, key=lambda row: row["score"])
    config = LabelTransformConfig(class_map=class_map, median_kernel=best["median_kernel"],
                                  jitter_px=best["jitter_px"], min_region_px=best["min_region_px"],
                                  speck_classes=speck_classes)
    return {
        "config": config.model_dump(),
        "calibration": {"sim": str(sim), "reference": reference.get("origin", {}).get("description", ""),
                        "date": datetime.date.today().isoformat(),
                        "command": "python -m domain_adapt.calibrate " + shlex.join(sys.argv[1:]),
                        "grid": grid},
    }


def main() -> None:
    """Calibrate and write the config JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sim", type=Path, help="simulator run folder (record output with label PNGs)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out", type=Path, default=CALIBRATED_CONFIG)
    args = parser.parse_args()
    result = calibrate(args.sim, args.reference)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    config = result["config"]
    print(f"calibrated: median {config['median_kernel']}, jitter {config['jitter_px']} px, min region {config['min_region_px']} px, "
          f"specks of {config['speck_classes']}, class map {config['class_map']} -> {args.out}")


if __name__ == "__main__":
    main()
