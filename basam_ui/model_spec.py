"""What model to load, as a small picklable value: the command line's model options, handed
to worker processes (Ray actors) that load their own copy of the model."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from torch import nn

    from .cache import EmbeddingCache
    from .segmenter import Segmenter


@dataclass(frozen=True)
class ModelSpec:
    """--model / --checkpoint / --checkpoint-dir / --random-weights / --device / --precision."""

    model: Optional[str] = None
    checkpoint: Optional[str] = None
    checkpoint_dir: Optional[str] = None
    device: Optional[str] = None
    random_weights: bool = False
    precision: str = "auto"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ModelSpec":
        return cls(
            model=args.model,
            checkpoint=args.checkpoint,
            checkpoint_dir=args.checkpoint_dir,
            device=args.device,
            random_weights=bool(args.random_weights),
            precision=getattr(args, "precision", None) or "auto",
        )

    def load(self) -> "nn.Module":
        """The model: seeded random weights (seed 0) or the checkpoint (the registry file of
        --model in the checkpoint folder when no --checkpoint is given). Raises CheckpointError."""
        from .loading import load_sam, random_sam

        if self.random_weights:
            return random_sam(self.model or "vit_t", seed=0, device=self.device)
        return load_sam(self.model, self.checkpoint, self.device, checkpoint_dir=self.checkpoint_dir)

    def segmenter(self, cache: "EmbeddingCache", sam: Optional["nn.Module"] = None) -> "Segmenter":
        """A Segmenter on `cache` with this precision (the model is loaded unless given)."""
        from .segmenter import Segmenter

        return Segmenter(sam if sam is not None else self.load(), cache=cache, precision=self.precision)
