"""The grid attention op: fast path against the plain reference, chunking, memory bounds,
NSF's entropy property, and bad arguments."""

from __future__ import annotations

import math
import re
import sys
import threading
import time

import pytest
import torch

from basam_ui.basam import attention
from basam_ui.basam.attention import attention_scale, grid_attention, plan_chunks
from basam_ui.basam.reference import grid_attention_reference


def _inputs(batch, heads, grid, dim, *, rel=True, bias=False, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rows, cols = grid
    n = rows * cols
    q, k, v = (torch.randn(batch, heads, n, dim, generator=gen) for _ in range(3))
    extra = {}
    if rel:
        extra["rel_h"] = torch.randn(batch, heads, n, rows, generator=gen)
        extra["rel_w"] = torch.randn(batch, heads, n, cols, generator=gen)
    if bias:
        extra["bias"] = torch.randn(heads, n, n, generator=gen)
    cast = lambda t: t.to(dtype)  # noqa: E731
    return cast(q), cast(k), cast(v), {name: cast(t) for name, t in extra.items()}


@pytest.mark.parametrize(
    "rel, bias, beta",
    [(True, False, 0.5), (True, True, 0.5), (False, True, 0.5), (False, True, 0.0), (False, False, 1.5), (True, False, 0.0)],
)
def test_fast_matches_reference(rel, bias, beta):
    q, k, v, extra = _inputs(2, 3, (6, 9), 16, rel=rel, bias=bias)
    fast = grid_attention(q, k, v, scale=0.3, grid=(6, 9), beta=beta, **extra)
    reference = grid_attention_reference(q, k, v, scale=0.3, grid=(6, 9), beta=beta, **extra)
    assert fast.shape == (2, 3, 54, 16)
    assert (fast - reference).abs().max().item() <= 1e-4


@pytest.mark.parametrize("rel, bias", [(True, False), (True, True), (False, True), (False, False)])
def test_chunked_matches_reference(rel, bias):
    """A tiny mask budget forces many query and batch chunks; the result must not change."""
    q, k, v, extra = _inputs(3, 2, (5, 7), 8, rel=rel, bias=bias, seed=1)
    n = 35
    budget = 2 * n * 4 * 3  # three query rows of the (heads, n) mask per chunk
    assert plan_chunks(3 if rel else 1, 2, n, n, 4, budget)[1] < n
    fast = grid_attention(q, k, v, scale=0.25, grid=(5, 7), beta=0.7, max_mask_bytes=budget, **extra)
    reference = grid_attention_reference(q, k, v, scale=0.25, grid=(5, 7), beta=0.7, **extra)
    assert (fast - reference).abs().max().item() <= 1e-4


def test_penalty_is_l1_grid_distance():
    """With q = k = 0 and v = one-hot tokens the output is the attention row itself, which
    must fall off as exp(-scale * beta * (|dr| + |dc|))."""
    rows, cols, scale, beta = 4, 5, 0.5, 1.0
    n = rows * cols
    q = torch.zeros(1, 1, n, 4)
    v = torch.eye(n)[None, None]
    weights = grid_attention(q, q, v, scale=scale, grid=(rows, cols), beta=beta)[0, 0]
    query = 7  # row 1, col 2
    expected = torch.tensor(
        [math.exp(-scale * beta * (abs(r - 1) + abs(c - 2))) for r in range(rows) for c in range(cols)]
    )
    assert torch.allclose(weights[query], expected / expected.sum(), atol=1e-6)


def test_bfloat16_close_to_float32_reference():
    q, k, v, extra = _inputs(1, 2, (8, 8), 32, rel=True, bias=True)
    fast = grid_attention(
        q.bfloat16(), k.bfloat16(), v.bfloat16(), scale=0.2, grid=(8, 8), beta=0.5,
        **{name: t.bfloat16() for name, t in extra.items()},
    )
    assert fast.dtype == torch.bfloat16
    reference = grid_attention_reference(q, k, v, scale=0.2, grid=(8, 8), beta=0.5, **extra)
    assert (fast.float() - reference).abs().max().item() <= 5e-2


@pytest.mark.parametrize("budget, compiled, span", [
    (None, True, 256), (2 * 45 * 2, True, 256), (2 * 45 * 2, False, 256), (4 * 45 * 2, False, 5)])
def test_bfloat16_cpu_path_matches_reference(budget, compiled, span, monkeypatch):
    """bf16 with SAM's relative terms on the CPU takes the matmul path (no SDPA, no mask),
    chunked or not (blocks of 1 or 3 queries, probabilities . v over all 45 or over spans of
    6, the last one short), with the compiled fused softmax or the eager one, and stays
    within bf16's error of the float32 reference: relative error below 2% (bf16 keeps 8
    significant bits; measured ~0.8%)."""
    monkeypatch.setattr(attention, "LOW_PRECISION_MIN_PV_QUERIES", span)
    q, k, v, extra = _inputs(2, 3, (5, 9), 16, rel=True, seed=4)
    assert attention._fused_grid_softmax() is not None  # torch.compile works here (CI too)
    monkeypatch.setenv("BASAM_UI_COMPILE", "1" if compiled else "0")
    eager = []
    real_eager = attention._grid_softmax
    monkeypatch.setattr(attention, "_grid_softmax", lambda *a: eager.append(1) or real_eager(*a))
    monkeypatch.setattr(attention, "LOW_PRECISION_MIN_TOKENS", 45)  # a small grid takes it too
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", None)  # must not be called
    fast = grid_attention(
        q.bfloat16(), k.bfloat16(), v.bfloat16(), scale=0.3, grid=(5, 9), beta=0.5,
        max_mask_bytes=budget or attention.MASK_BUDGET_BYTES,  # 2 * 45 * 2: two queries per chunk
        **{name: t.bfloat16() for name, t in extra.items()},
    )  # fmt: skip
    monkeypatch.undo()
    assert bool(eager) != compiled  # the softmax asked for ran
    reference = grid_attention_reference(q, k, v, scale=0.3, grid=(5, 9), beta=0.5, **extra)
    assert fast.dtype == torch.bfloat16 and fast.shape == reference.shape
    assert ((fast.float() - reference).norm() / reference.norm()).item() <= 0.02
    # and the penalty is in: without it the result is farther off than bf16's error
    no_penalty = grid_attention_reference(q, k, v, scale=0.3, grid=(5, 9), beta=0.0, **extra)
    assert ((no_penalty - reference).norm() / reference.norm()).item() > 0.05


def test_chunk_planner_bounds():
    n = 16384
    # vit_b at S=2048: 12 heads, fp32, 256 MB budget -> whole batch never fits, few queries do
    batch_step, query_step = plan_chunks(1, 12, n, n, 4, attention.MASK_BUDGET_BYTES)
    assert batch_step == 1 and 1 <= query_step < n
    assert 12 * query_step * n * 4 <= attention.MASK_BUDGET_BYTES
    # a per-head N x N mask is never planned at N = 16384, even for one head
    assert plan_chunks(1, 1, n, n, 4, attention.MASK_BUDGET_BYTES)[1] * n < n * n
    # small masks go in one piece; many windows are grouped
    assert plan_chunks(25, 12, 196, 196, 4, attention.MASK_BUDGET_BYTES) == (25, 196)
    assert plan_chunks(4000, 12, 196, 196, 4, 10 * 12 * 196 * 196 * 4) == (10, 196)
    # the budget is never a reason to stall: at least one query per chunk
    assert plan_chunks(1, 12, n, n, 4, 1) == (1, 1)


def test_large_grid_never_builds_full_mask(monkeypatch):
    """N = 16384 (S = 2048), one head: every mask handed to SDPA is a chunk of queries,
    and the result still matches a row-sampled reference."""
    rows = cols = 128
    n = rows * cols
    q, k, v, extra = _inputs(1, 1, (rows, cols), 8, rel=True, seed=2)
    seen = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, **kwargs):
        seen.append(tuple(attn_mask.shape))
        return real_sdpa(query, key, value, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", spy)
    out = grid_attention(q, k, v, scale=0.35, grid=(rows, cols), beta=0.5, **extra)
    monkeypatch.undo()
    assert len(seen) > 1
    assert all(math.prod(shape) < n * n for shape in seen)
    assert sum(shape[2] for shape in seen) == n  # every query row covered exactly once

    # check a few query rows against the reference computed on those rows only
    picks = torch.tensor([0, 5000, n - 1])
    dist = (picks[:, None] // cols - torch.arange(n) // cols).abs() + (picks[:, None] % cols - torch.arange(n) % cols).abs()
    logits = 0.35 * (q[0, 0, picks] @ k[0, 0].T - 0.5 * dist)
    logits = logits + extra["rel_h"][0, 0, picks][:, torch.arange(n) // cols] + extra["rel_w"][0, 0, picks][:, torch.arange(n) % cols]
    expected = logits.softmax(-1) @ v[0, 0]
    assert (out[0, 0, picks] - expected).abs().max().item() <= 1e-4


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_large_grid_memory_stays_below_one_head_matrix():
    """At N = 16384 one fp32 N x N matrix is 1.07 GB; the fast path must stay well below."""
    rows = cols = 128
    n = rows * cols
    q, k, v, extra = _inputs(1, 1, (rows, cols), 8, rel=True, seed=3)
    baseline = _rss_kb()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        grid_attention(q, k, v, scale=0.35, grid=(rows, cols), beta=0.5, **extra)
    finally:
        done.set()
        sampler.join()
    growth = (peak[0] - baseline) * 1024
    assert growth < 0.5 * n * n * 4, f"RSS grew {growth / 1e9:.2f} GB"


def _mean_entropy(q: torch.Tensor, k: torch.Tensor, scale: float) -> float:
    probs = (scale * q @ k.T).softmax(-1)
    return float(-(probs * probs.clamp_min(1e-30).log()).sum(-1).mean())


def test_nsf_keeps_entropy_near_training_length():
    """Random q, k: at N = 4 * N_train the mean softmax entropy with NSF's scale is closer to
    the entropy at N_train than with the plain 1/sqrt(d)."""
    dim = 64
    gen = torch.Generator().manual_seed(0)
    queries = torch.randn(256, dim, generator=gen)
    keys_train = torch.randn(4096, dim, generator=gen)
    keys_long = torch.randn(16384, dim, generator=gen)
    at_train = _mean_entropy(queries, keys_train, attention_scale(dim, 1024, nsf=True))
    assert attention_scale(dim, 1024, nsf=True) == pytest.approx(dim**-0.5)
    plain = _mean_entropy(queries, keys_long, attention_scale(dim, 2048, nsf=False))
    with_nsf = _mean_entropy(queries, keys_long, attention_scale(dim, 2048, nsf=True))
    assert attention_scale(dim, 2048, nsf=True) == pytest.approx(dim**-0.5 * math.log(16384) / math.log(4096))
    assert abs(with_nsf - at_train) < abs(plain - at_train)


@pytest.mark.parametrize("beta", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_beta_rejected(beta):
    q, k, v, _ = _inputs(1, 1, (2, 2), 4, rel=False)
    with pytest.raises(ValueError, match="beta"):
        grid_attention(q, k, v, scale=0.5, grid=(2, 2), beta=beta)
    with pytest.raises(ValueError, match="beta"):
        grid_attention_reference(q, k, v, scale=0.5, grid=(2, 2), beta=beta)


def test_bad_shapes_rejected():
    q, k, v, extra = _inputs(1, 2, (3, 4), 4)
    with pytest.raises(ValueError, match="grid 4x4 has 16 tokens"):
        grid_attention(q, k, v, scale=0.5, grid=(4, 4))
    with pytest.raises(ValueError, match="rel_h must be"):
        grid_attention(q, k, v, scale=0.5, grid=(3, 4), rel_h=extra["rel_w"], rel_w=extra["rel_w"])
    with pytest.raises(ValueError, match="bias must be shared by the batch"):
        grid_attention(q, k, v, scale=0.5, grid=(3, 4), bias=torch.zeros(2, 2, 12, 12))
    with pytest.raises(ValueError, match="q, k, v must be"):
        grid_attention(q[0], k[0], v[0], scale=0.5, grid=(3, 4))
