"""Automatic mask proposals for one image: time, masks, batches, and the decoder's memory per batch.

    PYTHONPATH=. python benchmarks/proposals.py [--image tests/data/corgi-2048x1365.jpg]
        [--sizes 1024 2048] [--device cpu] [--points-per-side 32] [--threads N]
        [--batches 1 4 16] [--memory] [--skip-single]

vit_t with seeded random weights (timings do not depend on the weights; the masks do: with
random weights few or none pass SAM's filters, so a second, "filters off" run on an 8 x 8 grid
shows what the full-resolution windows and encoding cost when every candidate survives).
Per S:

- encode: the image encoder pass (BA-SAM setting), not part of the proposals' time;
- adaptive: `propose` with batches adapting to 0.1 s per step (what a server runs while
  idle): total seconds, steps, step time p50 / p95 / max, the batch sizes used, masks kept,
  and the share of the time in the decoder;
- one at a time (unless --skip-single): the same with one point per batch;
- fixed batches (--batches): decoder time per point for B points per call (first 64 points);
- with --memory: the peak memory one decoder call of B points adds (CUDA: peak allocation;
  CPU: growth of the process's peak RSS, each B in a fresh process), and per point and image
  token, the figure `DECODER_BYTES_PER_TOKEN` is set from.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class TimedDecoder:
    """A PointDecoder that sums the time spent in the real one (synchronised on CUDA)."""

    def __init__(self, decode, device: torch.device):
        self.decode, self.device, self.seconds, self.calls = decode, device, 0.0, []

    def __call__(self, embedding, points):
        started = time.perf_counter()
        out = self.decode(embedding, points)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - started
        self.calls.append(len(points))
        return out


def run_proposals(embedding, segmenter, settings, **options) -> dict:
    from basam_ui.proposals import ProposalRun, segmenter_decoder

    decoder = TimedDecoder(segmenter_decoder(segmenter), segmenter.device)
    run = ProposalRun(embedding, decoder, settings, **options)
    steps = []
    while run.step():
        steps.append(run.progress.step_seconds)
    steps.append(run.progress.step_seconds)
    result = run.result()
    return {
        "seconds": round(result.seconds, 2),
        "steps": len(steps),
        "step_ms_p50": round(1000 * percentile(steps, 0.5), 1),
        "step_ms_p95": round(1000 * percentile(steps, 0.95), 1),
        "step_ms_max": round(1000 * max(steps), 1),
        "batch_sizes": f"{min(decoder.calls)}..{max(decoder.calls)} (median {int(statistics.median(decoder.calls))})",
        "masks": len(result.proposals),
        "decoder_share": round(decoder.seconds / max(result.seconds, 1e-9), 2),
        "ms_per_point": round(1000 * result.seconds / result.points, 1),
    }


def fixed_batches(embedding, segmenter, batches: list[int], points: np.ndarray) -> dict:
    from basam_ui.proposals import segmenter_decoder

    decode = TimedDecoder(segmenter_decoder(segmenter), segmenter.device)
    decode(embedding, points[:1])  # warm-up
    out = {}
    for b in batches:
        decode.seconds = 0.0
        n = max(b, (len(points) // b) * b)
        for i in range(0, n, b):
            decode(embedding, points[i : i + b])
        out[b] = round(1000 * decode.seconds / n, 1)
    return out


def memory_child(size: int, batch: int, device: str) -> int:
    """Peak bytes one decoder call of `batch` points adds at S = `size` (run in a fresh process on CPU)."""
    from basam_ui.basam.config import BASAMConfig
    from basam_ui.cache import EmbeddingKey
    from basam_ui.models import random_sam
    from basam_ui.proposals import segmenter_decoder
    from basam_ui.segmenter import ImageEmbedding, Segmenter

    dev = torch.device(device)
    segmenter = Segmenter(random_sam("vit_t", seed=0, device=dev), precision="fp32")
    key = EmbeddingKey("bench", "vit_t:random-0", size, BASAMConfig(), "fp32")
    embedding = ImageEmbedding(key, torch.randn(1, 256, size // 16, size // 16, device=dev), (size, size), (size, size), 0.0, "computed")
    decode = segmenter_decoder(segmenter)
    points = np.random.default_rng(0).uniform(0, size - 1, (batch, 2))
    if dev.type == "cuda":
        decode(embedding, points[:1])
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = decode(embedding, points)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base - out[0].numel() * 4 - out[1].numel() * 4
    small = ImageEmbedding(EmbeddingKey("warm", "vit_t:random-0", 256, BASAMConfig(), "fp32"),
                           torch.randn(1, 256, 16, 16), (256, 256), (256, 256), 0.0, "computed")
    decode(small, points[:1] % 255)  # first-call allocations, on a small grid so the peak below is the batch's own
    before = peak_rss()
    decode(embedding, points)
    return peak_rss() - before


def peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM, which (unlike ru_maxrss, kept
    across exec on Linux, so a child started by a large parent inherits its figure) is this
    process image's own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_table(sizes: list[int], batches: list[int], device: str) -> list[dict]:
    rows = []
    for size in sizes:
        for b in batches:
            if device == "cuda":
                peak = memory_child(size, b, device)
            else:
                cmd = [sys.executable, __file__, "--memory-child", str(size), str(b)]
                peak = int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            tokens = (size // 16) ** 2
            rows.append({"S": size, "B": b, "peak_MiB": round(peak / 2**20, 1), "bytes_per_point_token": round(peak / b / tokens)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=str(REPO / "tests" / "data" / "corgi-2048x1365.jpg"))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--memory", action="store_true", help="also measure the decoder's peak memory per batch")
    parser.add_argument("--memory-batches", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--skip-single", action="store_true", help="skip the one-point-at-a-time run")
    parser.add_argument("--decoder-only", action="store_true",
                        help="only the decoder's time per point by batch size and its memory (no pycocotools needed)")
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        print(memory_child(*args.memory_child, "cpu"))
        return 0

    from PIL import Image

    from basam_ui.basam.config import BASAMConfig
    from basam_ui.models import random_sam
    from basam_ui.proposals import ProposalSettings
    from basam_ui.segmenter import Segmenter

    device = torch.device(args.device)
    image = np.asarray(Image.open(args.image).convert("RGB"))
    segmenter = Segmenter(random_sam("vit_t", seed=0, device=device), precision="fp32")
    print(f"# {Path(args.image).name} ({image.shape[1]}x{image.shape[0]}), vit_t random weights, {device}, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    figures: dict = {"image": Path(args.image).name, "device": str(device), "threads": torch.get_num_threads(), "sizes": {}}
    defaults = ProposalSettings(points_per_side=args.points_per_side)
    loose = ProposalSettings(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    for size in args.sizes:
        started = time.perf_counter()
        embedding = segmenter.embed(image, size, BASAMConfig())
        row: dict = {"encode_s": round(time.perf_counter() - started, 2)}
        if not args.decoder_only:
            row["adaptive"] = run_proposals(embedding, segmenter, defaults, batch_seconds=0.1)
            if not args.skip_single:
                row["one_at_a_time"] = run_proposals(embedding, segmenter, defaults, batch_seconds=None, points_per_batch=1)
            row["filters_off_8x8"] = run_proposals(embedding, segmenter, loose, batch_seconds=0.1)
        side = 16 if args.decoder_only else 8
        grid = np.stack(np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side)), -1).reshape(-1, 2)
        points = grid * (np.array(embedding.original_size[::-1]) - 1)
        row["decoder_ms_per_point_by_batch"] = fixed_batches(embedding, segmenter, args.batches, points)
        figures["sizes"][size] = row
        print(f"S={size}: {json.dumps(row)}", flush=True)
    if args.memory:
        figures["memory"] = memory_table(args.sizes, args.memory_batches, args.device)
        for row in figures["memory"]:
            print(f"memory: {json.dumps(row)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
