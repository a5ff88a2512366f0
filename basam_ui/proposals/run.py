"""`ProposalRun`: the automatic mask generator as a sequence of short steps; `propose` runs one
to the end with progress and cancellation."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from segment_anything.utils.amg import (
    build_all_layer_point_grids,
    calculate_stability_score,
    is_box_near_crop_edge,
    remove_small_regions,
)
from torchvision.ops.boxes import batched_nms, box_area

from ..segmenter import ImageEmbedding
from .batches import PointDecoder, decoder_memory_budget, max_points_per_batch
from .mask_window import MaskWindow, mask_window, window_rle
from .settings import Proposal, ProposalSet, ProposalSettings, RunProgress, settings_key, settings_record


class ProposalsCancelled(Exception):
    """`propose` was cancelled before it finished."""


@dataclass
class _Candidate:
    window: MaskWindow
    box: tuple[int, int, int, int]  # inclusive x0, y0, x1, y1 in the image
    iou: float
    stability: float
    point: tuple[float, float]
    crop_box: list
    unchanged: bool = True  # by the small-region cleanup


@dataclass
class _Crop:
    box: list
    embedding: ImageEmbedding
    points: np.ndarray  # (n, 2) in the crop's pixels
    candidates: list = field(default_factory=list)


class ProposalRun:
    """Proposals for one embedded image, computed by `step()` calls.

    Arguments:
      embedding: the whole image's embedding (its S, setting and precision make the proposals).
      decode: a `PointDecoder`; `segmenter_decoder(segmenter)` for the real one.
      settings: `ProposalSettings`.
      crop_embeddings: with `settings.crop_n_layers` > 0, the embeddings of the crops
        `settings.crop_boxes(embedding.original_size)[1:]`, in that order.
      points_per_batch: the first batch's size (later ones adapt to `batch_seconds`), or the
        fixed size when `batch_seconds` is None; default 1 when adapting, else 64. Never more
        than `max_points_per_batch(S, memory_bytes)`.
      batch_seconds: the time one step aims at (0.1 s: a click waits at most about that).
      memory_bytes: decoder working memory per batch (default `decoder_memory_budget`).
      mask_threshold: the model's `mask_threshold` (SAM's is 0.0).
    """

    def __init__(
        self,
        embedding: ImageEmbedding,
        decode: PointDecoder,
        settings: ProposalSettings = ProposalSettings(),
        *,
        crop_embeddings: Sequence[ImageEmbedding] = (),
        points_per_batch: Optional[int] = None,
        batch_seconds: Optional[float] = 0.1,
        memory_bytes: Optional[int] = None,
        mask_threshold: float = 0.0,
    ):
        self.settings = settings
        self.record = settings_record(embedding, settings)
        self.original_size = tuple(int(v) for v in embedding.original_size)
        boxes = settings.crop_boxes(self.original_size)
        if len(crop_embeddings) != len(boxes) - 1:
            raise ValueError(f"{len(boxes) - 1} crop embeddings needed for crop_n_layers={settings.crop_n_layers}, got {len(crop_embeddings)}")
        grids = build_all_layer_point_grids(settings.points_per_side, settings.crop_n_layers, settings.crop_n_points_downscale_factor)
        self._crops = []
        for (box, layer), emb in zip(boxes, [embedding, *crop_embeddings]):
            x0, y0, x1, y1 = box
            if tuple(emb.original_size) != (y1 - y0, x1 - x0) or emb.size != embedding.size or emb.config != embedding.config:
                raise ValueError(f"the embedding for crop {box} must be of a {x1 - x0}x{y1 - y0} image at the same S and setting")
            self._crops.append(_Crop(list(box), emb, grids[layer] * np.array([x1 - x0, y1 - y0], np.float64)))
        self.decode = decode
        self.batch_seconds = batch_seconds
        device = embedding.embedding.device
        self.max_batch = max_points_per_batch(embedding.size, memory_bytes if memory_bytes is not None else decoder_memory_budget(device))
        self.batch = min(self.max_batch, points_per_batch or (1 if batch_seconds else 64))
        self.mask_threshold = float(mask_threshold)
        self.points_total = sum(len(c.points) for c in self._crops)
        self.points_done = 0
        self.seconds = 0.0
        self._crop_index = 0
        self._offset = 0
        self._pool: list[_Candidate] = []  # after the per-crop NMS
        self._proposals: list[Proposal] = []
        self._cursor = 0
        self._phase = "decoding"
        self._last = (0, 0.0)
        self._result: Optional[ProposalSet] = None

    @property
    def done(self) -> bool:
        return self._phase == "done"

    @property
    def progress(self) -> RunProgress:
        pending = sum(len(c.candidates) for c in self._crops)
        return RunProgress(self._phase, self.points_done, self.points_total, len(self._pool) + pending, *self._last)

    def result(self) -> ProposalSet:
        """The proposals, once `done`."""
        if self._result is None:
            raise RuntimeError("the run has not finished: call step() until it returns False")
        return self._result

    def step(self) -> bool:
        """Do one batch of points (or one time slice of the cleanup and encoding at the end);
        returns whether work remains."""
        started = time.perf_counter()
        batch = 0
        if self._phase == "decoding":
            batch = self._decode_batch()
        elif self._phase == "cleaning":
            self._clean_slice(started)
        elif self._phase == "encoding":
            self._encode_slice(started)
        elapsed = time.perf_counter() - started
        self.seconds += elapsed
        self._last = (batch, elapsed)
        if batch and self.batch_seconds:  # the next batch's size from this one's time per point
            fitting = int(self.batch_seconds / max(elapsed / batch, 1e-6))
            self.batch = max(1, min(self.max_batch, fitting, 2 * batch))
        return not self.done

    # -- decoding -----------------------------------------------------------------------

    def _decode_batch(self) -> int:
        crop = self._crops[self._crop_index]
        points = crop.points[self._offset : self._offset + self.batch]
        low_res, iou = self.decode(crop.embedding, points)
        low_res, iou = low_res.flatten(0, 1), iou.flatten(0, 1)
        per_point = low_res.shape[0] // len(points)
        owners = np.repeat(np.arange(len(points)), per_point)
        keep = iou > self.settings.pred_iou_thresh if self.settings.pred_iou_thresh > 0 else torch.ones_like(iou, dtype=torch.bool)
        h, w = crop.embedding.input_size
        over_image = low_res[:, : -(-h // 4), : -(-w // 4)]  # the logits over the image, not its padding
        stability = calculate_stability_score(over_image, self.mask_threshold, self.settings.stability_score_offset)
        if self.settings.stability_score_thresh > 0:
            keep &= stability >= self.settings.stability_score_thresh
        chosen = torch.nonzero(keep).flatten().cpu()
        survivors = low_res[chosen].cpu()
        iou, stability = iou[chosen].cpu(), stability[chosen].cpu()
        height, width = self.original_size
        x0, y0 = crop.box[:2]
        for j, index in enumerate(chosen.tolist()):
            window = mask_window(survivors[j], crop.embedding.input_size, crop.embedding.original_size, self.mask_threshold)
            box = window.box_xyxy() if window is not None else None
            if box is None:
                continue
            if is_box_near_crop_edge(torch.tensor([box]), crop.box, [0, 0, width, height])[0]:
                continue  # cut by the crop's edge: another crop holds the whole object
            px, py = points[owners[index]]
            crop.candidates.append(_Candidate(
                window.shifted(x0, y0, (height, width)), (box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0),
                float(iou[j]), float(stability[j]), (float(px) + x0, float(py) + y0), crop.box,
            ))  # fmt: skip
        self._offset += len(points)
        self.points_done += len(points)
        if self._offset >= len(crop.points):
            self._finish_crop(crop)
        return len(points)

    def _finish_crop(self, crop: _Crop) -> None:
        """NMS among the crop's candidates (by predicted IoU), then on to the next crop; after
        the last, NMS across crops (smaller crops preferred) and the cleanup or encoding."""
        found = crop.candidates
        if found:
            keep = _nms(found, torch.tensor([c.iou for c in found]), self.settings.box_nms_thresh)
            self._pool.extend(found[i] for i in keep)
        crop.candidates = []
        self._crop_index += 1
        self._offset = 0
        if self._crop_index < len(self._crops):
            return
        if len(self._crops) > 1 and self._pool:
            areas = box_area(torch.tensor([c.crop_box for c in self._pool], dtype=torch.float32))
            keep = _nms(self._pool, 1 / areas, self.settings.crop_nms_thresh)
            self._pool = [self._pool[i] for i in keep]
        self._phase = "cleaning" if self.settings.min_mask_region_area > 0 else "encoding"

    # -- the end: small-region cleanup and encoding -------------------------------------

    def _clean_slice(self, started: float) -> None:
        """`remove_small_regions` (holes, then islands) on candidates until the time slice is
        spent; after the last, SAM's NMS preferring unchanged masks."""
        area = self.settings.min_mask_region_area
        while self._cursor < len(self._pool):
            candidate = self._pool[self._cursor]
            self._cursor += 1
            window, mask = _padded(candidate.window, area)
            mask, holes = remove_small_regions(mask, area, mode="holes")
            mask, islands = remove_small_regions(mask, area, mode="islands")
            if holes or islands:
                changed = MaskWindow(window.top, window.left, mask, window.image_size)
                box = changed.box_xyxy()
                candidate.window, candidate.unchanged = changed, False
                candidate.box = box if box is not None else (0, 0, 0, 0)
            if self._slice_spent(started):
                return
        if self._pool:
            thresh = max(self.settings.box_nms_thresh, self.settings.crop_nms_thresh)
            keep = _nms(self._pool, torch.tensor([float(c.unchanged) for c in self._pool]), thresh)
            self._pool = [self._pool[i] for i in keep if self._pool[i].window.mask.any()]
        self._cursor, self._phase = 0, "encoding"

    def _encode_slice(self, started: float) -> None:
        """COCO RLE of the kept candidates until the time slice is spent; then done."""
        from pycocotools import mask as mask_utils

        while self._cursor < len(self._pool):
            candidate = self._pool[self._cursor]
            rle = window_rle(candidate.window)
            compressed = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            self._proposals.append(Proposal(
                rle, [float(v) for v in mask_utils.toBbox(compressed)], int(mask_utils.area(compressed)),
                candidate.iou, candidate.stability, candidate.point, candidate.crop_box,
            ))  # fmt: skip
            self._cursor += 1
            if self._slice_spent(started):
                return
        self._phase = "done"
        self._result = ProposalSet(self.record, settings_key(self.record), self._proposals, self.points_done, self.seconds)

    def _slice_spent(self, started: float) -> bool:
        return self.batch_seconds is not None and time.perf_counter() - started >= self.batch_seconds


def _nms(candidates: Sequence[_Candidate], scores: torch.Tensor, threshold: float) -> list[int]:
    """Indices kept by torchvision's box NMS (SAM's inclusive boxes), best score first."""
    boxes = torch.tensor([c.box for c in candidates], dtype=torch.float32)
    return batched_nms(boxes, scores.float(), torch.zeros(len(candidates)), iou_threshold=threshold).tolist()


def _padded(window: MaskWindow, area: int) -> tuple[MaskWindow, np.ndarray]:
    """The window grown by ceil(sqrt(area)) pixels a side (within the image), so that the
    background around the mask is one region of at least `area` pixels wherever the image goes
    on, as it is in the whole image: `remove_small_regions` then finds the holes and islands it
    would find on the whole mask."""
    pad = math.ceil(math.sqrt(area))
    height, width = window.image_size
    h, w = window.mask.shape
    top, left = max(0, window.top - pad), max(0, window.left - pad)
    bottom, right = min(height, window.top + h + pad), min(width, window.left + w + pad)
    mask = np.zeros((bottom - top, right - left), bool)
    mask[window.top - top : window.top - top + h, window.left - left : window.left - left + w] = window.mask
    return MaskWindow(top, left, mask, window.image_size), mask


def propose(
    embedding: ImageEmbedding,
    decode: PointDecoder,
    settings: ProposalSettings = ProposalSettings(),
    *,
    on_step: Optional[Callable[[RunProgress], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    **run_options,
) -> ProposalSet:
    """Run a `ProposalRun` to the end.

    Arguments:
      embedding, decode, settings: as `ProposalRun`; `run_options` its keyword options.
      on_step: called with the progress after every step (each batch of points).
      cancelled: checked before every step; when it returns True, ProposalsCancelled is raised
        (e.g. `threading.Event().is_set`).

    Returns:
      The ProposalSet.
    """
    run = ProposalRun(embedding, decode, settings, **run_options)
    while not run.done:
        if cancelled is not None and cancelled():
            raise ProposalsCancelled(f"cancelled after {run.points_done} of {run.points_total} points")
        run.step()
        if on_step is not None:
            on_step(run.progress)
    return run.result()
