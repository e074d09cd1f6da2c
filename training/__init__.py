"""GeoSim's embedding model: pure PyTorch, importable and runnable without Django.

Modules, by role: ``preprocessing`` (the one image → model-input function), ``data`` (folder reading,
split, augmentation), ``model`` (the CNN), ``losses`` (triplet loss with mining + auxiliary loss),
``checkpoint`` (the versioned file format), ``inference`` (``Embedder``), ``metrics`` (leave-one-out
retrieval metrics), ``calibration`` (cosine → probability of the same rock type, and its error),
``projection`` (PCA / t-SNE), ``baselines``; command-line tools ``train``, ``embed``, ``evaluate``,
``calibrate``, ``visualize`` and ``speed``. The shipped model is ``weights/default.pt``
(see ``weights/MODEL_CARD.md``).
"""

from .checkpoint import FORMAT_VERSION, CheckpointError, LoadedCheckpoint, load_checkpoint, save_checkpoint
from .inference import Embedder
from .metrics import retrieval_metrics
from .preprocessing import INPUT_SIZE, to_model_input, to_tensor
from .projection import project

__all__ = [
    "FORMAT_VERSION",
    "INPUT_SIZE",
    "CheckpointError",
    "Embedder",
    "LoadedCheckpoint",
    "load_checkpoint",
    "project",
    "retrieval_metrics",
    "save_checkpoint",
    "to_model_input",
    "to_tensor",
]
