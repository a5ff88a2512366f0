"""One mask from low-res logits at full resolution, computed only inside its window.

`decoder.masks_from_logits` resizes a mask's S/4 x S/4 logits to the whole H x W image: on a
2048 px image that is 4 M pixels, then as many for its box and its run-length encoding, about
70 ms a mask on 2 CPU cores, and ~12x that for a 6000 x 4000 slide field. The automatic mask
generator makes thousands of masks, most of them small. Bilinear interpolation is a convex
combination of the 2 x 2 low-res logits around each output pixel, so an output pixel can be
above a threshold >= 0 only where one of those four is: `mask_window` computes the same values
as `logits_to_image` (the same source coordinates, the same weights) for the output rows and
columns whose neighbours meet the low-res mask's box, and nothing elsewhere. `window_rle`
encodes such a window as the COCO RLE of the whole image without forming the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np
import torch
from segment_anything.utils.amg import coco_encode_rle


@dataclass(frozen=True)
class MaskWindow:
    """A full-resolution mask known to be empty outside `mask`'s window at (`top`, `left`)."""

    top: int
    left: int
    mask: np.ndarray  # (h, w) bool
    image_size: tuple[int, int]  # (H, W) of the image the window lies in

    def box_xyxy(self) -> Optional[tuple[int, int, int, int]]:
        """(x0, y0, x1, y1) of the set pixels, inclusive as SAM's `batched_mask_to_box`
        gives them; None when the window holds no set pixel."""
        rows, cols = np.flatnonzero(self.mask.any(axis=1)), np.flatnonzero(self.mask.any(axis=0))
        if rows.size == 0:
            return None
        return (self.left + int(cols[0]), self.top + int(rows[0]), self.left + int(cols[-1]), self.top + int(rows[-1]))

    def shifted(self, dx: int, dy: int, image_size: tuple[int, int]) -> "MaskWindow":
        """The same window placed at (+dx, +dy) in a larger image (a crop's mask in the image)."""
        return MaskWindow(self.top + dy, self.left + dx, self.mask, image_size)

    def full(self) -> np.ndarray:
        """The whole H x W bool mask."""
        out = np.zeros(self.image_size, bool)
        h, w = self.mask.shape
        out[self.top : self.top + h, self.left : self.left + w] = self.mask
        return out


@lru_cache(maxsize=32)
def _axis(low: int, out_size: int, scale_factor: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index 0..size-1 along one axis: the two low-res source indices and the
    second one's weight, as `F.interpolate(bilinear, align_corners=False, scale_factor,
    recompute_scale_factor=False)` on `low` inputs gives `out_size` outputs, replicated past
    the last (the padding in `logits_to_image`)."""
    scale = np.float32(1.0 / scale_factor)  # PyTorch: 1 / scale in double, then the op's float
    dst = np.minimum(np.arange(size), out_size - 1).astype(np.float32)
    src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
    i0 = src.astype(np.int64)
    i1 = i0 + (i0 < low - 1)
    lam1 = np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
    return i0, i1, lam1


def _axes(input_size: tuple[int, int], original_size: tuple[int, int], grid: int):
    """The row and column maps `logits_to_image` uses for an S/4 = `grid` low-res mask."""
    (h, w), (height, width) = input_size, original_size
    crop_h, crop_w = min(-(-h // 4) + 1, grid), min(-(-w // 4) + 1, grid)
    sf_h, sf_w = 4.0 * height / h, 4.0 * width / w
    rows = _axis(crop_h, int(np.floor(crop_h * sf_h)), sf_h, height)
    cols = _axis(crop_w, int(np.floor(crop_w * sf_w)), sf_w, width)
    return (crop_h, crop_w), rows, cols


def _span(i0: np.ndarray, i1: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """The output indices [start, stop) whose source pair meets low-res [first, last]
    (both maps are non-decreasing, so that is one run)."""
    start = int(np.searchsorted(i1, first, side="left"))
    stop = int(np.searchsorted(i0, last, side="right"))
    return start, stop


def mask_window(
    low_res: torch.Tensor,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    threshold: float = 0.0,
) -> Optional[MaskWindow]:
    """`masks_from_logits(low_res, input_size, original_size, threshold)` for one mask, inside
    the window where it can be set.

    Arguments:
      low_res: (S/4, S/4) logits of one mask (any device; float).
      input_size: (h, w) of the resized image before padding (the embedding's `input_size`).
      original_size: (H, W) of the image (the embedding's `original_size`).
      threshold: >= 0 (SAM's `mask_threshold` is 0.0); pixels with logits above it are set.

    Returns:
      The window (equal to the whole-image mask inside it, empty outside), or None when no
      low-res logit is above the threshold.
    """
    if threshold < 0:
        raise ValueError(f"mask_window needs a threshold >= 0 (a convex combination of values at or below it stays there), got {threshold}")
    grid = low_res.shape[-1]
    (crop_h, crop_w), (r0, r1, rl), (c0, c1, cl) = _axes(input_size, original_size, grid)
    logits = low_res[:crop_h, :crop_w].detach().float().cpu()
    above = logits > threshold
    rows, cols = torch.nonzero(above.any(dim=1)).flatten(), torch.nonzero(above.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    y0, y1 = _span(r0, r1, int(rows[0]), int(rows[-1]))
    x0, x1 = _span(c0, c1, int(cols[0]), int(cols[-1]))
    if y0 >= y1 or x0 >= x1:
        return None
    ci0, ci1, cw1 = (torch.from_numpy(a[x0:x1]) for a in (c0, c1, cl))
    ri0, ri1, rw1 = (torch.from_numpy(a[y0:y1]) for a in (r0, r1, rl))
    # columns first, then rows: the order PyTorch's bilinear kernel combines them in
    lo, hi = int(ri0[0]), int(ri1[-1]) + 1
    band = logits[lo:hi]
    across = band[:, ci0] * (1 - cw1) + band[:, ci1] * cw1  # (low rows, window columns)
    values = across[ri0 - lo] * (1 - rw1)[:, None] + across[ri1 - lo] * rw1[:, None]
    return MaskWindow(y0, x0, (values > threshold).numpy(), (int(original_size[0]), int(original_size[1])))


def window_rle(window: MaskWindow) -> dict:
    """The COCO compressed RLE {"size": [H, W], "counts": str} of the whole image's mask,
    from the window alone (column-major runs: the columns left and right of the window are
    all background). Equal to pycocotools' `encode` of `window.full()`."""
    height, width = window.image_size
    h, w = window.mask.shape
    strip = np.zeros((height, w), bool)  # the window's columns, full height
    strip[window.top : window.top + h] = window.mask
    flat = strip.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:  # COCO counts begin with a run of background
        runs.insert(0, 0)
    runs[0] += window.left * height
    after = (width - window.left - w) * height
    if after:
        if flat[-1]:
            runs.append(after)
        else:
            runs[-1] += after
    return coco_encode_rle({"size": [height, width], "counts": runs})
