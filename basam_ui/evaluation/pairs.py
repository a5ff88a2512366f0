"""Measuring one image/mask pair for `basam-ui eval`: prompts made from the ground truth,
and `PairJob`, which encodes the image at each size and setting still missing and measures
each prompt's single-mask prediction against the ground truth. A PairJob runs here
(`evaluate.run_eval`) or on a Ray worker (`basam_ui.distributed`)."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from ..basam.config import BASAMConfig
from .datasets import Pair, load_mask
from ..metrics import dice, iou, mae, probability
from ..vocabulary import PROMPT_KINDS

if TYPE_CHECKING:
    from ..segmenter import ImageEmbedding, Segmenter



# ---------------------------------------------------------------- prompts from the ground truth


@dataclass(frozen=True)
class Prompt:
    """SAM prompt arguments in image pixel coordinates (x, y)."""

    kind: str
    point_coords: Optional[np.ndarray] = None  # (1, 2)
    point_labels: Optional[np.ndarray] = None  # (1,)
    box: Optional[np.ndarray] = None  # (4,) x0 y0 x1 y1

    def describe(self) -> str:
        values = self.box if self.box is not None else self.point_coords[0]
        return " ".join(f"{v:g}" for v in values)

    def scaled(self, sx: float, sy: float) -> "Prompt":
        """The same prompt for the image resized by (sx, sy)."""
        if self.box is not None:
            return Prompt(self.kind, box=self.box * np.array([sx, sy, sx, sy]))
        return Prompt(self.kind, self.point_coords * np.array([sx, sy]), self.point_labels)


def make_prompt(kind: str, gt: np.ndarray, seed: int, stem: str) -> Prompt:
    """A prompt made from the boolean ground truth `gt` (must have a foreground pixel).

    point: one foreground pixel drawn with a generator seeded by (`seed`, `stem`), so every
    method and size gets the same point; center: the foreground pixel farthest from the
    background and the image border (cv2.distanceTransform); box: the box around the
    foreground pixels' areas, x1 = last column + 1 (so a one-pixel-wide object still has
    a box with x1 > x0, which the Segmenter requires).
    """
    ys, xs = np.nonzero(gt)
    if len(xs) == 0:
        raise ValueError("the ground-truth mask is empty")
    if kind == "point":
        rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])  # crc32: stable across runs
        i = int(rng.integers(len(xs)))
        return Prompt(kind, np.array([[xs[i], ys[i]]], dtype=np.float64), np.array([1]))
    if kind == "center":
        import cv2

        # a zero border so pixels at the image edge count as near the boundary
        padded = np.pad(gt.astype(np.uint8), 1)
        dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return Prompt(kind, np.array([[x, y]], dtype=np.float64), np.array([1]))
    if kind == "box":
        return Prompt(kind, box=np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64))
    raise ValueError(f"unknown prompt kind {kind!r}; expected one of {', '.join(PROMPT_KINDS)}")


# ---------------------------------------------------------------- one pair


def row_stamp(segmenter: "Segmenter") -> tuple[tuple[str, Any], ...]:
    """What the segmenter puts in every result row (and in its resume key): its model identity
    and the precision its image encoder runs in."""
    return (("model", segmenter.model.identity), ("precision", segmenter.encoder_precision))


@dataclass
class PairOutcome:
    """The rows measured for one pair, or why it was skipped; encoder passes it took."""

    pair: Pair
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: Optional[str] = None
    encoder_calls: int = 0


@dataclass(frozen=True)
class PairJob:
    """Measure one pair: `todo` lists (size, method name, setting, prompt kinds) still missing.
    Called with a Segmenter here or on a Ray worker (`basam_ui.distributed`)."""

    pair: Pair
    stamp: tuple[tuple[str, Any], ...]  # columns every row gets: row_stamp(segmenter)
    todo: tuple[tuple[int, str, BASAMConfig, tuple[str, ...]], ...]
    prompts: tuple[str, ...]
    seed: int

    def __call__(self, segmenter: "Segmenter") -> PairOutcome:
        from ..image_io import load_image

        try:
            image, gt, image_prompts = _load_case(load_image, self.pair, self.prompts, self.seed)
        except (ValueError, OSError) as exc:
            return PairOutcome(self.pair, skipped=str(exc))
        base = {**dict(self.stamp), "image": self.pair.image.name, "mask": self.pair.mask.name}
        rows = []
        calls = segmenter.encoder_calls
        for size, name, cfg, kinds in self.todo:
            start = _now()
            embedding = segmenter.embed(image, resolution=size, config=cfg)
            encode_s = _now() - start
            for kind in kinds:
                row = _measure(segmenter, embedding, image_prompts[kind], gt)
                row.update(base, method=name, nsf=cfg.nsf, bmam=cfg.bmam, beta=cfg.slope, size=size)
                row.update(prompt=kind, encode_s=round(encode_s, 4))
                rows.append(row)
            del embedding  # never needed again: let the cache's LRU reclaim it
        return PairOutcome(self.pair, rows, encoder_calls=segmenter.encoder_calls - calls)

    def lost(self, reason: str) -> PairOutcome:
        """The outcome when the pair could not be measured (e.g. its workers died)."""
        return PairOutcome(self.pair, skipped=reason)


def _load_case(load_image: Any, pair: Pair, prompts: Sequence[str], seed: int) -> tuple:
    """The image, its ground truth at the mask's size, and the prompts in image coordinates.

    Raises ValueError for an unreadable file, an empty mask, or a mask whose aspect ratio
    differs from the image's. A mask at another scale is fine: prompts are scaled to the
    image, and the metrics are computed at the mask's size.
    """
    image = load_image(pair.image)
    gt = load_mask(pair.mask)
    if not gt.any():
        raise ValueError(f"empty ground-truth mask {pair.mask.name}")
    (h, w), (gh, gw) = image.shape[:2], gt.shape
    if abs(h / w - gh / gw) > 0.01 * gh / gw:
        raise ValueError(f"image is {w}x{h} px but its mask {pair.mask.name} is {gw}x{gh} px")
    made = {kind: make_prompt(kind, gt, seed, pair.image.stem) for kind in prompts}
    if (h, w) != (gh, gw):  # prompts live on the mask's grid; move them to the image's
        made = {kind: p.scaled(w / gw, h / gh) for kind, p in made.items()}
    return image, gt, made


def _measure(segmenter: "Segmenter", embedding: "ImageEmbedding", prompt: Prompt, gt: np.ndarray) -> dict[str, Any]:
    """One prediction (single-mask output) and its metrics against `gt`, at gt's size."""
    start = _now()
    masks, scores, _ = segmenter.predict_with(
        embedding,
        point_coords=prompt.point_coords,
        point_labels=prompt.point_labels,
        box=prompt.box,
        multimask_output=False,
        return_logits=True,
    )
    logits = _to_numpy(masks)[0]
    predict_s = _now() - start
    if logits.shape != gt.shape:
        import cv2

        logits = cv2.resize(logits.astype(np.float32), gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
    binary = logits > 0
    return {
        "prompt_xy": prompt.describe(),
        "height": gt.shape[0],
        "width": gt.shape[1],
        "mae": round(mae(probability(logits), gt), 6),
        "iou": round(iou(binary, gt), 6),
        "dice": round(dice(binary, gt), 6),
        "score": round(float(_to_numpy(scores).reshape(-1)[0]), 6),
        "predict_s": round(predict_s, 4),
    }


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _now() -> float:
    """A timestamp after the GPU has finished its queued work, so timings are real."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()
