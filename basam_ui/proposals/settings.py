"""What makes a set of proposals and what one proposal is: `ProposalSettings` (SAM's automatic
mask generator's options), `settings_record` / `settings_key` (the stable identity of a set),
`Proposal`, `ProposalSet` and `RunProgress`."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np
from segment_anything.utils.amg import generate_crop_boxes

from ..segmenter import ImageEmbedding

ALGORITHM_VERSION = 1  # part of the settings key: a change to what is kept invalidates stored proposals


@dataclass(frozen=True)
class ProposalSettings:
    """SAM's automatic mask generator's options, with its defaults.

    `points_per_side`: the grid is points_per_side^2 points over the image; `pred_iou_thresh`
    and `stability_score_thresh` (with `stability_score_offset`) filter candidates;
    `box_nms_thresh` removes duplicates; `crop_n_layers` > 0 also runs on overlapping crops
    (each needs its own embedding, see `crop_boxes`); `min_mask_region_area` > 0 removes
    islands and fills holes smaller than that many pixels.
    """

    points_per_side: int = 32
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        for name in ("points_per_side", "crop_n_layers", "crop_n_points_downscale_factor", "min_mask_region_area"):
            value = getattr(self, name)
            low = 1 if name in ("points_per_side", "crop_n_points_downscale_factor") else 0
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh", "crop_overlap_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if not math.isfinite(self.stability_score_offset) or self.stability_score_offset <= 0:
            raise ValueError(f"stability_score_offset must be > 0, got {self.stability_score_offset!r}")

    def crop_boxes(self, original_size: tuple[int, int]) -> list[tuple[list[int], int]]:
        """[(crop box [x0, y0, x1, y1], layer), ...] for an (H, W) image: the whole image
        (layer 0) first, then the crops. Embed `image[y0:y1, x0:x1]` of each crop (layer > 0)
        at the same S and setting and pass them to `ProposalRun` as `crop_embeddings`."""
        boxes, layers = generate_crop_boxes(tuple(original_size), self.crop_n_layers, self.crop_overlap_ratio)
        return list(zip(boxes, layers))


def settings_record(embedding: ImageEmbedding, settings: ProposalSettings) -> dict:
    """What made a set of proposals, JSON-ready: the model, S, setting and precision of the
    embedding, every `ProposalSettings` field and the algorithm version (not the image: the
    caller keys proposals by image as well)."""
    config = embedding.config
    return {
        "algorithm": ALGORITHM_VERSION,
        "model": embedding.key.model,
        "input_size": embedding.size,
        "nsf": config.nsf,
        "bmam": config.bmam,
        "beta": config.beta,
        "precision": embedding.precision,
        **asdict(settings),
    }


def settings_key(record: dict) -> str:
    """A stable 16-hex digest of a `settings_record`."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Proposal:
    """One proposed mask, in full-resolution pixels of the image.

    `rle`: COCO compressed RLE {"size": [H, W], "counts": str} (as objects are stored);
    `bbox`: [x, y, w, h] as pycocotools' `toBbox` gives it; `point`: the grid point (x, y)
    that made it; `crop_box`: [x0, y0, x1, y1] of the crop it was decoded on.
    """

    rle: dict
    bbox: list
    area: int
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]
    crop_box: list

    def mask(self) -> np.ndarray:
        """The H x W bool mask."""
        from pycocotools import mask as mask_utils

        return mask_utils.decode({"size": self.rle["size"], "counts": self.rle["counts"].encode("ascii")}).astype(bool)


@dataclass(frozen=True)
class ProposalSet:
    """The proposals of one image under one `settings_record` (its digest `key`), best first."""

    record: dict
    key: str
    proposals: list[Proposal]
    points: int  # grid points decoded (all crops)
    seconds: float  # time spent in `step`, summed


@dataclass(frozen=True)
class RunProgress:
    """Where a run is: `phase` "decoding", "cleaning", "encoding" or "done"; points decoded out
    of all; candidates kept so far; the last step's batch size and seconds."""

    phase: str
    points_done: int
    points_total: int
    candidates: int
    points_per_batch: int
    step_seconds: float
