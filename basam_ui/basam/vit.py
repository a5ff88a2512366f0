"""SAM's ViT image encoder (vit_b/l/h) run at any input size S with a BA-SAM setting.

The forward pass of `segment_anything`'s `ImageEncoderViT`, written as functions that use
the encoder's own submodules and weights: nothing is copied or changed on the module, so
several threads may encode with different settings at once.
"""

from __future__ import annotations

import threading
import weakref
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from segment_anything.modeling.image_encoder import get_rel_pos, window_partition, window_unpartition

from .attention import attention_scale, grid_attention
from .config import BASAMConfig


class _PosEmbedCache:
    """Resized absolute position tables, a few per encoder, keyed by grid, device, dtype and
    the table's version (so reloaded weights are never served stale). Thread-safe."""

    def __init__(self, per_encoder: int = 4) -> None:
        self._lock = threading.Lock()
        self._tables: "weakref.WeakKeyDictionary[nn.Module, Dict[tuple, torch.Tensor]]" = weakref.WeakKeyDictionary()
        self._per_encoder = per_encoder

    def get(self, encoder: nn.Module, grid: int, dtype: torch.dtype) -> torch.Tensor:
        table = encoder.pos_embed
        key = (grid, table.device, dtype, table._version, table.data_ptr())
        with self._lock:
            found = self._tables.get(encoder, {}).get(key)
        if found is not None:
            return found
        resized = resize_pos_embed(table, grid).to(dtype)
        with self._lock:
            entries = self._tables.setdefault(encoder, {})
            entries[key] = resized
            while len(entries) > self._per_encoder:
                entries.pop(next(iter(entries)))
        return resized


_POS_EMBED_CACHE = _PosEmbedCache()


def resize_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, g0, g0, C) table -> (1, grid, grid, C): bicubic, align_corners=False, no
    antialias, computed in float32 (spec sec. 5). The table itself when the size matches."""
    if pos_embed.shape[1] == grid and pos_embed.shape[2] == grid:
        return pos_embed.detach()
    with torch.no_grad():
        resized = F.interpolate(
            pos_embed.detach().float().permute(0, 3, 1, 2),
            size=(grid, grid),
            mode="bicubic",
            align_corners=False,
            antialias=False,
        )
    return resized.permute(0, 2, 3, 1).contiguous().to(pos_embed.dtype)


def vit_forward(encoder: nn.Module, x: torch.Tensor, config: BASAMConfig) -> torch.Tensor:
    """(B, 3, S, S) normalised images -> (B, out_chans, S/16, S/16) embeddings.

    NSF and BM-AM act on the global-attention blocks (window_size == 0) only; the window
    blocks are SAM's, run through the same fast attention with no penalty.
    """
    size = x.shape[-1]
    x = encoder.patch_embed(x)  # (B, S/16, S/16, C)
    if encoder.pos_embed is not None:
        x = x + _POS_EMBED_CACHE.get(encoder, x.shape[1], x.dtype)
    for block in encoder.blocks:
        x = vit_block(block, x, size, config)
    return encoder.neck(x.permute(0, 3, 1, 2))


def vit_block(block: nn.Module, x: torch.Tensor, size: int, config: BASAMConfig) -> torch.Tensor:
    """One `segment_anything` Block on (B, H, W, C) tokens; returns the same shape."""
    shortcut = x
    x = block.norm1(x)
    head_dim = block.attn.qkv.in_features // block.attn.num_heads
    if block.window_size > 0:
        height, width = x.shape[1], x.shape[2]
        x, pad_hw = window_partition(x, block.window_size)
        x = vit_attention(block.attn, x, scale=head_dim**-0.5, beta=0.0)
        x = window_unpartition(x, block.window_size, pad_hw, (height, width))
    else:
        x = vit_attention(block.attn, x, scale=attention_scale(head_dim, size, config.nsf), beta=config.slope)
    x += shortcut  # x is this block's own fresh tensor: adding in place saves a copy
    x += block.mlp(block.norm2(x))
    return x


def vit_attention(attn: nn.Module, x: torch.Tensor, *, scale: float, beta: float) -> torch.Tensor:
    """A `segment_anything` Attention on (B, H, W, C) tokens with logit scale `scale` and
    BM-AM slope `beta`: logits = scale * (q.k - beta * L1 distance) + rel_h + rel_w."""
    batch, height, width, _ = x.shape
    n = height * width
    heads = attn.num_heads
    qkv = attn.qkv(x).reshape(batch, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, heads, N, d) each
    rel_h = rel_w = None
    if attn.use_rel_pos:
        rel_h, rel_w = decomposed_rel_terms(q, attn.rel_pos_h, attn.rel_pos_w, (height, width))
    out = grid_attention(q, k, v, scale=scale, grid=(height, width), beta=beta, rel_h=rel_h, rel_w=rel_w)
    out = out.permute(0, 2, 1, 3).reshape(batch, height, width, -1)
    return attn.proj(out)


def decomposed_rel_terms(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, grid: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """SAM's decomposed relative-position terms for (B, heads, N, d) queries on `grid`:
    rel_h (B, heads, N, rows) and rel_w (B, heads, N, cols), from the unscaled q as in
    `add_decomposed_rel_pos`; the tables are resized linearly by `get_rel_pos` when the
    grid differs from the trained one."""
    height, width = grid
    batch, heads, n, dim = q.shape
    rh = get_rel_pos(height, height, rel_pos_h).to(q.dtype)  # (rows, rows, d)
    rw = get_rel_pos(width, width, rel_pos_w).to(q.dtype)  # (cols, cols, d)
    grid_q = q.reshape(batch, heads, height, width, dim)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, rh).reshape(batch, heads, n, height)
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", grid_q, rw).reshape(batch, heads, n, width)
    return rel_h, rel_w
