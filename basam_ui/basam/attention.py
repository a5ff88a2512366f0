"""Attention over a grid of tokens with BA-SAM's scale and distance penalty.

Both functions compute, per batch element and head, for query token i and key token j on
a grid of `grid = (rows, cols)` tokens flattened row-major:

    logits_ij = scale * (q_i . k_j - beta * dist(i, j)) + rel_h[i, row_j] + rel_w[i, col_j] + bias[i, j]
    out_i     = softmax_j(logits_ij) . v_j

with dist the L1 grid distance |row_i - row_j| + |col_i - col_j| in token units. `rel_h`,
`rel_w` are SAM's decomposed relative-position terms (per query, per key row / key column),
`bias` TinyViT's learned attention biases (shared by the batch). Every term is optional.

`grid_attention` is the fast path: `scaled_dot_product_attention` with the additive terms as
a float mask, built in chunks of queries so that no per-head N x N tensor is ever held for a
large grid. In bf16 on the CPU, where SDPA with a float mask gains nothing over fp32, it is a
chunked matmul-softmax-matmul in bf16 instead, with the separable row and column terms added
by broadcasting over the key grid (no mask is built). `grid_attention_reference` is the plain
matmul-softmax-matmul in float32 (`reference.py`), for checking both.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import numbers
import os
import warnings
from typing import Callable, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from .config import length_scale

# Upper bound on the float mask built for one SDPA call. At vit_b's 12 heads one grid row of
# queries at S = 2048 needs 100 MB; 256 MB chunks keep memory small and the SDPA calls large
# (measured on a 2-core CPU: 64 MB chunks were slower, one 800 MB mask at S = 1024 too).
MASK_BUDGET_BYTES = 256 * 2**20
# Upper bound on one block of bf16 logits in the CPU bf16 path (one head's queries at a time):
# logits . k, the row and column terms and the softmax run in place on one block. Measured per
# head on the 2-core EPYC (`benchmarks/attention_chunks.py`, one run): 16 MB blocks (512
# queries at N = 16384, 128 at N = 65536) took 0.372 s and 6.78 s, 8 MB 0.380 s and 7.15 s,
# 4 MB 0.401 s and 8.05 s. (Before the softmax ran in place, a fresh 16 MB result per block
# made 16 MB blocks 0.55 s at N = 16384.)
LOW_PRECISION_BUDGET_BYTES = 16 * 2**20
# Queries per probabilities . v product: at least this many, so that v (8 MB at N = 65536)
# is read once per 256 queries rather than once per block (1.4 s instead of 1.9-2.4 s per head).
LOW_PRECISION_MIN_PV_QUERIES = 256


def attention_scale(head_dim: int, size: int, nsf: bool) -> float:
    """The logit scale λ of an attention layer.

    Arguments:
      head_dim: the key dimension d.
      size: the encoder input size S (N = (S/16)^2 tokens).
      nsf: whether NSF is on.

    Returns:
      1/sqrt(d), times ln N / ln N_train when `nsf` is on.
    """
    base = head_dim**-0.5
    return base * length_scale(size) if nsf else base


def check_beta(beta: float) -> float:
    """`beta` as a float; ValueError unless it is a finite number >= 0."""
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise ValueError(f"beta must be a number, got {type(beta).__name__}")
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    return float(beta)


def plan_chunks(
    batch: int, heads: int, n_queries: int, n_keys: int, itemsize: int, max_bytes: int
) -> Tuple[int, int]:
    """(batch_step, query_step) for building a float mask of shape (batch, heads, n_queries,
    n_keys) piecewise, each piece at most `max_bytes` (but always at least one query row).

    Whole batch elements are taken when one fits, else one batch element at a time split
    over queries.
    """
    per_query = heads * n_keys * itemsize
    per_element = per_query * n_queries
    if per_element * batch <= max_bytes:
        return batch, n_queries
    if per_element <= max_bytes:
        return max(1, max_bytes // per_element), n_queries
    return 1, max(1, min(n_queries, max_bytes // per_query))


def _grid_distances(grid: Tuple[int, int], device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(N, rows) |row_i - r| and (N, cols) |col_i - c| in float32 for the N grid tokens."""
    rows, cols = grid
    index = torch.arange(rows * cols, device=device)
    row_dist = (torch.div(index, cols, rounding_mode="floor")[:, None] - torch.arange(rows, device=device)).abs()
    col_dist = (index.remainder(cols)[:, None] - torch.arange(cols, device=device)).abs()
    return row_dist.float(), col_dist.float()


def _check_shapes(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    grid: Tuple[int, int],
    rel_h: Optional[torch.Tensor],
    rel_w: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
) -> None:
    if q.ndim != 4 or k.shape != q.shape or v.ndim != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"q, k, v must be (batch, heads, tokens, dim) with equal leading sizes, got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    rows, cols = grid
    batch, heads, n, _ = q.shape
    if rows * cols != n:
        raise ValueError(f"grid {rows}x{cols} has {rows * cols} tokens but q has {n}")
    for name, rel, size in (("rel_h", rel_h, rows), ("rel_w", rel_w, cols)):
        if rel is not None and tuple(rel.shape) != (batch, heads, n, size):
            raise ValueError(f"{name} must be {(batch, heads, n, size)}, got {tuple(rel.shape)}")
    if bias is not None:
        shape = (1,) * (4 - bias.ndim) + tuple(bias.shape)
        if bias.ndim > 4 or shape[0] != 1 or shape[1] not in (1, heads) or shape[2:] != (n, n):
            raise ValueError(
                f"bias must be shared by the batch: ({heads} or 1, {n}, {n}), got {tuple(bias.shape)}"
            )


def grid_attention(
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
    max_mask_bytes: int = MASK_BUDGET_BYTES,
) -> torch.Tensor:
    """Attention with the logits in the module docstring, via SDPA.

    Arguments:
      q, k: (B, heads, N, d) queries and keys, N = rows * cols of `grid`.
      v: (B, heads, N, dv) values.
      scale: the logit scale λ (`attention_scale`: 1/sqrt(d), times NSF's length term).
      grid: (rows, cols) of the token grid, row-major.
      beta: BM-AM's slope (0: no distance penalty).
      rel_h, rel_w: SAM's decomposed relative-position terms, (B, heads, N, rows) and
        (B, heads, N, cols), added outside the scale.
      bias: TinyViT's attention biases, (heads or 1, N, N), shared by the batch.
      max_mask_bytes: the bound on the float mask built for one SDPA call.

    Returns:
      (B, heads, N, dv) in q's dtype.

    The mask (penalty and relative terms, in q's dtype) is built for a chunk of queries at a
    time into one reused buffer of at most `max_mask_bytes` (see `plan_chunks`). bf16 on the
    CPU with rel_h/rel_w and no bias takes `_low_precision_attention`, its chunks of logits
    at most min(`max_mask_bytes`, LOW_PRECISION_BUDGET_BYTES).
    """
    beta = check_beta(beta)
    _check_shapes(q, k, v, grid, rel_h, rel_w, bias)
    batch, heads, n, _ = q.shape
    dtype, device = q.dtype, q.device
    penalty = scale * beta
    has_rel = rel_h is not None or rel_w is not None

    if not has_rel and bias is None and penalty == 0.0:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if use_low_precision_path(q, has_rel, bias):
        budget = min(max_mask_bytes, LOW_PRECISION_BUDGET_BYTES)
        return _low_precision_attention(q, k, v, scale, grid, penalty, rel_h, rel_w, budget)

    if bias is not None:
        bias = bias.to(dtype).reshape((1,) * (4 - bias.ndim) + tuple(bias.shape))
    # The mask varies over the batch and heads only through the per-query terms; the bias
    # is shared by the batch, so without per-query terms one mask serves every batch element.
    mask_batch = batch if has_rel else 1
    mask_heads = heads if has_rel else bias.shape[1] if bias is not None else 1

    rows, cols = grid
    if penalty != 0.0:
        row_dist, col_dist = _grid_distances(grid, device)
        row_pen = (row_dist * -penalty).to(dtype)  # (N, rows)
        col_pen = (col_dist * -penalty).to(dtype)  # (N, cols)
    else:
        row_pen = torch.zeros(n, rows, dtype=dtype, device=device)
        col_pen = torch.zeros(n, cols, dtype=dtype, device=device)

    batch_step, query_step = plan_chunks(mask_batch, mask_heads, n, n, q.element_size(), max_mask_bytes)
    # One buffer reused by every chunk: fresh large allocations cost page faults on the CPU.
    needs_buffer = has_rel or penalty != 0.0
    buffer = torch.empty(batch_step * mask_heads * query_step * n if needs_buffer else 0, dtype=dtype, device=device)
    single = batch_step >= mask_batch and query_step >= n
    out = None if single else q.new_empty(batch, heads, n, v.shape[-1])

    for b0 in range(0, mask_batch, batch_step):
        b1 = min(mask_batch, b0 + batch_step)
        for i0 in range(0, n, query_step):
            i1 = min(n, i0 + query_step)
            row_term = row_pen[i0:i1]
            col_term = col_pen[i0:i1]
            if rel_h is not None:
                row_term = rel_h[b0:b1, :, i0:i1] + row_term
            if rel_w is not None:
                col_term = rel_w[b0:b1, :, i0:i1] + col_term
            if has_rel:
                # (b, heads, q, rows, cols) -> (b, heads, q, N): row term + column term per key
                chunk_shape = (b1 - b0, heads, i1 - i0, rows, cols)
                mask = buffer[: math.prod(chunk_shape)].view(chunk_shape)
                torch.add(row_term[..., :, None], col_term[..., None, :], out=mask)
                mask = mask.view(b1 - b0, heads, i1 - i0, n)
                if bias is not None:
                    mask += bias[:, :, i0:i1]
            else:
                if penalty == 0.0:
                    mask = bias[:, :, i0:i1]  # the bias alone: no copy needed
                else:
                    chunk_shape = (1, mask_heads, i1 - i0, n)
                    mask = buffer[: math.prod(chunk_shape)].view(chunk_shape)
                    penalty_chunk = (row_term[:, :, None] + col_term[:, None, :]).view(i1 - i0, n)
                    if bias is not None:
                        torch.add(bias[:, :, i0:i1], penalty_chunk, out=mask)
                    else:
                        mask.copy_(penalty_chunk)
            result = F.scaled_dot_product_attention(
                q[b0:b1, :, i0:i1] if has_rel else q[:, :, i0:i1],
                k[b0:b1] if has_rel else k,
                v[b0:b1] if has_rel else v,
                attn_mask=mask,
                scale=scale,
            )
            if single:
                return result
            if has_rel:
                out[b0:b1, :, i0:i1] = result
            else:
                out[:, :, i0:i1] = result
    return out


LOW_PRECISION_MIN_TOKENS = 1024  # the ViT's global blocks from S = 512; its 14x14 windows have 196


def use_low_precision_path(q: torch.Tensor, has_rel: bool, bias: Optional[torch.Tensor]) -> bool:
    """Whether `grid_attention` takes the bf16 matmul path: bf16 queries on the CPU with
    SAM's relative-position terms, no learned bias, and a long sequence (the ViT's global
    blocks). Window blocks and TinyViT stay on SDPA with a mask (cheap at 49-196 tokens);
    CUDA and fp32 are unchanged."""
    return (
        q.dtype == torch.bfloat16
        and q.device.type == "cpu"
        and has_rel
        and bias is None
        and q.shape[2] >= LOW_PRECISION_MIN_TOKENS
    )


def _low_precision_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    grid: Tuple[int, int],
    penalty: float,
    rel_h: Optional[torch.Tensor],
    rel_w: Optional[torch.Tensor],
    max_bytes: int,
) -> torch.Tensor:
    """`grid_attention` for bf16 q, k, v with rel_h/rel_w: per chunk of queries, bf16 logits
    scale * q.k (scale applied inside the matmul), then the row term (rel_h - penalty *
    |row_i - r|, over key rows) and the column term (over key columns) added by broadcasting
    on the (rows, cols) view of the keys and a softmax, fused into one pass where
    torch.compile works (`_fused_grid_softmax`, else `_grid_softmax` in place), and
    probabilities . v in bf16. The terms are formed in float32 and rounded once; a chunk of
    logits is at most `max_bytes`, so no N x N tensor exists."""
    batch, heads, n, dim = q.shape
    rows, cols = grid
    dtype, device = q.dtype, q.device
    row_dist, col_dist = _grid_distances(grid, device)  # float32
    row_term = -penalty * row_dist if rel_h is None else rel_h.float() - penalty * row_dist  # (B, h, N, rows)
    col_term = -penalty * col_dist if rel_w is None else rel_w.float() - penalty * col_dist
    row_term = row_term.to(dtype).expand(batch, heads, n, rows).reshape(batch * heads, n, rows)
    col_term = col_term.to(dtype).expand(batch, heads, n, cols).reshape(batch * heads, n, cols)
    softmax = (compile_enabled() and _fused_grid_softmax()) or _grid_softmax
    # contiguous once: the ViT's q, k, v are strided views of one qkv tensor, and a strided
    # k or v would be copied by every block's matmul (measured: 40% of a block's time at 3072)
    q3 = q.reshape(batch * heads, n, dim).contiguous()
    keys_t = k.reshape(batch * heads, n, dim).contiguous().transpose(1, 2)
    v3 = v.reshape(batch * heads, n, v.shape[-1]).contiguous()
    out = q.new_empty(batch * heads, n, v.shape[-1])
    group, step = plan_chunks(batch * heads, 1, n, n, q.element_size(), max_bytes)
    step = _even_step(n, step)
    # a span of whole blocks shares one probabilities . v product
    span = step * max(1, min(n // step, -(-LOW_PRECISION_MIN_PV_QUERIES // step))) if group == 1 else step
    probs = q.new_empty(group, span, n)
    for g0 in range(0, batch * heads, group):
        g1 = min(batch * heads, g0 + group)
        for s0 in range(0, n, span):
            s1 = min(n, s0 + span)
            for i0 in range(s0, s1, step):
                i1 = min(s1, i0 + step)
                block = probs[: g1 - g0, i0 - s0 : i1 - s0]
                torch.baddbmm(block, q3[g0:g1, i0:i1], keys_t[g0:g1], beta=0.0, alpha=scale, out=block)
                result = softmax(block, row_term[g0:g1, i0:i1], col_term[g0:g1, i0:i1])
                if result is not block:
                    block.copy_(result)
            torch.bmm(probs[: g1 - g0, : s1 - s0], v3[g0:g1], out=out[g0:g1, s0:s1])
    return out.view(batch, heads, n, v.shape[-1])


def _grid_softmax(logits: torch.Tensor, row_term: torch.Tensor, col_term: torch.Tensor) -> torch.Tensor:
    """softmax over keys of logits (G, c, rows * cols) + row_term (G, c, rows) over key rows +
    col_term (G, c, cols) over key columns, computed in place: returns `logits` itself when it
    is contiguous (a new tensor otherwise)."""
    groups, queries, n = logits.shape
    on_grid = logits.view(groups, queries, row_term.shape[-1], col_term.shape[-1])
    on_grid += row_term[..., :, None]
    on_grid += col_term[..., None, :]
    if logits.is_contiguous():  # the CPU kernel reads each row before writing it
        return torch.ops.aten._softmax.out(logits, -1, False, out=logits)
    return torch.softmax(logits, dim=-1)


def _grid_softmax_float(logits: torch.Tensor, row_term: torch.Tensor, col_term: torch.Tensor) -> torch.Tensor:
    """`_grid_softmax` summed and normalised in float32, result in the logits' dtype: the
    form torch.compile fuses into one pass over the logits."""
    groups, queries, n = logits.shape
    on_grid = logits.view(groups, queries, row_term.shape[-1], col_term.shape[-1]).float()
    on_grid = on_grid + row_term[..., :, None].float() + col_term[..., None, :].float()
    return torch.softmax(on_grid.view(groups, queries, n), dim=-1).to(logits.dtype)


# set by `compiled_softmax` for the code it wraps (per thread and task); None: the environment decides
_COMPILE_OVERRIDE: contextvars.ContextVar[Optional[bool]] = contextvars.ContextVar("basam_ui_compile", default=None)


def compile_enabled() -> bool:
    """Whether the bf16 path fuses its softmax with torch.compile: as `compiled_softmax` says
    around the call, else BASAM_UI_COMPILE=1 in the environment (read at each call). Off by
    default: on the shared 2-core CPU the compiled softmax was not measurably faster than the
    eager one for a whole vit_b global block (README), and compiling costs 20-30 s per shape."""
    override = _COMPILE_OVERRIDE.get()
    return os.environ.get("BASAM_UI_COMPILE", "0") == "1" if override is None else override


@contextlib.contextmanager
def compiled_softmax(enabled: bool) -> Iterator[None]:
    """Run the enclosed attention with the compiled softmax on or off, whatever the environment
    says (the attention benchmark compares the two in one process)."""
    token = _COMPILE_OVERRIDE.set(bool(enabled))
    try:
        yield
    finally:
        _COMPILE_OVERRIDE.reset(token)


@functools.lru_cache(maxsize=None)
def _fused_grid_softmax() -> Optional[Callable]:
    """`_grid_softmax_float` under torch.compile, so the broadcast adds and the softmax are one
    pass over the logits instead of four; None where compiling fails (no C++ compiler), and
    the eager `_grid_softmax` serves instead (as it does unless BASAM_UI_COMPILE=1).

    Shapes are static (measured on the 2-core CPU: dynamic shapes made the kernel 3x slower
    than static ones, which were 2x faster than eager): one compile per chunk shape, and
    `_low_precision_attention` picks chunks that divide the grid, so one per input size.
    """
    try:
        import torch._dynamo

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        compiled = torch.compile(_grid_softmax_float, dynamic=False, fullgraph=True)
        compiled(*(torch.zeros(2, 3, size, dtype=torch.bfloat16) for size in (6, 2, 3)))  # compiles now
    except Exception as exc:  # no compiler or an unsupported platform: stay eager
        warnings.warn(f"torch.compile unavailable for the bf16 attention softmax ({exc}); using the eager path")
        return None
    return compiled


def _even_step(n: int, step: int) -> int:
    """The largest divisor of n that is at most `step`, or `step` itself when that divisor is
    under half of it: chunks of one shape, so the compiled softmax compiles once."""
    best = max(d for d in range(1, min(n, step) + 1) if n % d == 0)
    return best if 2 * best >= step else step
