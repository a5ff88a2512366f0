"""`basam-ui bench prompt`: predict latency with a warm embedding cache, next to encode time."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from .basam.config import BASAMConfig
from .loading import default_device, official_or_random
from .segmenter import Segmenter


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
    """Print a table of encode time and predict p50/p95 per model and size."""
    device = torch.device(args.device) if args.device else default_device()
    image = bench_image()
    height, width = image.shape[:2]
    prompts = random_prompts(args.predictions, height, width)
    rows = []
    for model_type in args.models:
        sam = official_or_random(model_type, device, args.checkpoint_dir)
        for size in args.sizes:
            print(f"[bench prompt] {model_type} S={size}: encoding...", file=sys.stderr, flush=True)
            seg = Segmenter(sam, cache_bytes=1 << 30)
            embedding = seg.embed(image, size, BASAMConfig())
            seg.predict_with(embedding, **prompts[0])  # warm-up
            latencies = []
            for prompt in prompts:
                _sync(device)
                started = time.perf_counter()
                seg.predict_with(embedding, **prompt, multimask_output=True)
                _sync(device)
                latencies.append(time.perf_counter() - started)
            assert seg.encoder_calls == 1, "a prediction re-encoded the image"
            p50, p95 = np.percentile(latencies, [50, 95]) * 1000
            rows.append((model_type, size, embedding.encode_seconds, p50, p95, seg.encoder_calls))
        del sam
    print(f"\npredict latency with a warm cache on {device} (image {width}x{height}, "
          f"{args.predictions} mixed prompts, multimask, masks at full resolution)\n")
    print("| model | S | encode (s) | predict p50 (ms) | predict p95 (ms) | encoder passes |")
    print("|---|---|---|---|---|---|")
    for model_type, size, encode_s, p50, p95, calls in rows:
        print(f"| {model_type} | {size} | {encode_s:.2f} | {p50:.1f} | {p95:.1f} | {calls} |")
    return 0
