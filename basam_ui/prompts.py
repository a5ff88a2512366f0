"""Prompts: points with their labels, boxes and a low-res mask input, parsed and checked once.

`Prompts` is what every layer passes around: the pages build it from the canvas's value
(`from_canvas`), the API from its JSON (`from_api`), `Segmenter.predict_with` from
SamPredictor-style arrays (`from_arrays`), the project store from a stored object
(`from_record`); `record()` is the form stored and exported, `model_inputs(size)` what the
model takes (clipped to the image). Coordinates are (x, y) in original-image pixels; label 1
marks the object, 0 the background. SAM takes one box per prediction: the last one drawn.
Bad input raises `PromptError` (a ValueError) with a sentence for the user. NumPy only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

Point = tuple[float, float, int]  # x, y, label
Box = tuple[float, float, float, float]  # x0, y0, x1, y1


class PromptError(ValueError):
    """A prompt that can't be used, in words for its user."""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
        raise PromptError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _label(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or value not in (0, 1):
        raise PromptError(f"point label must be 1 (positive) or 0 (negative), got {value!r}")
    return int(value)


def _box(x0: float, y0: float, x1: float, y1: float) -> Box:
    """A box from two corners in any order."""
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


@dataclass(frozen=True)
class Prompts:
    """Points (x, y, label) and boxes (x0, y0, x1, y1) in original pixels, in drawing order,
    and an optional low-res mask input (1, S/4, S/4) of logits (not compared: two prompt sets
    are equal when their points and boxes are)."""

    points: tuple[Point, ...] = ()
    boxes: tuple[Box, ...] = ()
    mask_input: Optional[np.ndarray] = field(default=None, compare=False)

    @property
    def box(self) -> Optional[Box]:
        """The box the model uses: the last one drawn."""
        return self.boxes[-1] if self.boxes else None

    @property
    def empty(self) -> bool:
        return not self.points and not self.boxes and self.mask_input is None

    @property
    def count(self) -> int:
        """Points plus the box used (if any)."""
        return len(self.points) + (self.box is not None)

    # -- readers ------------------------------------------------------------------------

    @classmethod
    def from_canvas(cls, value: Optional[Mapping[str, Any]]) -> "Prompts":
        """The prompts in a canvas value (sent by the browser, so checked field by field):
        {"points": [{"x", "y", "label", "i"}], "boxes": [{"x0", "y0", "x1", "y1", "i"}]}, "i"
        numbering the prompts in drawing order across both lists."""
        if not value:
            return cls()
        items: list[tuple[float, str, tuple]] = []
        try:
            for p in value.get("points") or []:
                label = _label(p.get("label"))
                xy = (_number(p.get("x"), "point x"), _number(p.get("y"), "point y"))
                items.append((_number(p.get("i", 0), "prompt number"), "p", (*xy, label)))
            for b in value.get("boxes") or []:
                corners = (_number(b.get(k), f"box {k}") for k in ("x0", "y0", "x1", "y1"))
                items.append((_number(b.get("i", 0), "prompt number"), "b", _box(*corners)))
        except AttributeError:  # a list entry that is not an object
            raise PromptError("the prompts sent by the page are malformed") from None
        items.sort(key=lambda item: item[0])  # drawing order, so the last box is the newest
        return cls(
            points=tuple(v for _, kind, v in items if kind == "p"),
            boxes=tuple(v for _, kind, v in items if kind == "b"),
        )

    def canvas_items(self) -> dict[str, list[dict]]:
        """The canvas value's "points" and "boxes" for these prompts (the box after the points)."""
        points = [{"x": x, "y": y, "label": label, "i": k + 1} for k, (x, y, label) in enumerate(self.points)]
        boxes = [{"x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3], "i": len(points) + k + 1} for k, b in enumerate(self.boxes)]
        return {"points": points, "boxes": boxes}

    @classmethod
    def from_api(cls, points: Any = "", box: Any = "") -> "Prompts":
        """The API's prompts: `points` JSON [[x, y, label], ...] (label 1 positive, 0
        negative; [x, y] means 1), `box` JSON [x0, y0, x1, y1]; either may be empty."""
        made = []
        for p in _json_list(points, "points", "[[x, y, 1], [x, y, 0]]"):
            if not isinstance(p, (list, tuple)) or len(p) not in (2, 3):
                raise PromptError(f"each point must be [x, y] or [x, y, label], got {p!r}")
            made.append((_number(p[0], "point x"), _number(p[1], "point y"), _label(p[2] if len(p) == 3 else 1)))
        raw_box = _json_list(box, "box", "[x0, y0, x1, y1]")
        if raw_box and len(raw_box) != 4:
            raise PromptError(f"box must be [x0, y0, x1, y1], got {box!r}")
        boxes = (tuple(_number(v, "box coordinate") for v in raw_box),) if raw_box else ()
        return cls(points=tuple(made), boxes=boxes)

    @classmethod
    def from_arrays(
        cls,
        point_coords: Optional[np.ndarray] = None,
        point_labels: Optional[np.ndarray] = None,
        box: Optional[np.ndarray] = None,
        mask_input: Optional[np.ndarray] = None,
    ) -> "Prompts":
        """SamPredictor-style arguments: point_coords (N, 2), point_labels (N,), box (4,) as
        x0, y0, x1, y1 with x1 > x0 and y1 > y0, mask_input (1, S/4, S/4) logits."""
        if point_coords is None and box is None and mask_input is None:
            raise PromptError("no prompt: give at least one point, a box or a mask_input")
        if (point_coords is None) != (point_labels is None):
            raise PromptError("point_coords and point_labels must be given together")
        points: tuple[Point, ...] = ()
        if point_coords is not None:
            coords = np.asarray(point_coords, dtype=np.float64).reshape(-1, 2) if np.size(point_coords) else None
            if coords is None or len(coords) == 0:
                raise PromptError("point_coords is empty")
            labels = np.asarray(point_labels).reshape(-1)
            check_labels(labels, len(coords))
            if not np.all(np.isfinite(coords)):
                raise PromptError(f"point coordinates must be finite numbers, got {coords.tolist()}")
            points = tuple((float(x), float(y), int(label)) for (x, y), label in zip(coords, labels))
        boxes: tuple[Box, ...] = ()
        if box is not None:
            xyxy = np.asarray(box, dtype=np.float64).reshape(-1)
            if xyxy.shape != (4,):
                raise PromptError(f"box must be [x0, y0, x1, y1], got {np.asarray(box).tolist()}")
            if not np.all(np.isfinite(xyxy)):
                raise PromptError(f"box coordinates must be finite numbers, got {xyxy.tolist()}")
            if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
                raise PromptError(f"box must have x1 > x0 and y1 > y0, got {xyxy.tolist()}")
            boxes = (tuple(float(v) for v in xyxy),)
        mask = None if mask_input is None else np.asarray(mask_input, dtype=np.float32)
        return cls(points=points, boxes=boxes, mask_input=mask)

    @classmethod
    def from_record(cls, record: Optional[Mapping[str, Any]]) -> "Prompts":
        """Prompts from their stored form (`record()`: "points", "labels", "box")."""
        checked = normalise_record(record)
        points = tuple((x, y, label) for (x, y), label in zip(checked["points"], checked["labels"]))
        return cls(points=points, boxes=(tuple(checked["box"]),) if checked["box"] else ())

    # -- writers ------------------------------------------------------------------------

    def record(self) -> dict:
        """The stored and exported form: {"points": [[x, y], ...], "labels": [1/0, ...],
        "box": [x0, y0, x1, y1] or None} (the box the model used)."""
        return {
            "points": [[x, y] for x, y, _ in self.points],
            "labels": [label for _, _, label in self.points],
            "box": list(self.box) if self.box else None,
        }

    def model_inputs(
        self, original_size: tuple[int, int]
    ) -> tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
        """(points (N, 2), labels (N,), box (4,)) for an (H, W) image, each None when absent:
        points outside the image clipped to its last pixel (0..W-1, 0..H-1), the box to its
        border (0..W, 0..H). Raises PromptError for a box that lies outside the image."""
        height, width = original_size
        points = labels = box = None
        if self.points:
            points = np.clip(np.array([[x, y] for x, y, _ in self.points], dtype=np.float64), 0,
                             np.array([width - 1, height - 1], dtype=np.float64))  # fmt: skip
            labels = np.array([label for _, _, label in self.points])
        if self.box is not None:
            given = np.array(self.box, dtype=np.float64)
            box = np.clip(given, 0, np.array([width, height, width, height], dtype=np.float64))
            if box[2] <= box[0] or box[3] <= box[1]:
                raise PromptError(f"box {given.tolist()} lies outside the {width}x{height} image")
        return points, labels, box


def check_labels(labels: np.ndarray, count: int) -> None:
    """PromptError unless there is one label per point and each is 0 or 1."""
    if len(labels) != count:
        raise PromptError(f"prompts need one label per point: got {count} points but {len(labels)} labels")
    if not np.isin(labels, (0, 1)).all():
        raise PromptError(
            f"point labels must be 1 or 0, got {labels.tolist()}: 0 (background) or 1 (the object)"
        )


def normalise_record(record: Optional[Mapping[str, Any]]) -> dict:
    """Prompts in their stored form, checked and as plain lists: points [[x, y], ...] (floats),
    labels [0/1, ...], box [x0, y0, x1, y1] or None. PromptError for anything else."""
    record = record or {}
    points = np.asarray([] if record.get("points") is None else record["points"], dtype=float)
    labels = np.asarray([] if record.get("labels") is None else record["labels"], dtype=int).ravel()
    if points.size == 0:
        points = points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise PromptError(f"prompt points must be finite [x, y] pairs, got {record.get('points')!r}")
    check_labels(labels, len(points))
    box = record.get("box")
    if box is not None:
        box = np.asarray(box, dtype=float).ravel()
        if box.shape != (4,) or not np.isfinite(box).all():
            raise PromptError(f"box must be [x0, y0, x1, y1], got {record.get('box')!r}")
        box = box.tolist()
    return {"points": points.tolist(), "labels": labels.tolist(), "box": box}


def _json_list(text: Any, what: str, example: str) -> list:
    """A JSON list from the API (empty text or None: [])."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    try:
        raw = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise PromptError(f"{what} must be JSON like {example}: {exc}") from None
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise PromptError(f"{what} must be a JSON list like {example}, got {text!r}")
    return list(raw)
