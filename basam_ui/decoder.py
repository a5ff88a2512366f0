"""Prompt encoder and mask decoder at any encoder size S, and low-res logits back to pixels.

SAM's `PromptEncoder` keeps its 1024-px input size and 64x64 grid as attributes; instead of
changing them (which would not be thread-safe), these functions take S explicitly and reuse
the modules' weights.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .lean_decoder import lean_predict_masks, supports_lean


def embed_prompts(
    prompt_encoder: nn.Module,
    size: int,
    points: Optional[torch.Tensor],
    labels: Optional[torch.Tensor],
    boxes: Optional[torch.Tensor],
    mask_input: Optional[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse (B, n, 256) and dense (1 or B, 256, S/16, S/16) prompt embeddings for B prompt
    sets on one image (B = 1 for a click; the automatic mask generator's point grid sends many).

    points (B, n, 2) and boxes (B, 4) are in the S x S input frame; labels (B, n) hold 1 for
    foreground, 0 for background; mask_input is (B, 1, S/4, S/4) low-res logits.
    Same arithmetic as `PromptEncoder.forward`, with input size S instead of 1024.
    """
    pe = prompt_encoder
    grid = size // 16
    input_size = (size, size)
    device = pe.no_mask_embed.weight.device
    batch = next((len(t) for t in (points, boxes, mask_input) if t is not None), 1)
    sparse = torch.empty((batch, 0, pe.embed_dim), device=device)
    if points is not None:
        coords = points + 0.5  # pixel centres
        point_labels = labels
        if boxes is None:  # SAM pads a "not a point" token when there is no box
            coords = torch.cat([coords, torch.zeros((batch, 1, 2), device=device)], dim=1)
            point_labels = torch.cat([labels, -torch.ones((batch, 1), device=device)], dim=1)
        emb = pe.pe_layer.forward_with_coords(coords, input_size)
        emb[point_labels == -1] = 0.0
        emb[point_labels == -1] += pe.not_a_point_embed.weight
        emb[point_labels == 0] += pe.point_embeddings[0].weight
        emb[point_labels == 1] += pe.point_embeddings[1].weight
        sparse = torch.cat([sparse, emb], dim=1)
    if boxes is not None:
        corners = pe.pe_layer.forward_with_coords((boxes + 0.5).reshape(-1, 2, 2), input_size)
        corners[:, 0, :] += pe.point_embeddings[2].weight
        corners[:, 1, :] += pe.point_embeddings[3].weight
        sparse = torch.cat([sparse, corners], dim=1)
    if mask_input is not None:
        if mask_input.shape[-2:] != (4 * grid, 4 * grid):
            raise ValueError(
                f"mask_input must be {4 * grid}x{4 * grid} low-res logits at S={size}, "
                f"got {tuple(mask_input.shape[-2:])}"
            )
        dense = pe.mask_downscaling(mask_input)
    else:
        dense = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, grid, grid)
    return sparse, dense


def decode_masks(
    sam: nn.Module,
    embedding: torch.Tensor,
    points: Optional[torch.Tensor],
    labels: Optional[torch.Tensor],
    boxes: Optional[torch.Tensor],
    mask_input: Optional[torch.Tensor],
    multimask_output: bool,
    image_pe: Optional[torch.Tensor] = None,
    lean: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-res mask logits (B, C, S/4, S/4) and predicted IoUs (B, C) for an image embedding
    (1, 256, S/16, S/16) and B prompt sets as in `embed_prompts`. `image_pe` is `dense_pe(...)` for
    the embedding's grid (computed here when None). `lean` runs `lean_decoder`'s forward
    where the decoder has SAM's structure; False runs the decoder's own forward."""
    grid = embedding.shape[-1]
    size = grid * 16
    sparse, dense = embed_prompts(sam.prompt_encoder, size, points, labels, boxes, mask_input)
    if image_pe is None:
        image_pe = dense_pe(sam.prompt_encoder, grid)
    if lean and supports_lean(sam.mask_decoder):
        return lean_predict_masks(sam.mask_decoder, embedding, image_pe, sparse, dense, multimask_output)
    return sam.mask_decoder(
        image_embeddings=embedding,
        image_pe=image_pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask_output,
    )


def dense_pe(prompt_encoder: nn.Module, grid: int) -> torch.Tensor:
    """The dense positional encoding (1, 256, grid, grid) the mask decoder adds to the image
    embedding: the same for every prompt on a grid, so callers may keep it."""
    return prompt_encoder.pe_layer((grid, grid)).unsqueeze(0)


def logits_to_image(
    low_res: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
) -> torch.Tensor:
    """Low-res logits (..., S/4, S/4) to logits at the original (H, W), in one resize.

    SamPredictor upsamples to S x S, crops the unpadded (h, w) and resizes to (H, W). Here the
    crop comes first and one bilinear resize maps output pixel y to low-res coordinate
    (y + 0.5) * h / (4 H) - 0.5 (the composition of SAM's two coordinate maps), so a 6000 px
    image never needs an S x S intermediate per mask.
    """
    (h, w), (height, width) = input_size, original_size
    crop_h, crop_w = -(-h // 4) + 1, -(-w // 4) + 1  # enough low-res rows/cols to cover the image
    crop = low_res[..., : min(crop_h, low_res.shape[-2]), : min(crop_w, low_res.shape[-1])]
    lead = crop.shape[:-2]
    flat = crop.reshape(-1, 1, *crop.shape[-2:])
    out = F.interpolate(
        flat,
        scale_factor=(4.0 * height / h, 4.0 * width / w),
        mode="bilinear",
        align_corners=False,
        recompute_scale_factor=False,
    )
    if out.shape[-2] < height or out.shape[-1] < width:  # rounding: never short of the image
        out = F.pad(out, (0, max(0, width - out.shape[-1]), 0, max(0, height - out.shape[-2])), mode="replicate")
    return out[..., :height, :width].reshape(*lead, height, width)


def masks_from_logits(
    low_res: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int], threshold: Optional[float]
) -> torch.Tensor:
    """`logits_to_image`, then masks = logits > `threshold` (bool); with `threshold` None,
    the full-resolution logits themselves."""
    logits = logits_to_image(low_res, input_size, original_size)
    return logits if threshold is None else logits > threshold
