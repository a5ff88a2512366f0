"""Committed objects: how one was made (`Provenance`), what is stored (`ObjectRecord`), and the
mask <-> COCO RLE conversion used for storage."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from ..mask_formats import export_metadata, mask_to_coco_rle, mask_to_polygons
from ..sources.fields import Field
from ..vocabulary import OBJECT_SOURCES, RECORDED_PRECISIONS, SIDES

NO_PROMPTS = {"points": [], "labels": [], "box": None}  # an imported object's prompts


@dataclass(frozen=True)
class Provenance:
    """How an object's mask was made, filled by the page when the annotator commits.

    `side` is the mask committed ("basam" or "sam"); `checkpoint_sha256` the checkpoint's
    digest (kept to 16 hex characters; None for random weights); `input_size` the encoder size
    S; `prompts` {"points": [[x, y], ...], "labels": [1/0, ...], "box": [x0, y0, x1, y1] or
    None} in original pixels; `brush_edits` the number of brush/eraser strokes applied (brushed
    = brush_edits > 0 unless given); `predicted_iou` the decoder's score for the committed
    side; `iou_sam_basam` the IoU between the two sides' masks for the same prompts;
    `seconds` the time spent on the object (first prompt to commit), when the page knows it;
    `window` the display window the image was shown and encoded under (`Window.record()`:
    key, name, function, centre, width), None for images without windows.

    `source` is how the object came to be: "clicked" (prompts in the page), "proposal" (an
    accepted proposal: `proposal_id`, its `stability_score`; its prompt is the grid point) or
    "imported" (from another tool's file: side, model, S, setting and precision are None, the
    prompts empty; `import_attributes` holds what the file said about it, `origin` where in
    it). `Provenance.imported(...)` makes one.
    """

    side: Optional[str]
    model_type: Optional[str]
    checkpoint_sha256: Optional[str]
    input_size: Optional[int]
    nsf: Optional[bool]
    bmam: Optional[bool]
    beta: Optional[float]
    precision: str = "fp32"
    prompts: dict = field(default_factory=dict)
    brush_edits: int = 0
    brushed: Optional[bool] = None
    predicted_iou: Optional[float] = None
    iou_sam_basam: Optional[float] = None
    annotator: str = ""
    seconds: Optional[float] = None
    window: Optional[dict] = None
    source: str = "clicked"
    stability_score: Optional[float] = None
    proposal_id: Optional[int] = None
    import_attributes: Optional[dict] = None
    origin: Optional[str] = None

    @classmethod
    def imported(cls, annotator: str = "", attributes: Optional[dict] = None, origin: Optional[str] = None,
                 seconds: Optional[float] = None) -> "Provenance":  # fmt: skip
        """The provenance of an object read from another tool's file: no side, model or prompts."""
        return cls(None, None, None, None, None, None, None, None, prompts=dict(NO_PROMPTS), annotator=annotator,
                   seconds=seconds, source="imported", import_attributes=dict(attributes or {}), origin=origin)

    def __post_init__(self) -> None:
        if self.source not in OBJECT_SOURCES:
            raise ValueError(f"source must be one of {OBJECT_SOURCES}, got {self.source!r}")
        if self.source == "imported":
            self._check_imported()
            return
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")
        if self.precision not in RECORDED_PRECISIONS:
            raise ValueError(f"precision must be one of {RECORDED_PRECISIONS}, got {self.precision!r}")
        if isinstance(self.brush_edits, bool) or not isinstance(self.brush_edits, int) or self.brush_edits < 0:
            raise ValueError(f"brush_edits must be an integer >= 0, got {self.brush_edits!r}")
        self._check_scores()
        # model type, checkpoint digest, S, beta and prompts are checked and normalised as exports do
        meta = export_metadata(
            self.model_type, self.checkpoint_sha256, self.input_size, self.nsf, self.bmam, self.beta, self.prompts
        )
        object.__setattr__(self, "checkpoint_sha256", meta["checkpoint_sha256"])
        object.__setattr__(self, "input_size", meta["input_size"])
        object.__setattr__(self, "nsf", meta["nsf"])
        object.__setattr__(self, "bmam", meta["bmam"])
        object.__setattr__(self, "beta", meta["beta"])
        object.__setattr__(self, "prompts", meta["prompts"])
        object.__setattr__(self, "brushed", bool(self.brush_edits > 0 if self.brushed is None else self.brushed))
        object.__setattr__(self, "annotator", str(self.annotator or ""))
        if self.window is not None and (not isinstance(self.window, dict) or not self.window.get("key")):
            raise ValueError(f"window must be a window record with a key, or None, got {self.window!r}")

    def _check_scores(self) -> None:
        for name in ("predicted_iou", "iou_sam_basam", "seconds", "stability_score"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(float(value)) or float(value) < 0):
                raise ValueError(f"{name} must be a finite number >= 0 or None, got {value!r}")

    def _check_imported(self) -> None:
        made = {"side": self.side, "model_type": self.model_type, "input_size": self.input_size, "nsf": self.nsf,
                "bmam": self.bmam, "beta": self.beta}
        given = [name for name, value in made.items() if value is not None]
        if given:
            raise ValueError(f"an imported object has no {', '.join(given)} (no model made it)")
        self._check_scores()
        object.__setattr__(self, "precision", None)
        object.__setattr__(self, "prompts", dict(NO_PROMPTS))
        object.__setattr__(self, "brushed", bool(self.brush_edits > 0 if self.brushed is None else self.brushed))
        object.__setattr__(self, "annotator", str(self.annotator or ""))
        object.__setattr__(self, "import_attributes", dict(self.import_attributes or {}))

    @property
    def prompt_count(self) -> int:
        """Points plus the box (if any)."""
        return len(self.prompts["points"]) + (self.prompts["box"] is not None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (the `attributes` of a COCO annotation)."""
        return asdict(self)


@dataclass(frozen=True)
class ObjectRecord:
    """One live object of an image: its class, layer (higher lies on top), mask and provenance.
    `field`: the slide field it was made in (then the mask, its size, bbox and area are the
    field's pixels: `project/fields.py` places it in level-0 pixels), None for an object of an
    image decoded whole (the mask is at the image's size).
    `review` the reviewer's decision ("accepted", "rejected" or None) with its `review_reason`,
    `reviewed_by` and `reviewed_at`."""

    id: int
    image_id: int
    label: str
    label_id: int
    layer: int
    height: int
    width: int
    counts: str
    area: int
    bbox: list
    provenance: Provenance
    created_at: float
    replaces: Optional[int]
    field: Optional[Field] = None
    review: Optional[str] = None
    review_reason: Optional[str] = None
    reviewed_by: Optional[str] = None
    reviewed_at: Optional[float] = None

    def review_dict(self) -> dict:
        """The review fields, JSON-ready (part of a COCO annotation's attributes)."""
        return {"review": self.review, "review_reason": self.review_reason, "reviewed_by": self.reviewed_by,
                "reviewed_at": self.reviewed_at}

    def rle(self) -> dict:
        """{"size": [H, W], "counts": str}: COCO compressed RLE, as pycocotools reads it."""
        return {"size": [self.height, self.width], "counts": self.counts}

    def mask(self) -> np.ndarray:
        """The full-resolution H×W bool mask."""
        return decode_mask(self.height, self.width, self.counts)

    def cropped_mask(self) -> tuple[int, int, np.ndarray]:
        """(x0, y0, the mask inside its bounding box): paint with out[y0:, x0:][...] for speed."""
        x, y, w, h = (int(round(v)) for v in self.bbox)
        return x, y, self.mask()[y : y + h, x : x + w]

    def outlines(self) -> list[dict]:
        """The mask's polygons as `mask_formats.mask_to_polygons` traces them ({"outer",
        "holes"} in full-image pixel coordinates), traced inside the bounding box only."""
        x0, y0, crop = self.cropped_mask()
        shift = np.array([x0 - 1, y0 - 1])  # the crop is padded by one pixel of background
        polygons = mask_to_polygons(np.pad(crop, 1), {})["polygons"]
        return [
            {
                "outer": (np.asarray(p["outer"]) + shift).tolist(),
                "holes": [(np.asarray(hole) + shift).tolist() for hole in p["holes"]],
            }
            for p in polygons
        ]


def encode_mask(mask: np.ndarray) -> dict:
    """A non-empty H×W mask as {"size", "counts", "area", "bbox"} (COCO RLE)."""
    rle = mask_to_coco_rle(mask, {})
    if rle["area"] == 0:
        raise ValueError("the mask is empty: nothing to commit")
    return rle


def decode_mask(height: int, width: int, counts: str) -> np.ndarray:
    """COCO compressed RLE back to an H×W bool array."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": [height, width], "counts": counts.encode("ascii")}).astype(bool)


OBJECT_COLUMNS = (
    "o.id, o.image_id, l.name, o.label_id, o.layer, o.height, o.width, o.counts, o.area, o.bbox, o.side, "
    "o.model_type, o.checkpoint_sha256, o.input_size, o.nsf, o.bmam, o.beta, o.precision, o.prompts, "
    "o.brush_edits, o.brushed, o.predicted_iou, o.iou_sam_basam, o.annotator, o.seconds, o.created_at, o.replaces, "
    "o.window, o.field_x, o.field_y, o.field_width, o.field_height, o.field_downsample, "
    "o.source, o.stability_score, o.proposal_id, o.import_attributes, o.origin, o.review, o.review_reason, "
    "o.reviewed_by, o.reviewed_at"
)
OBJECT_FROM = "objects o JOIN labels l ON l.id = o.label_id"
LIVE = "o.deleted_at IS NULL AND o.superseded_by IS NULL"


def record_from_row(row: sqlite3.Row | tuple) -> ObjectRecord:
    """An ObjectRecord from a row selected with OBJECT_COLUMNS."""
    (oid, image_id, label, label_id, layer, height, width, counts, area, bbox, side, model_type, sha, size, nsf,
     bmam, beta, precision, prompts, brush_edits, brushed, predicted_iou, iou, annotator, seconds, created_at,
     replaces, window, field_x, field_y, field_width, field_height, field_downsample, source, stability, proposal_id,
     attributes, origin, review, reason, reviewed_by, reviewed_at) = row  # fmt: skip
    if source == "imported":
        provenance = Provenance.imported(annotator, json.loads(attributes) if attributes else {}, origin, seconds)
    else:
        provenance = Provenance(
            side=side, model_type=model_type, checkpoint_sha256=sha, input_size=size, nsf=bool(nsf), bmam=bool(bmam),
            beta=beta, precision=precision, prompts=json.loads(prompts), brush_edits=brush_edits,
            brushed=bool(brushed), predicted_iou=predicted_iou, iou_sam_basam=iou, annotator=annotator,
            seconds=seconds, window=json.loads(window) if window else None, source=source,
            stability_score=stability, proposal_id=proposal_id,
        )
    return ObjectRecord(
        id=oid, image_id=image_id, label=label, label_id=label_id, layer=layer, height=height, width=width,
        counts=counts, area=area, bbox=json.loads(bbox), provenance=provenance, created_at=created_at,
        replaces=replaces, review=review, review_reason=reason, reviewed_by=reviewed_by, reviewed_at=reviewed_at,
        field=None if field_x is None else Field(field_x, field_y, field_width, field_height, field_downsample),
    )


def insert_object(
    conn: sqlite3.Connection,
    image_id: int,
    label_id: int,
    layer: int,
    rle: dict,
    provenance: Provenance,
    created_at: float,
    replaces: Optional[int],
    field: Optional[Field] = None,
) -> int:
    """Insert one object row (inside the caller's transaction); returns its id. `field`: the
    slide field the mask's pixels are (None: the image's)."""
    p = provenance
    placed = (field.x, field.y, field.width, field.height, field.downsample) if field is not None else (None,) * 5
    cursor = conn.execute(
        "INSERT INTO objects (image_id, label_id, layer, height, width, counts, area, bbox, side, model_type, "
        "checkpoint_sha256, input_size, nsf, bmam, beta, precision, prompts, brushed, brush_edits, predicted_iou, "
        "iou_sam_basam, annotator, seconds, created_at, replaces, window, field_x, field_y, field_width, field_height, "
        "field_downsample, source, stability_score, proposal_id, import_attributes, origin) "
        f"VALUES ({', '.join('?' * 36)})",
        (
            image_id, label_id, layer, rle["size"][0], rle["size"][1], rle["counts"], rle["area"],
            json.dumps(rle["bbox"]), p.side, p.model_type, p.checkpoint_sha256, p.input_size, _flag(p.nsf),
            _flag(p.bmam), p.beta, p.precision, json.dumps(p.prompts), int(p.brushed), p.brush_edits,
            p.predicted_iou, p.iou_sam_basam, p.annotator, p.seconds, created_at, replaces,
            json.dumps(p.window) if p.window is not None else None, *placed, p.source,
            p.stability_score, p.proposal_id,
            json.dumps(p.import_attributes) if p.import_attributes is not None else None, p.origin,
        ),
    )
    return int(cursor.lastrowid)


def _flag(value: Optional[bool]) -> Optional[int]:
    return None if value is None else int(value)
