"""Searching again with an uploaded query, without the file: a signed token that carries its embedding.

The results page keeps an uploaded query in its form as this token, so changing K or the rock type
re-runs the same query instead of asking for the file again. Nothing is stored on the server (the
upload itself never is): the token holds the query's vector, the model version that embedded it, the
file name and the small preview the page shows, signed with SECRET_KEY so it can be neither forged
nor altered. A token from another model version is refused by the engine (QueryOutdated).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
from django.core import signing

_SALT = "geosim.search.saved-query"
MAX_AGE_SECONDS = 24 * 3600  # a results page left open for a day asks for the file again


class QueryTokenInvalid(ValueError):
    """The token was altered, signed with another key, or is too old."""


@dataclass(frozen=True)
class SavedQuery:
    vector: np.ndarray
    model_version_id: int
    name: str
    preview: str  # a data: URI


def query_token(*, vector: np.ndarray, model_version_id: int, name: str, preview: str) -> str:
    """A signed, compressed token for the hidden form field of the results page."""
    packed = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    payload = {"v": packed, "m": model_version_id, "n": name, "p": preview}
    return signing.dumps(payload, salt=_SALT, compress=True)


def saved_query(token: str) -> SavedQuery:
    """The query a token carries, or QueryTokenInvalid."""
    try:
        payload = signing.loads(token, salt=_SALT, max_age=MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise QueryTokenInvalid("This search is more than a day old: choose the file again.") from None
    except signing.BadSignature:
        raise QueryTokenInvalid("This search cannot be repeated: choose the file again.") from None
    vector = np.frombuffer(base64.b64decode(payload["v"]), dtype="<f4").astype(np.float32)
    return SavedQuery(vector=vector, model_version_id=payload["m"], name=payload["n"], preview=payload["p"])
