"""`basam-ui bench prompt`: predict latency with a warm embedding cache, next to encode time."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from ..basam.config import BASAMConfig
from ..models import default_device, official_or_random
from ..segmenter import Segmenter


def bench_image(height: int = 1536, width: int = 2048, seed: int = 0) -> np.ndarray:
    """A deterministic smooth test image with a few coloured blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.full((height, width, 3), 60.0, np.float32)
    for _ in range(6):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(0.05, 0.25) * width
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        image += blob[..., None] * rng.uniform(-60, 190, 3).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def random_prompts(count: int, height: int, width: int, seed: int = 0) -> list[dict]:
    """Mixed prompts in original pixels: single points, point pairs, boxes, box + point."""
    rng = np.random.default_rng(seed)
    prompts = []
    for i in range(count):
        x0, x1 = sorted(rng.uniform(0, width, 2))
        y0, y1 = sorted(rng.uniform(0, height, 2))
        points = np.column_stack([rng.uniform(0, width, 2), rng.uniform(0, height, 2)])
        kind = i % 4
        if kind == 0:
            prompts.append(dict(point_coords=points[:1], point_labels=np.array([1])))
        elif kind == 1:
            prompts.append(dict(point_coords=points, point_labels=np.array([1, 0])))
        elif kind == 2:
            prompts.append(dict(box=np.array([x0, y0, x1 + 1, y1 + 1])))
        else:
            prompts.append(dict(point_coords=points[:1], point_labels=np.array([1]), box=np.array([x0, y0, x1 + 1, y1 + 1])))
    return prompts


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_prompt_bench(args: argparse.Namespace) -> int:
    """Print a table of encode time and predict p50/p95 per model, size, precision, decoder
    forward ("SAM's": the decoder's own; "lean": `lean_decoder`) and mask path ("all": every
    candidate at full resolution; "best": only the chosen one), the cases interleaved prompt
    by prompt, with p50 ratios to the first case: fp32 with SAM's forward and every candidate,
    the path before the bf16 work."""
    device = torch.device(args.device) if args.device else default_device()
    precisions = list(dict.fromkeys(getattr(args, "precision", None) or ["fp32", "auto"]))
    image = bench_image()
    height, width = image.shape[:2]
    prompts = random_prompts(args.predictions, height, width)
    rows = []
    for model_type in args.models:
        sam = official_or_random(model_type, device, args.checkpoint_dir)
        for size in args.sizes:
            cases = []
            for precision in precisions:
                seg = Segmenter(sam, cache_bytes=1 << 30, precision=precision)
                print(f"[bench prompt] {model_type} S={size} {precision}: encoding...", file=sys.stderr, flush=True)
                embedding = seg.embed(image, size, BASAMConfig())
                variants = [(seg, "all"), (seg, "best")]
                if precision == precisions[0]:  # SAM's own decoder forward, sharing the embedding
                    stock = Segmenter(sam, cache=seg.cache, precision=precision, lean_decoder=False)
                    variants = [(stock, "all"), *variants]
                for segmenter, full_res in variants:
                    segmenter.predict_with(embedding, **prompts[0], full_res=full_res)  # warm-up
                    cases.append((segmenter, embedding, full_res, []))
            for prompt in prompts:
                for seg, embedding, full_res, latencies in cases:
                    _sync(device)
                    started = time.perf_counter()
                    seg.predict_with(embedding, **prompt, multimask_output=True, full_res=full_res)
                    _sync(device)
                    latencies.append(time.perf_counter() - started)
            first = None
            for seg, embedding, full_res, latencies in cases:
                assert seg.encoder_calls == (1 if seg.lean_decoder else 0), "a prediction re-encoded the image"
                p50, p95 = np.percentile(latencies, [50, 95]) * 1000
                first = first or p50
                precision = f"{seg.precision} (encoder {seg.encoder_precision}, decoder {seg.decoder_precision})"
                forward = "lean" if seg.lean_decoder else "SAM's"
                rows.append((model_type, size, precision, forward, full_res, embedding.encode_seconds, p50, p95,
                             p50 / first))  # fmt: skip
        del sam
    print(f"\npredict latency with a warm cache on {device} (image {width}x{height}, "
          f"{args.predictions} mixed prompts, multimask; masks: all = every candidate at full resolution, "
          f"best = only the highest-scoring one; cases interleaved)\n")  # fmt: skip
    print("| model | S | precision | decoder forward | masks | encode (s) | predict p50 (ms) | predict p95 (ms) "
          "| p50 / first |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for model_type, size, precision, forward, full_res, encode_s, p50, p95, ratio in rows:
        print(f"| {model_type} | {size} | {precision} | {forward} | {full_res} | {encode_s:.2f} | {p50:.1f} | "
              f"{p95:.1f} | {ratio:.2f} |")  # fmt: skip
    return 0
