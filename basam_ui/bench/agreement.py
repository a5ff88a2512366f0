"""`basam-ui bench agreement`: how often masks decoded under a lower precision agree with
fp32's, pixel by pixel, on real photographs.

Random weights give meaningless but deterministic masks; SAM zero-initialises its position
tables, so they are randomised first (as the encoder tests do), else the bf16 path would be
checked on terms that are all zero.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from torch import nn

from ..basam.config import BASAMConfig
from .prompt import random_prompts
from ..cache import EmbeddingCache
from ..models import randomize_positions, small_vit
from ..segmenter import Segmenter


@dataclass
class Agreement:
    """Per-mask pixel agreement of one model, size and precision with fp32."""

    model: str
    size: int
    precision: str  # as asked, e.g. "auto"
    encoder: str  # as resolved, e.g. "bf16"
    decoder: str
    values: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def worst(self) -> float:
        return min(self.values)


def mask_agreement(
    sam: nn.Module,
    model: str,
    images: Sequence[np.ndarray],
    size: int,
    precisions: Sequence[str] = ("auto",),
    prompts_per_image: int = 5,
    config: BASAMConfig = BASAMConfig(),
) -> list[Agreement]:
    """For each precision in `precisions`, the fraction of equal pixels between its
    single-mask output and fp32's, per image x prompt (mixed points and boxes, seeded per
    image), at input size `size` with `config`."""
    cache = EmbeddingCache(4 << 30)  # shared: precisions that resolve alike encode once
    reference = Segmenter(sam, cache=cache, precision="fp32")
    others = {p: Segmenter(sam, cache=cache, precision=p) for p in precisions}
    values: dict[str, list[float]] = {p: [] for p in precisions}
    for index, image in enumerate(images):
        prompts = random_prompts(prompts_per_image, image.shape[0], image.shape[1], seed=index)
        embedding = reference.embed(image, size, config)
        expected = [reference.predict_with(embedding, **prompt, multimask_output=False)[0] for prompt in prompts]
        for precision, seg in others.items():
            embedding = seg.embed(image, size, config)
            for prompt, mask in zip(prompts, expected):
                got, _, _ = seg.predict_with(embedding, **prompt, multimask_output=False)
                values[precision].append(float((got == mask).mean()))
    return [
        Agreement(model, size, p, seg.encoder_precision, seg.decoder_precision, values[p]) for p, seg in others.items()
    ]


def run_agreement_bench(args: argparse.Namespace) -> int:
    """Print the agreement table for the models, sizes and precisions asked for."""
    from ..image_io import load_image
    from ..models import random_sam

    images = [load_image(path) for path in args.images]
    rows = []
    for model in args.models:
        sam = small_vit() if model == "small_vit" else randomize_positions(random_sam(model, seed=0, device="cpu"), 1)
        for size in args.sizes:
            print(f"[bench agreement] {model} S={size} ...", file=sys.stderr, flush=True)
            rows += mask_agreement(sam, model, images, size, args.precision, args.prompts)
    print(
        f"\nmask agreement with fp32 ({len(images)} photos x {args.prompts} mixed prompts, single-mask output, "
        f"BA-SAM beta=0.1, random weights with randomised position tables, pixels at full resolution)\n"
    )
    print("| model | S | precision | encoder | decoder | mean agreement | worst mask |")
    print("|---|---:|---|---|---|---:|---:|")
    for row in rows:
        print(
            f"| {row.model} | {row.size} | {row.precision} | {row.encoder} | {row.decoder} | "
            f"{100 * row.mean:.2f}% | {100 * row.worst:.2f}% |"
        )
    return 0
