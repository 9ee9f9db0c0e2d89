"""Helpers of the HTML reports (compare, gap): JSON without NaN, embedded PNGs, number format, templates.

Kept apart from `carla_neural.compare`, whose package imports torch: a report needs none of it.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import jinja2


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def data_uri(png: Path) -> str:
    """A PNG file as a data: URI, to embed in a self-contained report."""
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def format_value(value: Any, digits: int = 4) -> str:
    """A figure for a report table: `digits` significant digits, "n/a" for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def template_environment(package: str) -> jinja2.Environment:
    """A jinja2 environment over `package`/templates: autoescaped, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
