"""Prompts that seed a refine from an existing mask (an imported object reopened): its box and a
few points well inside it, so one more click corrects it.

SAM's `mask_input` expects the decoder's own low-res logits (what a previous prediction
returned), not a binary mask: a 0/1 mask fed there is outside what the model was trained on,
so the seed is box + points, and a mask goes in as `mask_input` only where it was measured to
help (not measured here: random weights cannot judge masks).
"""

from __future__ import annotations

import numpy as np


def prompts_from_mask(mask: np.ndarray, n_points: int = 3) -> dict:
    """Box and interior points of a mask, deterministic.

    The first point is the pixel farthest from the background and the image border (eval's
    "center" prompt); each next one maximises min(distance to the background, distance to the
    points chosen so far), so points spread over the mask, reach its other pieces, and keep
    away from its edges. Ties go to the first pixel in row-major order.

    Arguments:
      mask: H x W, nonzero inside (bool or any integer type).
      n_points: how many points (>= 1); fewer when the mask has fewer pixels.

    Returns:
      {"points": [[x, y], ...] (pixel indices, floats), "labels": [1, ...],
       "box": [x0, y0, x1, y1]} with x1 = last column + 1 and y1 = last row + 1 (the box
      around the pixels' areas, as eval's "box" prompt), in the mask's pixels: the
      `Provenance.prompts` layout, ready for `Segmenter.predict_with`.
    """
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be an H x W array, got shape {mask.shape}")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
        raise ValueError(f"n_points must be an integer >= 1, got {n_points!r}")
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("the mask is empty: no prompts can be made from it")
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    inside = mask[y0:y1, x0:x1] != 0
    # a zero border: pixels at the mask's box (and so at the image's border) are near the edge
    to_background = cv2.distanceTransform(np.pad(inside.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    rows, cols = np.nonzero(inside)
    edge = to_background[rows, cols].astype(np.float64)
    to_points = np.full(edge.shape, np.inf)
    chosen: list[int] = []
    for _ in range(min(n_points, rows.size)):
        score = np.minimum(edge, to_points)
        score[chosen] = -1.0
        best = int(np.argmax(score))  # row-major order of np.nonzero: ties go to the first
        chosen.append(best)
        to_points = np.minimum(to_points, np.hypot(rows - rows[best], cols - cols[best]))
    points = [[float(cols[i] + x0), float(rows[i] + y0)] for i in chosen]
    return {"points": points, "labels": [1] * len(points), "box": [float(x0), float(y0), float(x1), float(y1)]}
