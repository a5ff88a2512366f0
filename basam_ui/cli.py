"""The `basam-ui` command: parses arguments and hands them to the app, downloader,
benchmarks and evaluation. No work is done here."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import __version__
from .checkpoints import CHECKPOINT_DIR_ENV, DEFAULT_MODEL_TYPE, MODEL_TYPES

PRECISIONS = ("auto", "fp32", "bf16")  # as basam_ui.precision.PRECISIONS, which imports torch
PRECISION_HELP = (
    "image encoder precision: auto (bf16 on CPUs with AVX512-BF16/AMX and on CUDA, fp32 elsewhere), "
    "fp32, or bf16 (encoder and mask decoder)"
)


def _add_model_options(p: argparse.ArgumentParser, *, model_default: Optional[str]) -> None:
    p.add_argument(
        "--model",
        choices=MODEL_TYPES,
        default=model_default,
        help="model type: vit_t (MobileSAM), vit_b, vit_l or vit_h"
        + (f" (default: {model_default})" if model_default else " (default: inferred from --checkpoint, else vit_t)"),
    )
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint file to load instead of the registry file")
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help=f"checkpoint folder (default: ${CHECKPOINT_DIR_ENV}, else ./checkpoints when it exists, "
        "else ~/.cache/basam-ui/checkpoints)",
    )
    p.add_argument("--device", help="torch device, e.g. cuda, cuda:1, mps, cpu (default: CUDA, then MPS, then CPU)")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="use seeded untrained weights instead of a checkpoint (for trying things out; masks are meaningless)",
    )
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP + " (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="basam-ui",
        description="Segment Anything at native resolution with BA-SAM. With no command, launches the "
        "annotation app (vanilla SAM and BA-SAM side by side) on http://127.0.0.1:7860.",
    )
    parser.add_argument("--version", action="version", version=f"basam-ui {__version__}")
    _add_model_options(parser, model_default=None)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve the app on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve the app on (default: 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    parser.add_argument(
        "--max-size",
        type=int,
        default=4096,
        metavar="S",
        help="largest inference size S offered in the app, and the cap for 'native' (default: 4096)",
    )
    parser.add_argument(
        "--cache-gb", type=float, default=2.0, metavar="GB", help="embedding cache size in memory, in GB (default: 2)"
    )
    parser.add_argument("--cache-dir", metavar="DIR", help="also keep embeddings on disk here, reused across restarts")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    dl = sub.add_parser(
        "download",
        help="download official checkpoints",
        description="Download official checkpoints into the checkpoint folder, checking SHA-256. "
        "A failed download leaves nothing under the real file name.",
    )
    dl.add_argument(
        "model",
        nargs="?",
        default=DEFAULT_MODEL_TYPE,
        choices=MODEL_TYPES + ("all",),
        help=f"which checkpoint: {', '.join(MODEL_TYPES)} or all (default: {DEFAULT_MODEL_TYPE})",
    )
    dl.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help=f"where to save (default: ${CHECKPOINT_DIR_ENV}, else ./checkpoints when it exists, "
        "else ~/.cache/basam-ui/checkpoints)",
    )

    bench = sub.add_parser(
        "bench", help="benchmarks (encoder, prompt, attention, agreement)", description="Benchmarks that print tables."
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
        choices=("stock", "vanilla", "basam"),
        default=["stock", "vanilla", "basam"],
        help="which encoders to run: the stock one, ours with the vanilla setting, ours with BA-SAM "
        "(default: all three)",
    )
    enc.add_argument("--beta", type=float, default=0.1, help="BM-AM slope for the BA-SAM rows (default: 0.1)")
    prm.add_argument("--predictions", type=int, default=20, help="predictions timed per case (default: 20)")
    att = bench_sub.add_parser(
        "attention",
        help="one vit_b global-attention block: fp32 vs the bf16 path",
        description="Time one vit_b global-attention block (12 heads, d 64, BA-SAM beta 0.1, random inputs) in "
        "fp32 (chunked SDPA) and in bf16 (the CPU bf16 path), interleaved, with the bf16/fp32 ratio and the "
        "bf16 output's error against fp32.",
    )
    att.add_argument("--sizes", nargs="+", type=int, default=[2048, 4096], metavar="S", help="input sizes (default: 2048 4096)")
    att.add_argument("--repeats", type=int, default=2, help="timed repeats; the fastest is reported (default: 2)")
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

    ev = sub.add_parser(
        "eval",
        help="vanilla vs BA-SAM across sizes on a labelled folder",
        description="Measure vanilla SAM against BA-SAM across input sizes on a folder of images and "
        "ground-truth masks (the paper's Table 1 protocol): per-image CSV, summary table and plot.",
    )
    ev.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    ev.add_argument("--masks", required=True, metavar="DIR", help="folder of ground-truth masks (paired by file stem)")
    _add_model_options(ev, model_default=None)
    ev.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048], metavar="S", help="input sizes (default: 1024 2048)")
    ev.add_argument(
        "--prompt",
        nargs="+",
        choices=("point", "center", "box"),
        default=["point"],
        help="prompt made from the ground truth: point (a seeded random foreground pixel), center (the "
        "foreground pixel farthest from the boundary), box (its bounding box); several allowed (default: point)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed for the random point prompt (default: 0)")
    ev.add_argument("--beta", type=float, default=0.1, help="BM-AM slope for BA-SAM (default: 0.1)")
    ev.add_argument("--ablation", action="store_true", help="also run NSF only and BM-AM only")
    ev.add_argument("--limit", type=int, metavar="N", help="use only the first N image pairs")
    ev.add_argument("--out", required=True, metavar="DIR", help="output folder (CSV, summary, plot)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `basam-ui` console command."""
    args = build_parser().parse_args(argv)
    if args.command == "download":
        return _download(args)
    if args.command == "bench":
        from . import bench

        return bench.main(args)
    if args.command == "eval":
        from . import evaluate

        return evaluate.main(args)
    from . import app

    return app.main(args)


def _download(args: argparse.Namespace) -> int:
    from .checkpoints import DownloadError, download

    models = MODEL_TYPES if args.model == "all" else (args.model,)
    status = 0
    for model_type in models:
        try:
            path = download(model_type, args.checkpoint_dir)
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
        except KeyboardInterrupt:
            print("\ninterrupted: nothing was saved under the checkpoint's name", file=sys.stderr)
            return 130
        else:
            print(f"{model_type}: {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
