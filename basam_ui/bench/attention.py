"""`basam-ui bench attention`: one vit_b global-attention block in fp32 against bf16.

fp32 is the chunked-SDPA path; bf16 runs the same block under CPU bf16 autocast, which takes
the bf16 matmul path of `grid_attention`, with its eager softmax (`bf16`, the default) and,
with `--compiled`, the torch.compile'd one (`bf16 compiled`, BASAM_UI_COMPILE=1). The variants are interleaved,
so the ratios come from one run under the same load; the error is the bf16 output's relative
Frobenius error against fp32's.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from ..basam.attention import attention_scale, compiled_softmax
from ..basam.config import BASAMConfig
from ..basam.vit import vit_attention
from ..models import randomize_positions
from ..precision import autocast


def time_global_block(size: int, repeats: int, beta: float = 0.1, compiled: bool = False) -> dict:
    """Fastest seconds of one vit_b global-attention block at input size `size` in fp32 and
    bf16 (and bf16 with the compiled softmax with `compiled`), and each output's relative
    error against fp32."""
    from ..models import random_sam

    sam = randomize_positions(random_sam("vit_b", seed=0, device="cpu"), seed=1)
    block = next(b for b in sam.image_encoder.blocks if b.window_size == 0)
    grid = size // 16
    x = torch.randn(1, grid, grid, block.attn.qkv.in_features, generator=torch.Generator().manual_seed(0))
    scale = attention_scale(block.attn.qkv.in_features // block.attn.num_heads, size, BASAMConfig().nsf)
    variants = {"fp32": ("fp32", False), "bf16": ("bf16", False)}
    if compiled:
        variants["bf16 compiled"] = ("bf16", True)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    outputs = {}
    with torch.inference_mode():
        for _ in range(repeats):
            for name, (precision, fused) in variants.items():
                with compiled_softmax(fused):
                    started = time.perf_counter()
                    with autocast(precision, torch.device("cpu")):
                        out = vit_attention(block.attn, x, scale=scale, beta=beta)
                    seconds[name].append(time.perf_counter() - started)
                outputs[name] = out.float()
                print(f"[bench attention] S={size} {name}: {seconds[name][-1]:.2f} s", file=sys.stderr, flush=True)
    errors = {name: float((out - outputs["fp32"]).norm() / outputs["fp32"].norm()) for name, out in outputs.items()}
    return dict(size=size, seconds={name: min(times) for name, times in seconds.items()}, errors=errors)


def run_attention_bench(args: argparse.Namespace) -> int:
    """Print the fp32/bf16 table of one vit_b global block per size."""
    compiled = bool(getattr(args, "compiled", False))
    rows = [time_global_block(size, args.repeats, compiled=compiled) for size in args.sizes]
    print(
        f"\none vit_b global-attention block (12 heads, d 64, BA-SAM beta 0.1, random inputs) on the CPU, "
        f"{torch.get_num_threads()} threads, fastest of {args.repeats}"
        + (" (the first compiled call of a size includes torch.compile)" if compiled else "") + "\n"
    )
    extra = " bf16 compiled (s) | compiled / fp32 |" if compiled else ""
    print(f"| S | N | fp32 (s) | bf16 (s) | bf16 / fp32 |{extra} bf16 rel. error |")
    print("|---:|---:|---:|---:|---:|" + ("---:|---:|" if compiled else "") + "---:|")
    for row in rows:
        n = (row["size"] // 16) ** 2
        t = row["seconds"]
        cells = f" {t['bf16 compiled']:.2f} | {t['bf16 compiled'] / t['fp32']:.2f} |" if compiled else ""
        print(f"| {row['size']} | {n} | {t['fp32']:.2f} | {t['bf16']:.2f} | {t['bf16'] / t['fp32']:.2f} |{cells} "
              f"{100 * row['errors']['bf16']:.2f}% |")  # fmt: skip
    return 0
