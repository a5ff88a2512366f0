"""The plain attention formula of `attention.grid_attention`, with the full N x N logits in
float32: what the fast paths are checked against (small grids only)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .attention import _check_shapes, check_beta


def grid_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float,
    grid: Tuple[int, int],
    beta: float = 0.0,
    rel_h: Optional[torch.Tensor] = None,
    rel_w: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The same attention as `grid_attention`, written out with the full N x N logits in
    float32 (small grids only). Returns q's dtype."""
    beta = check_beta(beta)
    _check_shapes(q, k, v, grid, rel_h, rel_w, bias)
    rows, cols = grid
    batch, heads, n, _ = q.shape
    qf, kf, vf = q.float(), k.float(), v.float()
    token_row = torch.arange(n, device=q.device) // cols
    token_col = torch.arange(n, device=q.device) % cols
    dist = (token_row[:, None] - token_row[None, :]).abs() + (token_col[:, None] - token_col[None, :]).abs()
    logits = scale * (qf @ kf.transpose(-2, -1) - beta * dist.float())
    if rel_h is not None:
        logits = logits + rel_h.float()[..., token_row]  # key j gets rel_h[i, row_j]
    if rel_w is not None:
        logits = logits + rel_w.float()[..., token_col]
    if bias is not None:
        logits = logits + bias.float()
    return (logits.softmax(dim=-1) @ vf).to(q.dtype)
