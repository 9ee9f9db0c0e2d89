"""Compare two statistics documents (simulator vs reference): the figures of `gap.json`.

Divergences are Jensen-Shannon, base 2 (0 = same distribution, 1 = disjoint). Layout profiles are
compared by their mean absolute difference per row (0..1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from carla_neural.remap import CITYSCAPES_BY_ID
from domain_adapt.sequences import GapInputError
from domain_adapt.stats import (
    ANALYSIS_SIZE,
    AREA_BINS,
    CAR_ID,
    LABEL_SET,
    PERSON_ID,
    SMALL_REGION_PX,
    STATS_FORMAT,
    STATS_VERSION,
    hist_median,
    median_of,
)

GAP_FORMAT = "carla-neural-gap"
GAP_VERSION = 1
DEFAULT_REFERENCE = Path(__file__).parent / "reference" / "cityscapes.json"
SIZE_CLASSES = {"car": CAR_ID, "person": PERSON_ID}
# A boundary or jaggedness figure of a class needs this many pixels of it to mean anything.
MIN_CLASS_PIXELS = 1000


def class_name(label_id: int | str) -> str:
    """Cityscapes name of a labelId ("id 40" for ids outside the table)."""
    label = CITYSCAPES_BY_ID.get(int(label_id))
    return label.name if label is not None else f"id {label_id}"


def js_divergence(first: np.ndarray, second: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, 0..1) of two histograms (normalised here)."""
    p = np.asarray(first, float)
    q = np.asarray(second, float)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float(np.sum(a[keep] * np.log2(a[keep] / m[keep])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def load_stats(path: str | Path, what: str = "reference") -> dict[str, Any]:
    """A statistics document from `path` (a JSON file, or a folder holding cityscapes.json), checked."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.json"))
        if len(candidates) != 1:
            raise GapInputError(f"{what} folder {path} must hold exactly one statistics JSON "
                                f"(found {len(candidates)})")
        path = candidates[0]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GapInputError(f"{what} {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GapInputError(f"{what} {path} is not JSON ({error})") from None
    check_stats(document, path, what)
    return document


def check_stats(document: Any, path: str | Path, what: str = "reference") -> None:
    """Raise GapInputError naming `path` and the field when `document` is not comparable with ours."""
    if not isinstance(document, dict) or document.get("format") != STATS_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise GapInputError(f"{what} {path}: field 'format' is {found!r}, expected {STATS_FORMAT!r} "
                            "(make one with `carla-neural gap-reference`)")
    expected = {"version": STATS_VERSION, "label_set": LABEL_SET, "analysis_size": list(ANALYSIS_SIZE)}
    for key, value in expected.items():
        if document.get(key) != value:
            raise GapInputError(f"{what} {path}: field {key!r} is {document.get(key)!r}, this version reads "
                                f"{value!r}; rebuild it with `carla-neural gap-reference`")


def summarize(document: dict[str, Any]) -> dict[str, Any]:
    """The derived figures of one statistics document (shares, densities, rates, profiles)."""
    frames = document["frames"]
    width, height = document["analysis_size"]
    pixels = {int(k): v for k, v in document["class_pixels"].items()}
    total = sum(pixels.values())
    share = {i: n / total for i, n in pixels.items()}
    boundary = {int(k): v for k, v in document["boundary_pixels"].items()}
    contour = {int(k): v for k, v in document["contour_px"].items()}
    smooth = {int(k): v for k, v in document["smooth_contour_px"].items()}
    region_hist = {int(k): np.array(v) for k, v in document["region_area_hist"].items()}
    small_bins = int(math.log2(SMALL_REGION_PX))
    objects = document["objects"]
    temporal = document["temporal"]
    frame_px = width * height
    horizon = median_of(document["per_frame"]["horizon_row"])
    return {
        "frames": frames,
        "class_share": share,
        "boundary_share": sum(boundary.values()) / total,
        "boundary_density": {i: boundary.get(i, 0) / n for i, n in pixels.items() if n >= MIN_CLASS_PIXELS},
        "jaggedness": (sum(contour.values()) / sum(smooth.values())) if sum(smooth.values()) else None,
        "jaggedness_per_class": {i: contour[i] / smooth[i] for i in contour
                                 if smooth.get(i) and pixels.get(i, 0) >= MIN_CLASS_PIXELS},
        "small_regions_per_frame": float(np.mean(document["per_frame"]["small_regions"])),
        "small_regions_per_class": {i: float(h[:small_bins].sum()) / frames for i, h in region_hist.items()
                                    if h[:small_bins].sum()},
        "region_area_hist": sum(region_hist.values(), np.zeros(AREA_BINS)),
        "objects_from": objects["from"],
        "instances_per_frame": {int(k): v / frames for k, v in objects["count"].items()},
        "object_area_hist": {int(k): np.array(v) for k, v in objects["area_hist"].items()},
        "horizon_row": horizon,
        "horizon_fraction": None if horizon is None else horizon / height,
        "road_rows": np.array(document["rows"]["road"]),
        "sky_rows": np.array(document["rows"]["sky"]),
        "hood_rows": median_of(document["per_frame"]["hood_rows"]),
        "flicker_rate": temporal["flicker_pixels"] / (temporal["triples"] * frame_px) if temporal["triples"] else None,
        "change_rate": temporal["changed_pixels"] / (temporal["pairs"] * frame_px) if temporal["pairs"] else None,
    }


def _pair(sim: float | None, reference: float | None, digits: int = 5) -> dict[str, Any]:
    def rounded(value: float | None, places: int = digits) -> float | None:
        return None if value is None or not math.isfinite(value) else round(float(value), places)

    pair = {"sim": rounded(sim), "reference": rounded(reference)}
    if sim is not None and reference:
        pair["ratio"] = rounded(sim / reference, 3)
    return pair


def _per_class(sim: dict[int, float], reference: dict[int, float], digits: int = 5) -> dict[str, Any]:
    ids = sorted(set(sim) | set(reference))
    return {class_name(i): {"label_id": i, **_pair(sim.get(i), reference.get(i), digits)} for i in ids}


def pitch_for_horizon(horizon_row: float, fov_deg: float, size: tuple[int, int] = ANALYSIS_SIZE) -> float:
    """Camera pitch (degrees, negative = down) that puts a level horizon at `horizon_row` (analysis px)."""
    focal = (size[0] / 2) / math.tan(math.radians(fov_deg) / 2)
    return -math.degrees(math.atan((size[1] / 2 - horizon_row) / focal))


def viewpoint_advice(sim: dict[str, Any], reference: dict[str, Any], sim_origin: dict[str, Any],
                     mount_fit: dict[str, Any] | None) -> str:
    """One paragraph: how the simulator camera should move to match the reference viewpoint."""
    parts = []
    fov = sim_origin.get("camera", {}).get("fov")
    if sim["horizon_row"] is not None and reference["horizon_row"] is not None:
        rows = sim["horizon_row"] - reference["horizon_row"]
        if abs(rows) < 1:
            parts.append(f"the horizon matches the reference's (row {reference['horizon_row']:.0f} of "
                         f"{ANALYSIS_SIZE[1]})")
        else:
            direction = "below" if rows > 0 else "above"
            parts.append(f"the horizon sits {abs(rows):.0f} rows {direction} the reference's "
                         f"({sim['horizon_row']:.0f} vs {reference['horizon_row']:.0f} of {ANALYSIS_SIZE[1]})")
            if fov:
                change = pitch_for_horizon(reference["horizon_row"], fov) - pitch_for_horizon(sim["horizon_row"], fov)
                parts.append(f"at fov {fov:g} that is a pitch change of {change:+.1f} degrees")
    if sim["hood_rows"] is not None and sim["hood_rows"] > (reference["hood_rows"] or 0) + 2:
        parts.append(f"the ego bonnet fills the bottom {sim['hood_rows']:.0f} rows (reference: "
                     f"{reference['hood_rows'] or 0:.0f}); the real maps label the bonnet as road")
    if mount_fit:
        best = mount_fit["best"]
        camera = sim_origin.get("camera", {})
        fitted = (f"'{mount_fit['mount']}' (x {best['x']} m, height {best['z']} m, pitch {best['pitch']} deg, "
                  f"fov {best['fov']} deg)")
        if camera.get("mount") == mount_fit["mount"] and camera.get("fov") == best["fov"]:
            parts.append(f"this run uses the fitted mount {fitted}")
        else:
            parts.append(f"the mount that matched the reference best in the built-in world is {fitted}: "
                         f"use `mount: {mount_fit['mount']}` and `fov: {best['fov']}` in the scenario's cameras")
    return "; ".join(parts) + "." if parts else "no viewpoint figures (no road in the frames)."


def compare(sim_doc: dict[str, Any], ref_doc: dict[str, Any], mount_fit: dict[str, Any] | None = None) -> dict[str, Any]:
    """The gap document: every metric of the simulator next to the reference's, and their divergences.

    mount_fit: the ranking of `python -m domain_adapt.fit_mount`, named in the viewpoint advice.
    """
    sim, ref = summarize(sim_doc), summarize(ref_doc)
    ids = sorted(set(sim["class_share"]) | set(ref["class_share"]))
    sim_share = np.array([sim["class_share"].get(i, 0.0) for i in ids])
    ref_share = np.array([ref["class_share"].get(i, 0.0) for i in ids])
    sizes = {}
    for name, label_id in SIZE_CLASSES.items():
        sim_hist = sim["object_area_hist"].get(label_id, np.zeros(AREA_BINS))
        ref_hist = ref["object_area_hist"].get(label_id, np.zeros(AREA_BINS))
        sizes[name] = {"median_area_px": _pair(hist_median(list(sim_hist)), hist_median(list(ref_hist)), 1),
                       "js_divergence": _round(js_divergence(sim_hist, ref_hist))}
    road_l1 = float(np.abs(sim["road_rows"] - ref["road_rows"]).mean())
    sky_l1 = float(np.abs(sim["sky_rows"] - ref["sky_rows"]).mean())
    horizon = _pair(sim["horizon_row"], ref["horizon_row"], 1)
    if sim["horizon_row"] is not None and ref["horizon_row"] is not None:
        horizon["difference_rows"] = round(sim["horizon_row"] - ref["horizon_row"], 1)
    gap = {
        "format": GAP_FORMAT,
        "version": GAP_VERSION,
        "analysis_size": list(ANALYSIS_SIZE),
        "sim": {"origin": sim_doc.get("origin", {}), "frames": sim["frames"],
                "sequences": [s["name"] for s in sim_doc["sequences"]]},
        "reference": {"origin": ref_doc.get("origin", {}),
                      "frames": ref["frames"]},
        "classes": {
            "js_divergence": _round(js_divergence(sim_share, ref_share)),
            "share": _per_class(sim["class_share"], ref["class_share"]),
            "only_in_sim": [class_name(i) for i in ids if i not in ref["class_share"]],
            "only_in_reference": [class_name(i) for i in ids if i not in sim["class_share"]],
        },
        "boundaries": {
            "boundary_share": _pair(sim["boundary_share"], ref["boundary_share"]),
            "density_per_class": _per_class(sim["boundary_density"], ref["boundary_density"]),
            "jaggedness": _pair(sim["jaggedness"], ref["jaggedness"]),
            "jaggedness_per_class": _per_class(sim["jaggedness_per_class"], ref["jaggedness_per_class"]),
            "small_regions_per_frame": _pair(sim["small_regions_per_frame"], ref["small_regions_per_frame"], 2),
            "small_regions_per_class": _per_class(sim["small_regions_per_class"], ref["small_regions_per_class"], 2),
            "region_area_js_divergence": _round(js_divergence(sim["region_area_hist"], ref["region_area_hist"])),
        },
        "objects": {
            "from": {"sim": sim["objects_from"], "reference": ref["objects_from"]},
            "instances_per_frame": _per_class(sim["instances_per_frame"], ref["instances_per_frame"], 2),
            "size": sizes,
        },
        "viewpoint": {
            "horizon_row": horizon,
            "road_profile_l1": round(road_l1, 5),
            "sky_profile_l1": round(sky_l1, 5),
            "hood_rows": _pair(sim["hood_rows"], ref["hood_rows"], 1),
            "advice": viewpoint_advice(sim, ref, sim_doc.get("origin", {}), mount_fit),
        },
        "temporal": {
            "flicker_rate": _pair(sim["flicker_rate"], ref["flicker_rate"], 7),
            "change_rate": _pair(sim["change_rate"], ref["change_rate"], 5),
        },
    }
    gap["summary"] = summary_line(gap)
    return gap


def _round(value: float, digits: int = 5) -> float | None:
    return None if not math.isfinite(value) else round(value, digits)


def summary_line(gap: dict[str, Any]) -> str:
    """The one-line summary of a gap document."""
    classes, boundaries, viewpoint = gap["classes"], gap["boundaries"], gap["viewpoint"]
    horizon = viewpoint["horizon_row"].get("difference_rows")
    flicker = gap["temporal"]["flicker_rate"]
    return (f"class JS {classes['js_divergence']}, "
            f"{len(classes['only_in_sim'])} classes only in sim, "
            f"boundary share {boundaries['boundary_share']['sim']} vs {boundaries['boundary_share']['reference']}, "
            f"jaggedness {boundaries['jaggedness']['sim']} vs {boundaries['jaggedness']['reference']}, "
            f"small regions/frame {boundaries['small_regions_per_frame']['sim']} vs "
            f"{boundaries['small_regions_per_frame']['reference']}, "
            f"horizon {'n/a' if horizon is None else f'{horizon:+g} rows'}, "
            f"road profile L1 {viewpoint['road_profile_l1']}, "
            f"flicker {flicker['sim']} vs {flicker['reference']}")
