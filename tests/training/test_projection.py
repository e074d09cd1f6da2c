"""project(): PCA and t-SNE in 2-D and 3-D."""

from __future__ import annotations

import numpy as np
import pytest

from training.projection import project


@pytest.mark.parametrize("method", ["pca", "tsne"])
@pytest.mark.parametrize("dims", [2, 3])
def test_shape_dtype_and_determinism(method: str, dims: int) -> None:
    embeddings = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32)
    out = project(embeddings, method=method, dims=dims, seed=3)
    assert out.shape == (60, dims) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert np.array_equal(out, project(embeddings, method=method, dims=dims, seed=3))


def test_pca_finds_the_direction_of_largest_variance() -> None:
    rng = np.random.default_rng(1)
    embeddings = np.zeros((100, 5))
    embeddings[:, 3] = rng.normal(scale=10, size=100)
    embeddings[:, 1] = rng.normal(scale=0.1, size=100)
    out = project(embeddings, method="pca", dims=2)
    assert np.allclose(np.abs(out[:, 0]), np.abs(embeddings[:, 3] - embeddings[:, 3].mean()), atol=1e-4)


def test_tiny_inputs_are_padded() -> None:
    assert project(np.ones((1, 8)), dims=3).shape == (1, 3)
    assert project(np.random.default_rng(0).normal(size=(3, 2)), method="tsne", dims=3).shape == (3, 3)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="umap"):
        project(np.zeros((5, 4)), method="umap")
