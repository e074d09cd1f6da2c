"""Embed images with a trained checkpoint: the entry point the search service uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoint import LoadedCheckpoint, load_checkpoint
from .data import apply_d4
from .model import EmbeddingNet, fuse_for_inference
from .preprocessing import to_model_input

TTA_CHUNK = 32
"""Images per forward pass with test-time augmentation (8 views each)."""


def d4_pixels(pixels: np.ndarray, transform: int) -> np.ndarray:
    """:func:`training.data.apply_d4` on uint8 ``N×H×W×3`` arrays (same order of the 8 transforms)."""
    out = np.rot90(pixels, transform % 4, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if transform >= 4 else out)


def embed_tensor(model: EmbeddingNet, batch: torch.Tensor, tta: bool) -> torch.Tensor:
    """Embed a normalised ``N×3×S×S`` batch; with ``tta`` average over the 8 flips/quarter-turns.

    The reference implementation; :meth:`Embedder.embed_arrays` computes the same on uint8 pixels, faster.

    The average of the 8 unit vectors is normalised again, so the result is exactly invariant to
    rotating or mirroring the input.
    """
    if not tta:
        return model(batch.contiguous(memory_format=torch.channels_last))
    views = torch.cat([apply_d4(batch, t) for t in range(8)]).contiguous(memory_format=torch.channels_last)
    embeddings = model(views).view(8, batch.shape[0], -1).mean(dim=0)
    return F.normalize(embeddings, dim=1)


class Embedder:
    """Turns PIL images or uint8 arrays into float32 L2-normalised embeddings.

    Thread safety: after construction nothing is mutated; ``embed_*`` run the model in
    ``torch.inference_mode`` with BatchNorm folded into the convolutions, so several threads may call
    them at once. It never changes torch's thread settings; the caller decides.
    """

    def __init__(
        self,
        model: EmbeddingNet,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: int,
        tta: bool,
        class_names: Sequence[str] = (),
        checkpoint: LoadedCheckpoint | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.input_size = int(input_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.tta = bool(tta)
        self.class_names: list[str] = list(class_names)
        self.embedding_dim: int = model.config.embedding_dim
        # Channels-last convolutions run about twice as fast on CPU for these small maps.
        self._model = fuse_for_inference(model).to(memory_format=torch.channels_last)
        self._model.requires_grad_(False)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Embedder:
        """Load ``path`` (raises ``CheckpointError`` for a missing, foreign or wrong-version file)."""
        loaded = load_checkpoint(path)
        return cls(
            loaded.model,
            mean=loaded.mean,
            std=loaded.std,
            input_size=loaded.input_size,
            tta=loaded.tta,
            class_names=loaded.class_names,
            checkpoint=loaded,
        )

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 256) -> np.ndarray:
        """Embed PIL images of any size and mode (each goes through ``to_model_input``): N×D float32."""
        if len(images) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        pixels = np.stack([to_model_input(image, self.input_size) for image in images])
        return self.embed_arrays(pixels, batch_size=batch_size)

    def embed_arrays(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Embed uint8 ``N×H×W×3`` RGB pixels (resized through ``to_model_input`` if not S×S): N×D float32."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"expected uint8 N×H×W×3 pixels, got {pixels.dtype} {pixels.shape}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if pixels.shape[1:3] != (self.input_size, self.input_size):
            pixels = np.stack(
                [to_model_input(Image.fromarray(p), self.input_size) for p in pixels]
            )
        # The 8 TTA views multiply the batch; past ~256 views a forward pass gets slower per image
        # (the activations leave the CPU caches), so TTA batches are cut to 32 images.
        step = min(batch_size, TTA_CHUNK) if self.tta else batch_size
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        out = np.empty((len(pixels), self.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(pixels), step):
                chunk = pixels[start : start + step]
                views = np.concatenate([d4_pixels(chunk, t) for t in range(8)]) if self.tta else chunk
                # N×H×W×3 memory seen as N×3×H×W is channels-last already: no copy before the convolutions.
                batch = (torch.from_numpy(views).permute(0, 3, 1, 2).float().div_(255.0) - mean) / std
                embeddings = self._model(batch)
                if self.tta:
                    embeddings = F.normalize(embeddings.view(8, len(chunk), -1).mean(dim=0), dim=1)
                out[start : start + len(chunk)] = embeddings.numpy()
        return out
