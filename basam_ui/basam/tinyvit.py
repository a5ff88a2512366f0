"""MobileSAM's TinyViT image encoder (vit_t) run at any input size S with a BA-SAM setting.

`mobile_sam`'s TinyViT fixes each stage's grid for a 1024 input (`input_resolution`) and
reshapes to 64x64 before the neck. These functions redo its forward pass with grids that
follow S (S/4, S/8, S/16, S/16: the last patch merging has stride 1), using the encoder's
own submodules and weights; nothing on the module is copied or changed.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention_scale, grid_attention
from .config import BASAMConfig


def tinyvit_forward(encoder: nn.Module, x: torch.Tensor, config: BASAMConfig) -> torch.Tensor:
    """(B, 3, S, S) normalised images -> (B, 256, S/16, S/16) embeddings.

    Every attention layer gets NSF's scale (ln N / ln N_train for N = (S/16)^2, times
    1/sqrt(key_dim)) and BM-AM's penalty on the L1 distance inside its window.
    """
    size = x.shape[-1]
    x = encoder.patch_embed(x)  # (B, C, S/4, S/4)
    hw = (x.shape[2], x.shape[3])
    for layer in encoder.layers:
        for block in layer.blocks:
            if hasattr(block, "attn"):  # TinyViTBlock on (B, L, C) tokens
                x = tinyvit_block(block, x, hw, size, config)
            else:  # MBConv on (B, C, H, W): no fixed resolution, the module runs as is
                x = block(x)
        if layer.downsample is not None:
            x, hw = patch_merging(layer.downsample, x, hw)
    batch, _, channels = x.shape
    x = x.view(batch, hw[0], hw[1], channels).permute(0, 3, 1, 2)
    return encoder.neck(x)


def patch_merging(merge: nn.Module, x: torch.Tensor, hw: Tuple[int, int]) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """TinyViT's PatchMerging on (B, C, H, W) or (B, H*W, C) input with grid `hw`;
    returns (B, H'*W', C') tokens and the new grid (H/2 or H, from the conv's stride)."""
    if x.ndim == 3:
        batch = x.shape[0]
        x = x.view(batch, hw[0], hw[1], -1).permute(0, 3, 1, 2)
    x = merge.act(merge.conv1(x))
    x = merge.act(merge.conv2(x))
    x = merge.conv3(x)
    new_hw = (x.shape[2], x.shape[3])
    return x.flatten(2).transpose(1, 2), new_hw


def tinyvit_block(
    block: nn.Module, x: torch.Tensor, hw: Tuple[int, int], size: int, config: BASAMConfig
) -> torch.Tensor:
    """One TinyViTBlock on (B, H*W, C) tokens of grid `hw`: window attention (windows padded
    at the bottom/right as TinyViT does), local conv, MLP."""
    height, width = hw
    batch, tokens, channels = x.shape
    ws = block.window_size
    shortcut = x
    x = x.view(batch, height, width, channels)
    pad_b = (ws - height % ws) % ws
    pad_r = (ws - width % ws) % ws
    if pad_b or pad_r:
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    n_h, n_w = (height + pad_b) // ws, (width + pad_r) // ws
    x = x.view(batch, n_h, ws, n_w, ws, channels).transpose(2, 3).reshape(batch * n_h * n_w, ws * ws, channels)
    x = tinyvit_attention(block.attn, x, (ws, ws), size, config)
    x = x.view(batch, n_h, n_w, ws, ws, channels).transpose(2, 3).reshape(batch, n_h * ws, n_w * ws, channels)
    if pad_b or pad_r:
        x = x[:, :height, :width]
    x = x.reshape(batch, tokens, channels)
    x = shortcut + x  # drop_path is the identity at inference

    x = block.local_conv(x.transpose(1, 2).reshape(batch, channels, height, width))
    x = x.view(batch, channels, tokens).transpose(1, 2)
    return x + block.mlp(x)


def tinyvit_attention(
    attn: nn.Module, x: torch.Tensor, window: Tuple[int, int], size: int, config: BASAMConfig
) -> torch.Tensor:
    """TinyViT's Attention on (windows, n, C): logits = lambda * (q.k - beta * L1 distance)
    + learned biases, the biases outside the scale."""
    windows, n, _ = x.shape
    x = attn.norm(x)
    qkv = attn.qkv(x).view(windows, n, attn.num_heads, -1)
    q, k, v = qkv.split([attn.key_dim, attn.key_dim, attn.d], dim=3)
    q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
    # The learned biases straight from the parameter (TinyViT's cached `ab` buffer is the
    # same gather, made when the module was last put in eval mode).
    bias = attn.attention_biases[:, attn.attention_bias_idxs]  # (heads, n, n)
    scale = attention_scale(attn.key_dim, size, config.nsf)
    out = grid_attention(q, k, v, scale=scale, grid=window, beta=config.slope, bias=bias)
    return attn.proj(out.transpose(1, 2).reshape(windows, n, attn.dh))
