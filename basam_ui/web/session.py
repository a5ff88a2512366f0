"""One user's state and the values the page and the API send: settings, prompts, sizes,
and each side's result. No Gradio, no model work here.

`Session` is immutable: every event returns a new one, so a failed event leaves the old one
as it was. Bad input raises `AppError` with a message for the page.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ..basam.config import BASAMConfig

SIZES = (1024, 1536, 2048, 3072, 4096)
NATIVE = "native"
DEFAULT_SIZE = 1024
DEFAULT_BETA = 0.1
DISPLAY_MAX_SIDE = 1600  # long side of the canvas copy and of the rendered panels
SIDES = ("SAM", "BA-SAM")
EXPORT_FORMATS = {"PNG": "png", "COCO RLE (JSON)": "rle", "Polygons (JSON)": "polygons"}

Progress = Callable[[float, str], None]
Point = tuple[float, float, int]
Box = tuple[float, float, float, float]


class AppError(ValueError):
    """A problem to show in the page, in words for its user."""



def no_progress(fraction: float, text: str) -> None:
    """A Progress that reports nothing."""


# -- settings and prompts ---------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The page's model settings. `size` is an S like 1024 or "native"."""

    model: str
    size: int | str = DEFAULT_SIZE
    nsf: bool = True
    bmam: bool = True
    beta: float = DEFAULT_BETA
    multimask: bool = False

    @property
    def basam_config(self) -> BASAMConfig:
        """The BA-SAM side's setting. With BM-AM off beta does nothing, so it is dropped from
        the cache key (moving beta then encodes nothing)."""
        try:
            return BASAMConfig(nsf=bool(self.nsf), bmam=bool(self.bmam), beta=float(self.beta) if self.bmam else 0.0)
        except (TypeError, ValueError) as exc:
            raise AppError(f"beta: {exc}") from None


def parse_size(value: int | str, max_size: int) -> int | str:
    """A size from the page or the API ("1024", 2048, "native") -> an int S or "native"."""
    text = str(value).strip().lower()
    if text.startswith(NATIVE):
        return NATIVE
    try:
        size = int(float(text))
    except (ValueError, OverflowError):
        raise AppError(f"size must be one of {', '.join(map(str, SIZES))} or 'native', got {value!r}") from None
    if size < 256 or size % 16:
        raise AppError(f"size must be a multiple of 16 and at least 256, got {size}")
    if size > max_size:
        raise AppError(f"size {size} is over this server's limit of {max_size} (--max-size)")
    return size


@dataclass(frozen=True)
class Prompts:
    """Points (x, y, label) and boxes (x0, y0, x1, y1) in original pixels, in drawing order.
    SAM takes one box: `box` is the last one drawn."""

    points: tuple[Point, ...] = ()
    boxes: tuple[Box, ...] = ()

    @property
    def box(self) -> Optional[Box]:
        return self.boxes[-1] if self.boxes else None

    @property
    def empty(self) -> bool:
        return not self.points and not self.boxes

    def for_export(self) -> dict:
        """The prompts as `export.export_metadata` takes them (the box the model used)."""
        return {
            "points": [[x, y] for x, y, _ in self.points],
            "labels": [label for _, _, label in self.points],
            "box": list(self.box) if self.box else None,
        }


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AppError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def prompts_from_canvas(value: Optional[Mapping[str, Any]]) -> Prompts:
    """The prompts in a PromptCanvas value (sent by the browser, so checked field by field)."""
    if not value:
        return Prompts()
    items: list[tuple[float, str, tuple]] = []
    try:
        for p in value.get("points") or []:
            label = p.get("label")
            if label not in (0, 1) or isinstance(label, bool):
                raise AppError(f"point label must be 1 (positive) or 0 (negative), got {label!r}")
            xy = (_number(p.get("x"), "point x"), _number(p.get("y"), "point y"))
            items.append((_number(p.get("i", 0), "prompt number"), "p", (*xy, int(label))))
        for b in value.get("boxes") or []:
            x0, y0, x1, y1 = (_number(b.get(k), f"box {k}") for k in ("x0", "y0", "x1", "y1"))
            items.append((_number(b.get("i", 0), "prompt number"), "b", (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))
    except AttributeError:  # a list entry that is not an object
        raise AppError("the prompts sent by the page are malformed") from None
    items.sort(key=lambda item: item[0])  # drawing order, so the last box is the newest
    return Prompts(
        points=tuple(v for _, kind, v in items if kind == "p"),
        boxes=tuple(v for _, kind, v in items if kind == "b"),
    )



# -- results and session ----------------------------------------------------------------


class CandidateMasks:
    """A multimask result's candidates at the original resolution, each made when first read:
    a click needs only the shown one, the others wait until the annotator picks them.

    `low_res` (C, S/4, S/4) float32 logits; `known` the candidates already at full resolution
    ({index: (H, W) bool}); `input_size` (h, w) of the image inside the S x S input and
    `original_size` (H, W) and `threshold` make the masks (`decoder.masks_from_logits`, as
    `Segmenter.predict_with` does). Plain data, so it pickles (ZeroGPU's worker returns it).
    Reads like the (C, H, W) bool array it stands for: len(), [k], iteration.
    """

    def __init__(self, low_res: np.ndarray, known: Mapping[int, np.ndarray], input_size: tuple[int, int],
                 original_size: tuple[int, int], threshold: float = 0.0):  # fmt: skip
        self.low_res = np.asarray(low_res, dtype=np.float32)
        self.input_size, self.original_size, self.threshold = tuple(input_size), tuple(original_size), threshold
        self._full: dict[int, np.ndarray] = dict(known)

    def __len__(self) -> int:
        return len(self.low_res)

    def __getitem__(self, index: int) -> np.ndarray:
        index = range(len(self))[index]  # IndexError past the end, negative indices as arrays do
        if index not in self._full:
            import torch

            from ..decoder import masks_from_logits

            with torch.inference_mode():
                low_res = torch.from_numpy(self.low_res[index])
                self._full[index] = masks_from_logits(low_res, self.input_size, self.original_size, self.threshold).numpy()
        return self._full[index]

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), *self.original_size)


@dataclass(frozen=True, eq=False)  # eq=False: compared and hashed by identity (it holds arrays)
class SideResult:
    """One side (SAM or BA-SAM) after an event: how its embedding was obtained, and its masks.

    `masks` (C, H, W) bool at the original resolution (an array, or `CandidateMasks` that
    makes each when first read), or None before the first prompt;
    `scores` the predicted IoUs; `choice` the candidate shown; `gt_mae`/`gt_iou` per
    candidate when a ground truth is loaded.
    """

    config: BASAMConfig
    size: int
    encode_seconds: float
    source: str  # "computed", "memory" or "disk"
    decode_seconds: float = 0.0
    masks: Optional[np.ndarray | CandidateMasks] = None
    scores: Optional[np.ndarray] = None
    choice: int = 0
    gt_mae: Optional[tuple[float, ...]] = None
    gt_iou: Optional[tuple[float, ...]] = None
    precision: str = "fp32"  # the image encoder's, as run (the embedding's key)

    @property
    def mask(self) -> Optional[np.ndarray]:
        return None if self.masks is None else self.masks[self.choice]


@dataclass(frozen=True, eq=False)
class Session:
    """One browser session's state (kept in gr.State; nothing in it is shared).

    `image_path` is the server-side upload path, never a path the browser names; `folder`
    holds this session's display copy, panels and exports (see AppEngine.forget).
    """

    folder: Optional[Path] = None
    image: Optional[np.ndarray] = None  # H x W x 3 uint8, full resolution
    image_path: Optional[str] = None
    image_name: str = ""
    display: Optional[np.ndarray] = None  # long side <= DISPLAY_MAX_SIDE
    canvas_image: Optional[dict] = None  # {"url", "width", "height"} of the display copy
    gt: Optional[np.ndarray] = None  # H x W bool
    gt_name: str = ""
    prompts: Prompts = field(default_factory=Prompts)
    rev: int = 0  # the canvas value's revision the prompts came from (sent back with the masks)
    settings: Optional[Settings] = None  # those the results were made with
    sam: Optional[SideResult] = None
    basam: Optional[SideResult] = None

    def side(self, name: str) -> Optional[SideResult]:
        if name not in SIDES:
            raise AppError(f"side must be one of {SIDES}, got {name!r}")
        return self.sam if name == "SAM" else self.basam


# -- prompts given to the API -------------------------------------------------------------------


def parse_points(text: Any) -> tuple[Point, ...]:
    """API points: JSON [[x, y, label], ...] (label 1 positive, 0 negative; [x, y] means 1)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return ()
    try:
        raw = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise AppError(f"points must be JSON like [[x, y, 1], [x, y, 0]]: {exc}") from None
    if not isinstance(raw, list):
        raise AppError(f"points must be a JSON list like [[x, y, 1]], got {text!r}")
    points = []
    for p in raw:
        if not isinstance(p, (list, tuple)) or len(p) not in (2, 3):
            raise AppError(f"each point must be [x, y] or [x, y, label], got {p!r}")
        label = p[2] if len(p) == 3 else 1
        if label not in (0, 1) or isinstance(label, bool):
            raise AppError(f"point label must be 1 (positive) or 0 (negative), got {label!r}")
        points.append((_number(p[0], "point x"), _number(p[1], "point y"), int(label)))
    return tuple(points)


def parse_box(text: Any) -> Optional[Box]:
    """API box: JSON [x0, y0, x1, y1], or empty for none."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        raw = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise AppError(f"box must be JSON like [x0, y0, x1, y1]: {exc}") from None
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        raise AppError(f"box must be [x0, y0, x1, y1], got {text!r}")
    x0, y0, x1, y1 = (_number(v, "box coordinate") for v in raw)
    return (x0, y0, x1, y1)


