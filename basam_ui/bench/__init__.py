"""`basam-ui bench`: the benchmarks that print tables (encoder, prompt, attention, agreement,
project). `add_parser` registers their sub-commands on the command line's parser and `main`
runs the one asked for; only `basam_ui.cli` imports this package. Importing it is light: each
benchmark's module loads when it runs.
"""

from __future__ import annotations

import argparse

from ..vocabulary import DEFAULT_BETA, MODEL_TYPES, PRECISIONS

VARIANTS = ("stock", "vanilla", "basam")  # the encoder benchmark's rows


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `bench` and its sub-commands to the command line's sub-parsers."""
    bench = sub.add_parser(
        "bench", help="benchmarks (encoder, prompt, attention, agreement, project)",
        description="Benchmarks that print tables.",
    )
    bench_sub = bench.add_subparsers(dest="bench", metavar="WHAT", required=True)
    enc = bench_sub.add_parser(
        "encoder",
        help="image encoder: stock vs ours vanilla vs ours BA-SAM",
        description="Time and peak memory of the stock image encoder (where it fits), ours with the vanilla "
        "setting and ours with BA-SAM, per model and size, with ratios ours/stock from the same run. "
        "Uses random weights unless --checkpoint-dir holds the official files.",
    )
    prm = bench_sub.add_parser(
        "prompt",
        help="prompt latency with a warm embedding cache",
        description="p50/p95 latency of Segmenter.predict with a warm cache, per model and size, next to the "
        "encode time. Uses random weights unless --checkpoint-dir holds the official files.",
    )
    for p, default_sizes in ((enc, [1024, 2048]), (prm, [1024, 2048])):
        p.add_argument("--models", nargs="+", choices=MODEL_TYPES, default=["vit_t", "vit_b"], help="models to run (default: vit_t vit_b)")
        p.add_argument("--sizes", nargs="+", type=int, default=default_sizes, metavar="S", help="input sizes S (default: 1024 2048)")
        p.add_argument("--repeats", type=int, default=3, help="timed repeats per case; the median is reported (default: 3)")
        p.add_argument("--device", help="torch device (default: CUDA, then MPS, then CPU)")
        p.add_argument("--checkpoint-dir", metavar="DIR", help="use official checkpoints from here when present")
        p.add_argument(
            "--precision", nargs="+", choices=PRECISIONS, default=["fp32", "auto"],
            help="precisions to run, interleaved, with ratios to the first (default: fp32 auto)",
        )  # fmt: skip
    enc.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="which encoders to run: the stock one, ours with the vanilla setting, ours with BA-SAM "
        "(default: all three)",
    )
    enc.add_argument("--beta", type=float, default=DEFAULT_BETA, help=f"BM-AM slope for the BA-SAM rows (default: {DEFAULT_BETA:g})")
    prm.add_argument("--predictions", type=int, default=20, help="predictions timed per case (default: 20)")
    proj = bench_sub.add_parser(
        "project",
        help="annotation projects: opening a big folder, exporting",
        description="Time opening a project of many files (scan, database, first page of data) and "
        "exporting synthetic objects in each format, in a temporary folder.",
    )
    proj.add_argument("--files", type=int, default=5000, help="image files in the folder to open (default: 5000)")
    proj.add_argument("--images", type=int, default=200, help="images exported (default: 200)")
    proj.add_argument("--objects", type=int, default=5, help="objects per exported image (default: 5)")
    proj.add_argument("--size", type=int, default=2048, metavar="PX", help="exported images' long side (default: 2048)")
    att = bench_sub.add_parser(
        "attention",
        help="one vit_b global-attention block: fp32 vs the bf16 path",
        description="Time one vit_b global-attention block (12 heads, d 64, BA-SAM beta 0.1, random inputs) in "
        "fp32 (chunked SDPA) and in bf16 (the CPU bf16 path), interleaved, with the bf16/fp32 ratio and the "
        "bf16 output's error against fp32.",
    )
    att.add_argument("--sizes", nargs="+", type=int, default=[2048, 4096], metavar="S", help="input sizes (default: 2048 4096)")
    att.add_argument("--repeats", type=int, default=2, help="timed repeats; the fastest is reported (default: 2)")
    att.add_argument("--compiled", action="store_true",
                     help="also time the bf16 path with its torch.compile'd softmax (BASAM_UI_COMPILE=1; compiling "
                     "takes 20-30 s per size)")
    agr = bench_sub.add_parser(
        "agreement",
        help="mask agreement of auto/bf16 with fp32 on photos",
        description="Pixel agreement between masks decoded under each --precision and under fp32, over the given "
        "photos x mixed prompts (random weights, randomised position tables).",
    )
    agr.add_argument("--images", nargs="+", required=True, metavar="PATH", help="photographs to segment")
    agr.add_argument(
        "--models", nargs="+", choices=MODEL_TYPES + ("small_vit",), default=["vit_t", "small_vit"],
        help="models (small_vit: a 4-block random ViT; default: vit_t small_vit)",
    )  # fmt: skip
    agr.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048], metavar="S", help="input sizes (default: 1024 2048)")
    agr.add_argument("--prompts", type=int, default=5, help="mixed prompts per photo (default: 5)")
    agr.add_argument(
        "--precision", nargs="+", choices=("auto", "bf16"), default=["auto", "bf16"],
        help="precisions compared with fp32 (default: auto bf16)",
    )  # fmt: skip
    return bench


def main(args: argparse.Namespace) -> int:
    """Run `basam-ui bench WHAT`; returns the exit status."""
    if args.bench == "encoder":
        from .encoder import run_encoder_bench

        return run_encoder_bench(args)
    if args.bench == "prompt":
        from .prompt import run_prompt_bench

        return run_prompt_bench(args)
    if args.bench == "project":
        from .project import run_project_bench

        return run_project_bench(args)
    if args.bench == "agreement":
        from .agreement import run_agreement_bench

        return run_agreement_bench(args)
    if args.bench == "attention":
        from .attention import run_attention_bench

        return run_attention_bench(args)
    raise ValueError(f"unknown benchmark {args.bench!r}: choose encoder, prompt, attention, agreement or project")
