"""Block sizes of the CPU bf16 attention path (`basam_ui.basam.attention`), per head.

    PYTHONPATH=. python benchmarks/attention_chunks.py [--grid 128] [--budgets 16 8 4]

One head (d = 64) of a global block on a grid x grid token grid (128: S = 2048, N = 16,384;
256: S = 4096, N = 65,536), random bf16 inputs with row and column terms, run through the
path's own function with `LOW_PRECISION_BUDGET_BYTES` set to each budget (MB of logits per
block). Prints seconds per head, fastest of `--repeats`, and the ratio to the first budget,
all from one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from basam_ui.basam import attention  # noqa: E402


def seconds_per_head(grid: int, budget_mb: int, repeats: int) -> float:
    n = grid * grid
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, n, 64, generator=generator).bfloat16()
    k, v = (torch.randn(1, 1, n, 64, generator=generator).bfloat16() for _ in range(2))
    rel_h = torch.randn(1, 1, n, grid, generator=generator).bfloat16()
    rel_w = torch.randn(1, 1, n, grid, generator=generator).bfloat16()
    best = float("inf")
    with mock.patch.object(attention, "LOW_PRECISION_BUDGET_BYTES", budget_mb * 2**20), torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            attention._low_precision_attention(
                q, k, v, 0.125, (grid, grid), 0.0125, rel_h, rel_w, attention.LOW_PRECISION_BUDGET_BYTES)
            best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, default=128, help="tokens per side (128: S = 2048; 256: S = 4096)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[16, 8, 4], help="MB of logits per block")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"one bf16 head, N = {args.grid ** 2}, {torch.get_num_threads()} threads, fastest of {args.repeats}")
    first = None
    for budget in args.budgets:
        seconds = seconds_per_head(args.grid, budget, args.repeats)
        first = first or seconds
        print(f"  {budget:3d} MB blocks: {seconds:7.3f} s per head   {seconds / first:.2f}x the first", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
