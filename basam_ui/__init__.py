"""basam-ui: Segment Anything at native resolution with BA-SAM.

Importing the package is light: the heavy parts (torch models, Gradio) load on first use
of the names below.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first access)
_EXPORTS = {
    "BASAMConfig": "basam.config",
    "length_scale": "basam.config",
    "preprocess": "basam.encoder",
    "encode": "basam.encoder",
    "Segmenter": "segmenter",
    "ImageEmbedding": "segmenter",
    "EncoderOutOfMemory": "segmenter",
    "EmbeddingCache": "cache",
    "load_image": "image_io",
    "ImageReadError": "image_io",
    "ImageTooLargeError": "image_io",
    "load_sam": "loading",
    "random_sam": "loading",
    "build_sam": "loading",
    "save_state_dict": "loading",
    "model_info": "loading",
    "ModelInfo": "loading",
    "CheckpointError": "loading",
    "default_device": "loading",
    "download": "checkpoints",
    "DownloadError": "checkpoints",
    "MODEL_TYPES": "checkpoints",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'basam_ui' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
