"""A reference BA-SAM image encoder for tests, written from the spec's formulas and kept
apart from basam_ui's fast path.

It deep-copies the stock encoder, adapts it to input size S the plain way (a resized
`pos_embed` parameter for the ViT; TinyViT's stage resolutions and final reshape), and
swaps each affected attention's forward for a naive matmul-softmax-matmul with the full
N x N logits:

    SAM ViT global blocks:  logits = lam * (q.k - beta * D) + rel_h + rel_w
    TinyViT (every layer):  logits = lam * (q.k - beta * D) + learned biases

with lam = (ln N / ln 4096) / sqrt(d) under NSF (N = (S/16)^2), else 1/sqrt(d), and D the
L1 distance between token grid positions (inside the window for TinyViT).
"""

from __future__ import annotations

import copy
import math
import types

import torch
import torch.nn.functional as F
from torch import nn

from segment_anything.modeling.image_encoder import add_decomposed_rel_pos


def reference_lambda(size: int, head_dim: int, nsf: bool) -> float:
    n_test = (size // 16) ** 2
    ratio = math.log(n_test) / math.log(4096) if nsf else 1.0
    return ratio / math.sqrt(head_dim)


def l1_distance(rows: int, cols: int) -> torch.Tensor:
    """(N, N) |row_i - row_j| + |col_i - col_j| for an rows x cols grid, row-major."""
    row = torch.arange(rows, dtype=torch.float32).repeat_interleave(cols)
    col = torch.arange(cols, dtype=torch.float32).repeat(rows)
    return (row[:, None] - row[None, :]).abs() + (col[:, None] - col[None, :]).abs()


def reference_encoder(sam: nn.Module, size: int, nsf: bool, bmam: bool, beta: float) -> nn.Module:
    """A deep copy of `sam.image_encoder` that runs at input size `size` with the setting."""
    encoder = copy.deepcopy(sam.image_encoder)
    slope = beta if bmam else 0.0
    if type(encoder).__name__ == "TinyViT":
        _adapt_tinyvit(encoder, size, nsf, slope)
    else:
        _adapt_vit(encoder, size, nsf, slope)
    return encoder.eval()


def _adapt_vit(encoder: nn.Module, size: int, nsf: bool, slope: float) -> None:
    grid = size // 16
    if encoder.pos_embed is not None and encoder.pos_embed.shape[1] != grid:
        table = encoder.pos_embed.data.permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(grid, grid), mode="bicubic", align_corners=False, antialias=False)
        encoder.pos_embed = nn.Parameter(table.permute(0, 2, 3, 1).contiguous())
    for block in encoder.blocks:
        if block.window_size == 0:
            head_dim = block.attn.qkv.in_features // block.attn.num_heads
            lam = reference_lambda(size, head_dim, nsf)
            block.attn.forward = types.MethodType(_naive_vit_global_forward(lam, slope), block.attn)


def _naive_vit_global_forward(lam: float, slope: float):
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, batch * self.num_heads, height * width, -1).unbind(0)
        dist = l1_distance(height, width).to(q)
        outputs = []
        for i in range(q.shape[0]):  # one head at a time keeps the N x N logits small
            logits = lam * (q[i : i + 1] @ k[i : i + 1].transpose(-2, -1) - slope * dist)
            logits = add_decomposed_rel_pos(
                logits, q[i : i + 1], self.rel_pos_h, self.rel_pos_w, (height, width), (height, width)
            )
            outputs.append(logits.softmax(dim=-1) @ v[i : i + 1])
        out = torch.cat(outputs)
        out = out.view(batch, self.num_heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
        return self.proj(out)

    return forward


def _adapt_tinyvit(encoder: nn.Module, size: int, nsf: bool, slope: float) -> None:
    # Stage grids for input S: S/4 (convs), S/8, S/16, S/16 (the last merging keeps the size).
    stage_grids = [size // 4, size // 8, size // 16, size // 16]
    for layer, grid in zip(encoder.layers, stage_grids):
        layer.input_resolution = (grid, grid)
        for block in layer.blocks:
            if hasattr(block, "input_resolution"):
                block.input_resolution = (grid, grid)
            if hasattr(block, "attn"):
                lam = reference_lambda(size, block.attn.key_dim, nsf)
                block.attn.forward = types.MethodType(_naive_tinyvit_forward(lam, slope), block.attn)
        if layer.downsample is not None:
            layer.downsample.input_resolution = (grid, grid)
    final = size // 16

    def forward_features(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        batch, _, channels = x.size()
        x = x.view(batch, final, final, channels).permute(0, 3, 1, 2)
        return self.neck(x)

    encoder.forward_features = types.MethodType(forward_features, encoder)


def _naive_tinyvit_forward(lam: float, slope: float):
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        batch, n, _ = x.shape
        x = self.norm(x)
        qkv = self.qkv(x).view(batch, n, self.num_heads, -1)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.d], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        window = math.isqrt(n)
        dist = l1_distance(window, window).to(q)
        learned = self.attention_biases[:, self.attention_bias_idxs]
        logits = lam * (q @ k.transpose(-2, -1) - slope * dist) + learned
        out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, n, self.dh)
        return self.proj(out)

    return forward
