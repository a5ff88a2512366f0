"""SAM's mask decoder forward, rewritten to touch the S/16 x S/16 image tokens as little as
possible: the same weights and the same arithmetic up to floating-point reassociation.

At S = 2048 the decoder's image side is 16,384 tokens x 256 channels, while its prompt side
is ~7 tokens. The stock forward projects every image token to queries, keys and values,
splits and recombines heads (copies of the whole image side), adds the positional encoding
twice per layer and runs the two transposed convolutions of the upscaling in NCHW with a
LayerNorm2d of five passes. Here, per attention between the tokens and the image:

- tokens -> image: q . (Wk x + bk) = (Wk^T q) . x + q . bk; the last term is the same for
  every key, so the softmax drops it; and P (Wv x + bv) = Wv (P x) + bv. The image tokens
  are never projected: two thin matmuls (heads x tokens rows) against the image side.
- image -> tokens: the query projection folds into the tokens' keys (Wq^T k), and the output
  projection into their values (v Wo^T per head): two thin matmuls again.

The upscaling runs channels-last: a k=2, s=2 transposed convolution is one matmul per pixel
to a 2 x 2 patch; the LayerNorm2d is `F.layer_norm` over the channels; only the requested
masks are formed. Measured with `basam-ui bench prompt` ("decoder forward": SAM's against lean).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def supports_lean(mask_decoder: nn.Module) -> bool:
    """Whether `mask_decoder` has the structure of SAM's MaskDecoder that `lean_predict_masks`
    rewrites (SAM and MobileSAM do); others keep their own forward."""
    try:
        up = mask_decoder.output_upscaling
        transformer = mask_decoder.transformer
        return (
            len(up) == 5
            and isinstance(up[0], nn.ConvTranspose2d) and isinstance(up[3], nn.ConvTranspose2d)
            and up[0].kernel_size == up[0].stride == (2, 2) and up[3].kernel_size == up[3].stride == (2, 2)
            and type(up[1]).__name__ == "LayerNorm2d"
            and all(hasattr(layer, "cross_attn_image_to_token") for layer in transformer.layers)
            and hasattr(transformer, "final_attn_token_to_image")
        )  # fmt: skip
    except (AttributeError, TypeError):
        return False


def lean_predict_masks(
    mask_decoder: nn.Module,
    image_embedding: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    multimask_output: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`mask_decoder(image_embedding, image_pe, sparse, dense, multimask_output)` for B prompt
    sets on one image: embedding and image_pe (1, C, g, g), sparse (B, n, C), dense (1 or B,
    C, g, g) -> low-res logits (B, M, 4g, 4g) and IoU predictions (B, M), M = 3 with
    `multimask_output`, else 1. Each prompt set gets its own copy of the image side after the
    first attention, so memory grows with B (about 4 g^2 x 256 floats per set)."""
    wanted = slice(1, None) if multimask_output else slice(0, 1)
    return _predict(mask_decoder, image_embedding, image_pe, sparse, dense, wanted)


def lean_predict_all_masks(
    mask_decoder: nn.Module, image_embedding: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All of the decoder's candidates in one pass, as SAM's `predict_masks`: low-res logits
    (B, 4, 4g, 4g) and IoU predictions (B, 4); candidate 0 is the single-mask answer, 1..3
    the multimask ones (what `onnx_decoder` exports)."""
    return _predict(mask_decoder, image_embedding, image_pe, sparse, dense, slice(0, None))


def _predict(md: nn.Module, image_embedding, image_pe, sparse, dense, wanted: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """The candidates `wanted` (a slice of the mask tokens) for B prompt sets -> (B, M, 4g, 4g), (B, M)."""
    batch = sparse.shape[0]
    output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight])
    tokens = torch.cat([output_tokens.expand(batch, -1, -1), sparse.to(output_tokens.dtype)], dim=1)
    grid = image_embedding.shape[-1]
    keys = (image_embedding + dense).flatten(2).transpose(1, 2).contiguous()  # (1 or B, N, C), row-major over the grid
    key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()  # (1, N, C)
    queries, keys = _transformer(md.transformer, keys, key_pe, tokens)
    mask_tokens = queries[:, 1 : 1 + md.num_mask_tokens][:, wanted]  # (B, M, C)
    first = wanted.start or 0
    hyper = torch.stack(
        [md.output_hypernetworks_mlps[first + i](mask_tokens[:, i]) for i in range(mask_tokens.shape[1])], dim=1
    )  # (B, M, c)
    masks = _upscale_and_project(md.output_upscaling, keys.expand(batch, -1, -1), grid, hyper)
    iou = md.iou_prediction_head(queries[:, 0])[:, wanted]
    return masks, iou


def _transformer(transformer: nn.Module, keys: torch.Tensor, key_pe: torch.Tensor, point_embedding: torch.Tensor):
    """TwoWayTransformer.forward with the image side as (1 or B, N, C): -> queries (B, T, C),
    keys (1 or B, N, C) (B after the first image -> tokens attention)."""
    queries = point_embedding
    for layer in transformer.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + point_embedding
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        # k once (the stock block adds the PE twice; keys do not change in between), and both
        # in the matmuls' dtype once, not once per matmul under autocast
        k, keys_mm = _for_matmul(keys + key_pe), _for_matmul(keys)
        queries = layer.norm2(queries + _tokens_to_image(layer.cross_attn_token_to_image, queries + point_embedding, k, keys_mm))
        queries = layer.norm3(queries + layer.mlp(queries))
        keys = layer.norm4(keys + _image_to_tokens(layer.cross_attn_image_to_token, k, queries + point_embedding, queries))
    k, keys_mm = _for_matmul(keys + key_pe), _for_matmul(keys)
    final = _tokens_to_image(transformer.final_attn_token_to_image, queries + point_embedding, k, keys_mm)
    return transformer.norm_final_attn(queries + final), keys


def _for_matmul(x: torch.Tensor) -> torch.Tensor:
    """x in the dtype autocast gives matmuls on its device (itself when autocast is off)."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return x.to(torch.get_autocast_dtype(device))
    return x


def _heads(attn: nn.Module) -> tuple[int, int]:
    return attn.num_heads, attn.internal_dim // attn.num_heads


def _tokens_to_image(attn: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """attn(q=q (B, T, C), k=k, v=v (1 or B, N, C)) -> (B, T, C) without projecting k or v."""
    heads, d = _heads(attn)
    batch, t, channels = q.shape
    qh = attn.q_proj(q).view(batch, t, heads, d)
    w_k = attn.k_proj.weight.view(heads, d, channels)
    # per head, q_h Wk_h: (B, h*T, C); q . bk is constant over the keys and leaves the softmax
    folded_q = torch.einsum("bthd,hdc->bhtc", qh, w_k).reshape(batch, heads * t, channels) / math.sqrt(d)
    probs = torch.softmax(folded_q.to(k.dtype) @ k.transpose(1, 2), dim=-1)  # (B, h*T, N)
    pooled = (probs.to(v.dtype) @ v).view(batch, heads, t, channels)  # P x per head
    w_v = attn.v_proj.weight.view(heads, d, channels)
    out = torch.einsum("bhtc,hdc->bthd", pooled.to(w_v.dtype), w_v).reshape(batch, t, heads * d) + attn.v_proj.bias
    return attn.out_proj(out)


def _image_to_tokens(attn: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """attn(q=q (1 or B, N, C), k=k, v=v (B, T, C)) -> (B, N, C) without projecting q or
    recombining heads: scores = q (Wq^T k) + bq . k, output = P (v Wo^T per head) + bo."""
    heads, d = _heads(attn)
    channels = q.shape[-1]
    batch, t, _ = k.shape
    kh = attn.k_proj(k).view(batch, t, heads, d)
    vh = attn.v_proj(v).view(batch, t, heads, d)
    w_q = attn.q_proj.weight.view(heads, d, channels)
    scale = 1.0 / math.sqrt(d)
    folded_k = torch.einsum("hdc,bthd->bcht", w_q, kh).reshape(batch, channels, heads * t) * scale
    score_bias = torch.einsum("hd,bthd->bht", attn.q_proj.bias.view(heads, d), kh).reshape(batch, 1, heads * t) * scale
    scores = torch.baddbmm(score_bias.to(q.dtype), q.expand(batch, -1, -1), folded_k.to(q.dtype))  # (B, N, h*T)
    probs = torch.softmax(scores.view(batch, -1, heads, t), dim=-1).view(batch, -1, heads * t)
    w_out = attn.out_proj.weight  # (C, h*d)
    folded_v = torch.einsum("bthd,ehd->bhte", vh, w_out.view(-1, heads, d)).reshape(batch, heads * t, -1)
    return torch.baddbmm(attn.out_proj.bias.to(probs.dtype), probs, folded_v.to(probs.dtype))


def _upscale_and_project(upscaling: nn.Sequential, keys: torch.Tensor, grid: int, hyper: torch.Tensor) -> torch.Tensor:
    """output_upscaling on keys (B, N, C) (the g x g grid, row-major), then hyper (B, M, c) .
    each upscaled pixel -> (B, M, 4g, 4g), channels-last throughout."""
    conv1, norm, act1, conv2, act2 = upscaling
    batch, m = hyper.shape[:2]
    x = _patch_matmul(conv1, _for_matmul(keys.reshape(-1, keys.shape[-1])))  # (B N 4, C1): pixel (i, j), sub-pixel (a, b)
    x = act1(F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps))
    x = act2(_patch_matmul(conv2, x))  # (B N 16, c): (i, j, a, b, a2, b2)
    masks = x.view(batch, -1, x.shape[-1]) @ hyper.transpose(1, 2).to(x.dtype)  # (B, N 16, M)
    # output row 4i + 2a + a2, column 4j + 2b + b2
    masks = masks.view(batch, grid, grid, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
    return masks.reshape(batch, m, 4 * grid, 4 * grid)


def _patch_matmul(conv: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """A kernel-2, stride-2 ConvTranspose2d on pixels x (P, C_in) -> (P * 4, C_out), each
    pixel's 2 x 2 patch in (a, b) order."""
    c_in, c_out = conv.weight.shape[:2]
    weight = conv.weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out)  # (c, (a, b, o))
    out = torch.addmm(conv.bias.repeat(4).to(x.dtype), x, weight.to(x.dtype))
    return out.view(-1, c_out)
