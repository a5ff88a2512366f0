"""Image preprocessing and the image encoder at any input size S, vanilla or BA-SAM.

`preprocess` turns an RGB image into SAM's padded S x S input; `encode` runs the model's
image encoder (TinyViT for vit_t, ImageEncoderViT for vit_b/l/h) on it with a
`BASAMConfig` given per call.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..vocabulary import PATCH, check_size
from .attention import check_beta
from .config import BASAMConfig


def resized_size(original_hw: Tuple[int, int], size: int) -> Tuple[int, int]:
    """(h, w) of an `original_hw` image after resizing its long side to `size`, as
    segment_anything's ResizeLongestSide.get_preprocess_shape."""
    from segment_anything.utils.transforms import ResizeLongestSide

    height, width = original_hw
    return ResizeLongestSide.get_preprocess_shape(int(height), int(width), int(size))


def check_image(image: np.ndarray) -> None:
    """ValueError unless `image` is a non-empty H x W x 3 uint8 RGB array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"image must be an H x W x 3 uint8 RGB array, got {type(image).__name__} of shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0-255) RGB, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty: shape {image.shape}")


def preprocess(sam: nn.Module, image: np.ndarray, size: int) -> torch.Tensor:
    """SAM's input for an image at encoder size S, as SamPredictor makes it: the long side
    resized to S (ResizeLongestSide), normalised with the model's pixel mean/std, zero-padded
    at the bottom/right.

    Arguments:
      sam: a SAM or MobileSAM model (its pixel mean/std and device are used).
      image: H x W x 3 uint8 RGB.
      size: S, a multiple of 16 and at least 256.

    Returns:
      (1, 3, S, S) float tensor on the model's device.
    """
    from segment_anything.utils.transforms import ResizeLongestSide

    size = check_size(size)
    check_image(image)
    resized = ResizeLongestSide(size).apply_image(image)
    x = torch.as_tensor(resized, device=sam.pixel_mean.device).permute(2, 0, 1).contiguous()[None]
    x = (x - sam.pixel_mean) / sam.pixel_std
    height, width = x.shape[-2:]
    return F.pad(x, (0, size - width, 0, size - height))


def encoder_kind(encoder: nn.Module) -> str:
    """'tinyvit' or 'vit'; ValueError for any other image encoder."""
    name = type(encoder).__name__
    if name == "TinyViT":
        return "tinyvit"
    if name == "ImageEncoderViT":
        return "vit"
    raise ValueError(f"unsupported image encoder {name}: expected MobileSAM's TinyViT or SAM's ImageEncoderViT")


def check_input(x: torch.Tensor) -> int:
    """The input size S of a (1, 3, S, S) tensor; ValueError for any other shape or S."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image of shape (1, 3, S, S), got {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"x must have 3 channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"x must be square (padded to S x S), got {x.shape[2]} x {x.shape[3]}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor (see preprocess), got {x.dtype}")
    return check_size(x.shape[-1])


def encode(sam: nn.Module, x: torch.Tensor, config: Optional[BASAMConfig] = None) -> torch.Tensor:
    """The image embedding of a preprocessed input, with `sam.image_encoder`'s weights at
    S = x.shape[-1] and a BA-SAM setting.

    The setting is a per-call value: the model is neither copied nor changed, so threads
    may encode with different settings at the same time. Runs without autograd.

    Arguments:
      sam: a SAM (ViT image encoder) or MobileSAM (TinyViT) model.
      x: (1, 3, S, S) from `preprocess`.
      config: NSF / BM-AM and the slope; None is vanilla SAM.

    Returns:
      (1, 256, S/16, S/16) embedding.
    """
    check_input(x)
    config = BASAMConfig.vanilla() if config is None else config
    if not isinstance(config, BASAMConfig):
        raise ValueError(f"config must be a BASAMConfig or None, got {type(config).__name__}")
    check_beta(config.beta)  # also catches a beta forced past BASAMConfig's own check
    encoder = sam.image_encoder
    kind = encoder_kind(encoder)
    weight = next(encoder.parameters())
    x = x.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        if kind == "tinyvit":
            from .tinyvit import tinyvit_forward

            out = tinyvit_forward(encoder, x, config)
        else:
            from .vit import vit_forward

            out = vit_forward(encoder, x, config)
    return out


def embedding_grid(size: int) -> int:
    """Side of the embedding grid for input size S: S / 16."""
    return check_size(size) // PATCH

