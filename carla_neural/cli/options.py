"""Options every command shares: the WxH size types (renderer.sizes) and --threads (renderer.options)."""

from __future__ import annotations

from renderer.options import threads_option
from renderer.sizes import WxH, WxHList

__all__ = ["WxH", "WxHList", "threads_option"]
