"""How grid points reach the decoder: `PointDecoder` (what `ProposalRun` calls; tests inject a
stand-in), `segmenter_decoder` (the real one), and the batch size's memory cap from S."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..segmenter import ImageEmbedding

# Peak memory the lean decoder adds per point and per image token (S/16)^2, multimask, fp32:
# benchmarks/proposals.py --memory (peak RSS of a fresh process) measured 11.5-12.0, 9.1-9.3, 6.2-6.4 KiB
# for batches of 1, 4 and 16 points at S = 1024, and 11.0, 6.9 and 6.2 KiB at S = 2048 (the
# image side's copies per point dominate; one point's figure holds the grid's positional
# encoding too). 13 KiB bounds them all: S = 1024 costs up to 52 MiB a point, S = 2048 208 MiB.
DECODER_BYTES_PER_TOKEN = 13 * 1024
PointDecoder = Callable[[ImageEmbedding, np.ndarray], tuple[torch.Tensor, torch.Tensor]]


def max_points_per_batch(size: int, memory_bytes: int) -> int:
    """The most grid points one batch may decode at S = `size` within `memory_bytes` of decoder
    working memory (DECODER_BYTES_PER_TOKEN per point and image token), at least 1."""
    return max(1, int(memory_bytes // (DECODER_BYTES_PER_TOKEN * (size // 16) ** 2)))


def decoder_memory_budget(device: torch.device) -> int:
    """Bytes a proposal batch may use: half the free memory of a CUDA device; 1 GiB elsewhere
    (a CPU batch is limited by time long before memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 1 << 30


def segmenter_decoder(segmenter) -> PointDecoder:
    """The real `PointDecoder` of a `Segmenter`: points (B, 2) in the embedding's original pixels,
    one foreground point per prompt set, multimask -> low-res logits (B, 3, S/4, S/4) and
    predicted IoUs (B, 3), float32 on the segmenter's device; its decoder precision and lean
    decoder setting, as a click would get."""
    from ..decoder import decode_masks, dense_pe
    from ..precision import autocast

    pe_by_grid: dict[int, torch.Tensor] = {}

    def decode(embedding: ImageEmbedding, points: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        scale = np.array(embedding.input_size[::-1], np.float64) / np.array(embedding.original_size[::-1], np.float64)
        device = segmenter.device
        grid = embedding.embedding.shape[-1]
        with torch.inference_mode():
            if grid not in pe_by_grid:
                pe_by_grid[grid] = dense_pe(segmenter.sam.prompt_encoder, grid)
            coords = torch.as_tensor(np.asarray(points, np.float64) * scale, dtype=torch.float32, device=device)[:, None]
            labels = torch.ones(coords.shape[:2], dtype=torch.float32, device=device)
            with autocast(segmenter.decoder_precision, device):
                low_res, iou = decode_masks(
                    segmenter.sam, embedding.embedding, coords, labels, None, None, True,
                    image_pe=pe_by_grid[grid], lean=segmenter.lean_decoder,
                )  # fmt: skip
            return low_res.float(), iou.float()

    return decode
