"""`basam-ui bench attention`: one vit_b global-attention block in fp32 against bf16.

fp32 is the chunked-SDPA path; bf16 runs the same block under CPU bf16 autocast, which takes
the bf16 matmul path of `grid_attention`. The variants are interleaved, so the ratio comes
from one run under the same load; the error is the bf16 output's relative Frobenius error
against the fp32 output.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from .basam.attention import attention_scale
from .basam.config import BASAMConfig
from .basam.vit import vit_attention
from .bench_agreement import randomize_positions
from .precision import autocast


def time_global_block(size: int, repeats: int, beta: float = 0.1) -> dict:
    """Fastest seconds of one vit_b global-attention block at input size `size` in fp32 and
    bf16, and the bf16 output's relative error against fp32."""
    from .loading import random_sam

    sam = randomize_positions(random_sam("vit_b", seed=0, device="cpu"), seed=1)
    block = next(b for b in sam.image_encoder.blocks if b.window_size == 0)
    grid = size // 16
    x = torch.randn(1, grid, grid, block.attn.qkv.in_features, generator=torch.Generator().manual_seed(0))
    scale = attention_scale(block.attn.qkv.in_features // block.attn.num_heads, size, BASAMConfig().nsf)
    seconds = {"fp32": [], "bf16": []}
    outputs = {}
    with torch.inference_mode():
        for _ in range(repeats):
            for precision in seconds:
                started = time.perf_counter()
                with autocast(precision, torch.device("cpu")):
                    out = vit_attention(block.attn, x, scale=scale, beta=beta)
                seconds[precision].append(time.perf_counter() - started)
                outputs[precision] = out.float()
                print(f"[bench attention] S={size} {precision}: {seconds[precision][-1]:.2f} s", file=sys.stderr, flush=True)
    error = (outputs["bf16"] - outputs["fp32"]).norm() / outputs["fp32"].norm()
    return dict(size=size, fp32=min(seconds["fp32"]), bf16=min(seconds["bf16"]), error=float(error))


def run_attention_bench(args: argparse.Namespace) -> int:
    """Print the fp32/bf16 table of one vit_b global block per size."""
    rows = [time_global_block(size, args.repeats) for size in args.sizes]
    print(
        f"\none vit_b global-attention block (12 heads, d 64, BA-SAM beta 0.1, random inputs) on the CPU, "
        f"{torch.get_num_threads()} threads, fastest of {args.repeats}\n"
    )
    print("| S | N | fp32 (s) | bf16 (s) | bf16 / fp32 | bf16 relative error |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        n = (row["size"] // 16) ** 2
        print(
            f"| {row['size']} | {n} | {row['fp32']:.2f} | {row['bf16']:.2f} | {row['bf16'] / row['fp32']:.2f} | "
            f"{100 * row['error']:.2f}% |"
        )
    return 0
