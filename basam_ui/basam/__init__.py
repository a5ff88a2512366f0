"""BA-SAM: SAM's image encoders at any input size with NSF and BM-AM.

Exports are loaded on first use, so importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (loaded on first access)
_EXPORTS = {
    "BASAMConfig": "config",
    "length_scale": "config",
    "preprocess": "encoder",
    "resized_size": "encoder",
    "encode": "encoder",
    "check_size": "encoder",
    "embedding_grid": "encoder",
    "grid_attention": "attention",
    "grid_attention_reference": "attention",
    "attention_scale": "attention",
    "plan_chunks": "attention",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'basam_ui.basam' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
