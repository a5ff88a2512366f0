"""BA-SAM: SAM's image encoders at any input size with NSF and BM-AM (pure PyTorch).

`import basam_ui` does not load this subpackage; importing it loads torch.
"""

from .attention import attention_scale, grid_attention, plan_chunks
from .config import BASAMConfig, length_scale
from .reference import grid_attention_reference
from .encoder import check_size, embedding_grid, encode, preprocess, resized_size

__all__ = [
    "BASAMConfig",
    "attention_scale",
    "check_size",
    "embedding_grid",
    "encode",
    "grid_attention",
    "grid_attention_reference",
    "length_scale",
    "plan_chunks",
    "preprocess",
    "resized_size",
]
