"""Rock-type labels: the one rule for what a label is, used by every way in (API, pages, CLI, admin, import).

A label is stored trimmed, lower-case, with inner whitespace collapsed, and must then match
:data:`LABEL_PATTERN`. Filters (``?label=``, ``?grid_label=``, ``--label``) normalise their value by the
same rule, so ``Gneiss`` finds what ``gneiss`` finds everywhere, and a value no image could carry
(a NUL byte, markup, 200 characters) is an input error instead of a database error.
"""

from __future__ import annotations

import re

from search.imaging import ImageRejected

LABEL_MAX_LENGTH = 64
LABEL_PATTERN = rf"^[a-z0-9][a-z0-9 _.\-]{{0,{LABEL_MAX_LENGTH - 1}}}$"
"""What a normalised label matches (also published in the OpenAPI schema)."""

INPUT_PATTERN = r"^\s*[A-Za-z0-9][A-Za-z0-9 _.\-\s]*$"
"""What a label may look like before normalisation (any case, surrounding and repeated whitespace)."""

_LABEL_RE = re.compile(LABEL_PATTERN)


class InvalidLabel(ImageRejected):
    """Text that cannot be a rock type; an ImageRejected, since it rejects the image it was meant for."""


def normalize_label(label: str | None) -> str | None:
    """Lower-case, trimmed rock-type label; None for blank; InvalidLabel for unusable text."""
    if label is None or not label.strip():
        return None
    value = " ".join(label.strip().split())
    # ASCII-only before lower(): str.lower() maps e.g. the Kelvin sign to "k", which would let odd
    # input through as a different label.
    if not value.isascii() or not _LABEL_RE.match(value.lower()):
        shown = label if len(label) <= 80 else label[:77] + "…"
        raise InvalidLabel(
            f"{shown!r} is not a usable rock type: use up to {LABEL_MAX_LENGTH} letters, digits, spaces, "
            "'.', '_' or '-', starting with a letter or digit."
        )
    return value.lower()
