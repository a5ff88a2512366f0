"""Models: the one way basam-ui builds SAM / MobileSAM models and loads checkpoints.

- `load_sam` (an official or compatible checkpoint, safely), `random_sam` (seeded untrained
  weights), `official_or_random` (benchmarks), `model_info` (what a loaded model is);
- `ModelSpec`: the command line's model options as a small picklable value, which loads the
  model here, in a Ray worker or as the app's per-type loaders;
- `randomize_positions`, `small_vit`: random models with non-zero position tables, for
  benchmarks and tests of the attention paths.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch
from torch import nn

from . import checkpoints
from .vocabulary import DEFAULT_MODEL_TYPE, DEFAULT_PRECISION, MODEL_TYPES

ModelLoader = Callable[[], nn.Module]  # () -> a Sam module on its device


class CheckpointError(ValueError):
    """A checkpoint file is missing, unsafe, corrupt, or of another model type."""


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: its type and where its weights came from.

    `identity` is stable across restarts for checkpoint files (type + SHA-256 prefix), so
    it can key an on-disk embedding cache.
    """

    model_type: str
    checkpoint: Optional[str] = None
    sha256: Optional[str] = None
    seed: Optional[int] = None  # set for random-weight models

    @property
    def identity(self) -> str:
        if self.sha256:
            return f"{self.model_type}:{self.sha256[:16]}"
        if self.seed is not None:
            return f"{self.model_type}:random-{self.seed}"
        return f"{self.model_type}:unknown"


def default_device() -> torch.device:
    """CUDA if available, else MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def build_sam(model_type: str) -> nn.Module:
    """An untrained `Sam` of `model_type` (vit_t from `mobile_sam`, others from
    `segment_anything`), in eval mode, with torch's default initialisation."""
    checkpoints.info(model_type)  # validates the name
    if model_type == "vit_t":
        with warnings.catch_warnings():
            # mobile_sam imports deprecated timm paths and re-registers timm's TinyViT names
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            from mobile_sam import sam_model_registry
    else:
        from segment_anything import sam_model_registry
    sam = sam_model_registry[model_type](checkpoint=None)
    return sam.eval()


def random_sam(model_type: str = "vit_t", seed: int = 0, device: Optional[str | torch.device] = None) -> nn.Module:
    """A seeded random-weight `Sam` of `model_type`: the same seed gives the same weights.
    The global RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = build_sam(model_type)
    sam.basam_info = ModelInfo(model_type, seed=seed)
    return sam.to(torch.device(device) if device is not None else default_device())


def model_info(sam: nn.Module) -> ModelInfo:
    """The `ModelInfo` attached by `load_sam`/`random_sam`, or one guessed from the modules."""
    found = getattr(sam, "basam_info", None)
    if found is not None:
        return found
    return ModelInfo(_type_of_module(sam))


def _type_of_module(sam: nn.Module) -> str:
    encoder = sam.image_encoder
    if type(encoder).__name__ == "TinyViT":
        return "vit_t"
    dim = encoder.pos_embed.shape[-1]
    return {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}.get(dim, f"vit(dim={dim})")


def infer_model_type(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The model type a SAM state dict belongs to, from its key names and shapes."""
    if any(k.startswith("image_encoder.layers.") for k in state_dict):
        return "vit_t"
    pos = state_dict.get("image_encoder.pos_embed")
    if pos is not None and pos.ndim == 4:
        by_dim = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
        if int(pos.shape[-1]) in by_dim:
            return by_dim[int(pos.shape[-1])]
    raise ValueError(_describe(state_dict))


def _describe(state_dict: Mapping[str, torch.Tensor]) -> str:
    keys = list(state_dict)
    sample = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    return f"not a SAM or MobileSAM state dict ({len(keys)} entries: {sample})"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True, every failure turned into a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: it carries pickled Python objects other than tensors, "
            f"and loading it could run code. Only plain state dicts are accepted "
            f"(torch.load weights_only=True). Detail: {str(exc).splitlines()[0]}"
        ) from None
    except Exception as exc:  # torch raises many types for damaged files (RuntimeError, EOFError, KeyError...)
        size = path.stat().st_size
        raise CheckpointError(
            f"could not read {path} ({size:,} bytes): the file is truncated or corrupt "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}). "
            f"Download it again with `basam-ui download`."
        ) from None
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]  # some training scripts wrap the state dict
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    return dict(obj)


def resolve_checkpoint(
    model_type: Optional[str] = None,
    checkpoint: Optional[str | os.PathLike] = None,
    checkpoint_dir: Optional[str | os.PathLike] = None,
) -> Path:
    """The checkpoint file to load: `checkpoint` when given, else the registry file for
    `model_type` (default vit_t) in the checkpoint folder, else a CheckpointError that
    says how to download it."""
    if checkpoint is not None:
        return Path(checkpoint).expanduser()
    model_type = model_type or DEFAULT_MODEL_TYPE
    path = checkpoints.checkpoint_path(model_type, checkpoint_dir)
    if not path.is_file():
        raise CheckpointError(
            f"no {model_type} checkpoint found at {path}. "
            f"Run `basam-ui download {model_type}` to fetch it, or pass --checkpoint PATH."
        )
    return path


def load_sam(
    model_type: Optional[str] = None,
    checkpoint: Optional[str | os.PathLike] = None,
    device: Optional[str | torch.device] = None,
    *,
    checkpoint_dir: Optional[str | os.PathLike] = None,
) -> nn.Module:
    """A ready `Sam` in eval mode from an official (or compatible) checkpoint.

    `model_type` (vit_t/vit_b/vit_l/vit_h) is inferred from the file when None; when given,
    the file must be of that type. With no `checkpoint`, the registry file in the
    checkpoint folder is used. `device` defaults to CUDA, then MPS, then CPU.
    Raises CheckpointError (a ValueError) with the file name and what is wrong.
    """
    if model_type is not None and model_type not in MODEL_TYPES:
        checkpoints.info(model_type)  # raises the ValueError listing known types
    path = resolve_checkpoint(model_type, checkpoint, checkpoint_dir)
    state_dict = _read_state_dict(path)
    try:
        found = infer_model_type(state_dict)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if model_type is not None and found != model_type:
        raise CheckpointError(
            f"{path} looks like a {found} checkpoint ({checkpoints.REGISTRY[found].description}), "
            f"not {model_type}; pass --model {found} or leave the type out to infer it"
        )
    sam = build_sam(found)
    try:
        sam.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = "; ".join(line.strip() for line in first[:4])
        raise CheckpointError(
            f"{path} has {found} key names but does not fit the {found} model: {detail}"
        ) from None
    sam.basam_info = ModelInfo(found, checkpoint=str(path), sha256=checkpoints.sha256_file(path))
    return sam.to(torch.device(device) if device is not None else default_device()).eval()


def save_state_dict(sam: nn.Module, path: str | os.PathLike) -> Path:
    """Save `sam` as a plain state dict, the official checkpoint layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sam.state_dict(), path)
    return path


def official_or_random(
    model_type: str,
    device: Optional[str | torch.device] = None,
    checkpoint_dir: Optional[str | os.PathLike] = None,
) -> nn.Module:
    """The official checkpoint when it is in the checkpoint folder, else seeded random
    weights: for benchmarks, whose timings do not depend on the weights."""
    if checkpoints.checkpoint_path(model_type, checkpoint_dir).is_file():
        return load_sam(model_type, device=device, checkpoint_dir=checkpoint_dir)
    return random_sam(model_type, seed=0, device=device)


def randomize_positions(sam: nn.Module, seed: int) -> nn.Module:
    """Give the image encoder's position tables (pos_embed, rel_pos_*, TinyViT's
    attention_biases; zero in an untrained SAM) seeded N(0, 0.5^2) values, in place; returns
    `sam` in eval mode (which refreshes TinyViT's cached biases). Random models otherwise
    check the attention paths on terms that are all zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sam.image_encoder.named_parameters():
            if name == "pos_embed" or "rel_pos" in name or "attention_biases" in name:
                param.copy_(0.5 * torch.randn(param.shape, generator=gen))
    return sam.eval()


def small_vit(seed: int = 0) -> nn.Module:
    """A small random SAM ViT from segment_anything's builder (width 64, 4 blocks, 2 heads,
    global attention in blocks 1 and 3), position tables randomised."""
    from segment_anything.build_sam import _build_sam

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = _build_sam(encoder_embed_dim=64, encoder_depth=4, encoder_num_heads=2, encoder_global_attn_indexes=[1, 3])
    return randomize_positions(sam, seed + 2)


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load: --model / --checkpoint / --checkpoint-dir / --random-weights /
    --device / --precision, as a picklable value (Ray workers load their own copy from it)."""

    model: Optional[str] = None
    checkpoint: Optional[str] = None
    checkpoint_dir: Optional[str] = None
    device: Optional[str] = None
    random_weights: bool = False
    precision: str = DEFAULT_PRECISION

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ModelSpec":
        """The spec of parsed command-line options (those a command lacks take their defaults)."""
        return cls(
            model=getattr(args, "model", None),
            checkpoint=getattr(args, "checkpoint", None),
            checkpoint_dir=getattr(args, "checkpoint_dir", None),
            device=getattr(args, "device", None),
            random_weights=bool(getattr(args, "random_weights", False)),
            precision=getattr(args, "precision", None) or DEFAULT_PRECISION,
        )

    def load(self, device: Optional[str | torch.device] = None) -> nn.Module:
        """The model on `device` (default: the spec's, else CUDA, MPS, CPU): seeded random
        weights (seed 0), or the checkpoint (the registry file of the model type in the
        checkpoint folder when no checkpoint file is given). Raises CheckpointError."""
        device = device if device is not None else self.device
        if self.random_weights:
            return random_sam(self.model or DEFAULT_MODEL_TYPE, seed=0, device=device)
        return load_sam(self.model, self.checkpoint, device, checkpoint_dir=self.checkpoint_dir)

    def loaders(self, device: Optional[str | torch.device] = None, *, download: bool = True) -> dict[str, ModelLoader]:
        """Model type -> a function loading it on `device`, for the app's model choice, the
        default model first: random weights or one checkpoint file give one type; otherwise
        every official file in the checkpoint folder, the default type (or the spec's) downloaded
        first when it is missing and `download`. Raises DownloadError / CheckpointError."""
        if self.random_weights:
            model_type = self.model or DEFAULT_MODEL_TYPE
            return {model_type: partial(random_sam, model_type, seed=0, device=device)}
        if self.checkpoint:
            sam = load_sam(self.model, self.checkpoint, device)
            return {model_info(sam).model_type: lambda: sam}
        found = checkpoints.available_checkpoints(self.checkpoint_dir)
        wanted = self.model or (DEFAULT_MODEL_TYPE if not found or DEFAULT_MODEL_TYPE in found else next(iter(found)))
        if wanted not in found:
            if not download:
                raise CheckpointError(f"no {wanted} checkpoint found in {checkpoints.checkpoint_dir(self.checkpoint_dir)}")
            print(f"basam-ui: no {wanted} checkpoint found; downloading it", file=sys.stderr)
            found[wanted] = checkpoints.download(wanted, self.checkpoint_dir)
        loaders = {t: partial(load_sam, t, path, device) for t, path in found.items()}
        return {wanted: loaders.pop(wanted), **loaders}
