"""Small template filters for the pages: percentages for bars, similarity in words, pixel-art detection."""

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


SIMILARITY_WORDS = (
    (0.9, "very likely the same rock type"),
    (0.7, "likely the same rock type"),
    (0.4, "possibly the same rock type"),
    (0.1, "probably a different rock type"),
    (0.0, "very likely a different rock type"),
)
"""Lower bound of the calibrated similarity → how a result page says it (first match wins)."""


@register.filter
def similarity_words(value) -> str:
    """A calibrated similarity (probability of the same rock type) in plain words."""
    try:
        similarity = float(value)
    except (TypeError, ValueError):
        return ""
    return next((words for bound, words in SIMILARITY_WORDS if similarity >= bound), SIMILARITY_WORDS[-1][1])


def _size(of) -> tuple[float, float]:
    if isinstance(of, dict):
        return float(of["width"]), float(of["height"])
    return float(of.width), float(of.height)


@register.filter
def box_style(box, of) -> str:
    """CSS placing a box ``[x, y, w, h]`` (or a Region) over an image of ``of``'s width and height, in percent."""
    x, y, w, h = box.as_list() if hasattr(box, "as_list") else box
    width, height = _size(of)
    if width <= 0 or height <= 0:
        return "display: none"
    return (
        f"left: {100 * x / width:.3f}%; top: {100 * y / height:.3f}%; "
        f"width: {100 * w / width:.3f}%; height: {100 * h / height:.3f}%"
    )


@register.filter
def half(value) -> int:
    """Half a pixel count, rounded down (placeholders)."""
    try:
        return int(value) // 2
    except (TypeError, ValueError):
        return 0
