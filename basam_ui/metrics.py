"""Per-image segmentation metrics: MAE of a probability map, IoU and Dice of a binary mask.

All take NumPy arrays of the same H x W shape; the ground truth is a boolean mask.
"""

from __future__ import annotations

import numpy as np


def _check_shapes(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"prediction has shape {a.shape} but the ground truth has shape {b.shape}")


def probability(logits: np.ndarray) -> np.ndarray:
    """The sigmoid of mask logits as float32, computed without overflow for large |x|."""
    x = np.asarray(logits, dtype=np.float32)
    # sigmoid(x) = exp(-softplus(-x)); logaddexp(0, -x) = softplus(-x) never overflows
    return np.exp(-np.logaddexp(np.float32(0), -x))


def mae(prob: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between a probability map in [0, 1] and a binary ground truth
    (the paper's metric; lower is better)."""
    prob = np.asarray(prob, dtype=np.float64)
    gt = np.asarray(gt, dtype=bool)
    _check_shapes(prob, gt)
    if prob.size == 0:
        raise ValueError("cannot compute MAE of an empty array")
    return float(np.abs(prob - gt).mean())


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two binary masks. Both empty: 1.0 (nothing to find,
    nothing found: a perfect answer)."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    _check_shapes(pred, gt)
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|) of two binary masks. Both empty: 1.0, as IoU."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    _check_shapes(pred, gt)
    total = np.count_nonzero(pred) + np.count_nonzero(gt)
    if total == 0:
        return 1.0
    return 2 * np.count_nonzero(pred & gt) / total
