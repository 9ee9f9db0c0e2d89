"""Sizes written WIDTHxHEIGHT ('512x256'): the one parser every command and the worker use."""

from __future__ import annotations

import re
from typing import Any

import click

_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_size(text: str, min_side: int = 1, max_side: int | None = None, even: bool = False) -> tuple[int, int]:
    """'512x256' -> (512, 256); ValueError naming the expected form and the limits otherwise."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT, e.g. 512x256")
    width, height = int(match.group(1)), int(match.group(2))
    too_big = max_side is not None and max(width, height) > max_side
    if min(width, height) < min_side or too_big:
        limits = f"{min_side}..{max_side}" if max_side is not None else f"at least {min_side}"
        raise ValueError(f"{width}x{height}: each side must be {limits}")
    if even and (width % 2 or height % 2):
        raise ValueError(f"{width}x{height}: sides must be even")
    return width, height


class WxH(click.ParamType):
    """click type of a size WIDTHxHEIGHT, e.g. 512x256 -> (512, 256); limits as parse_size."""

    name = "WxH"

    def __init__(self, min_side: int = 1, max_side: int | None = None, even: bool = False) -> None:
        self.min_side, self.max_side, self.even = min_side, max_side, even

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_size(str(value), min_side=self.min_side, max_side=self.max_side, even=self.even)
        except ValueError as error:
            self.fail(str(error), param, ctx)


class WxHList(WxH):
    """click type of comma-separated sizes, '512x256,1024x512' -> [(512, 256), (1024, 512)]; limits as WxH."""

    name = "WxH[,WxH...]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> list[tuple[int, int]]:  # type: ignore[override]
        if isinstance(value, list):
            return value
        parts = [part for part in str(value).split(",") if part.strip()]
        if not parts:
            self.fail("give at least one WIDTHxHEIGHT, e.g. 512x256", param, ctx)
        return [super(WxHList, self).convert(part, param, ctx) for part in parts]
