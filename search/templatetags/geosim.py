"""Small template filters for the pages: percentages for bars, pixel-art detection."""

from __future__ import annotations

from django import template

register = template.Library()

PIXELATED_EDGE = 64


@register.filter
def percent(value) -> int:
    """A 0–1 share or score as a whole percentage clamped to 0–100 (bar widths)."""
    try:
        return max(0, min(100, round(float(value) * 100)))
    except (TypeError, ValueError):
        return 0


@register.filter
def is_small(image) -> bool:
    """Small images (the 28×28 tiles) are enlarged with crisp pixels instead of smoothing."""
    return max(image.width, image.height) <= PIXELATED_EDGE
