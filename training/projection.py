"""Project embeddings to 2-D or 3-D for plots and the web explorer."""

from __future__ import annotations

import numpy as np

METHODS = ("pca", "tsne")


def project(embeddings: np.ndarray, method: str = "pca", dims: int = 3, seed: int = 0) -> np.ndarray:
    """Return float32 ``N×dims`` coordinates of ``embeddings`` (``N×D``).

    ``method="pca"``: the first ``dims`` principal components (deterministic, fast for any N; an
    axis's sign is fixed so its largest loading is positive). ``method="tsne"``: scikit-learn's
    Barnes-Hut t-SNE, initialised from PCA and seeded, with perplexity ``min(30, (N - 1) / 3)``; it
    keeps local neighbourhoods but costs seconds per thousand points, so subsample large sets.
    Fewer points than ``dims + 1`` (or fewer features than ``dims``) are padded with zero columns.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    data = np.asarray(embeddings, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"expected an N×D array, got shape {data.shape}")
    n = len(data)
    out = np.zeros((n, dims), dtype=np.float32)
    if n < 2:
        return out
    if method == "tsne" and n > dims + 1:
        from sklearn.manifold import TSNE

        tsne = TSNE(
            n_components=dims,
            perplexity=min(30.0, (n - 1) / 3.0),
            init="pca",
            random_state=seed,
            method="barnes_hut",
        )
        return tsne.fit_transform(data).astype(np.float32)
    centred = data - data.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:dims]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    coords = centred @ (components * signs[:, None]).T
    out[:, : coords.shape[1]] = coords
    return out
