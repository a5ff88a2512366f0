"""One user's state: the settings the page sends, each side's result, and the session that
holds the image, its prompts and both results. No Gradio, no model work here.

`Session` is immutable: every event returns a new one, so a failed event leaves the old one
as it was. Bad input raises `AppError` with a message for the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np

from ...basam.config import BASAMConfig
from ...prompts import PromptError, Prompts
from ...sources.fields import Field
from ...vocabulary import DEFAULT_BETA, DEFAULT_SIZE, Resolution, parse_resolution, side_key

DISPLAY_MAX_SIDE = 1600  # long side of the canvas's display copy

Progress = Callable[[float, str], None]


class AppError(ValueError):
    """A problem to show in the page, in words for its user."""


USER_ERRORS = (AppError, PromptError)  # what the pages show as a message, not as a failure


def no_progress(fraction: float, text: str) -> None:
    """A Progress that reports nothing."""


# -- settings and prompts ---------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The page's model settings. `size` is an S like 1024 or "native"."""

    model: str
    size: Resolution = DEFAULT_SIZE
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


def parse_size(value: Resolution, max_size: int) -> Resolution:
    """A size from the page or the API ("1024", 2048, "native") -> an int S or "native"
    (`vocabulary.parse_resolution`, its errors as AppError)."""
    try:
        return parse_resolution(value, max_size)
    except ValueError as exc:
        raise AppError(str(exc)) from None


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

            from ...decoder import masks_from_logits

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
    key: Optional[object] = None  # the embedding's cache key (cache.EmbeddingKey), which names it to the browser
    # "server", or "browser": the page decoded the prompts and drew the masks itself; then `masks`
    # is None and `scores`/`choice` are the browser's (events.server_masks decodes them here)
    decoded_in: str = "server"

    @property
    def mask(self) -> Optional[np.ndarray]:
        return None if self.masks is None else self.masks[self.choice]


@dataclass(frozen=True)
class FieldItem:
    """An item annotated in fields (one read by region: a slide): its file on the server, its
    identity (the source's fingerprint), level-0 (width, height) and microns per pixel."""

    path: str
    fingerprint: str
    size: tuple[int, int]
    pixel_size: Optional[tuple[float, float]] = None


@dataclass(frozen=True)
class DecoderNote:
    """Which decoder made the masks the page shows, for the status line: "browser" with its
    time for both sides (`ms`) and the IoU between the two sides' masks it measured on a
    `grid` (w, h) of the image, or "server" with `why` the browser did not decode them."""

    where: str = "server"
    why: str = ""
    ms: Optional[float] = None
    iou: Optional[float] = None
    grid: Optional[tuple[int, int]] = None


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
    # the item read from the file (see windows.py): its frame (0-based) of `frames`, the display
    # windows it offers as (label, key) and the one it is shown and encoded under (its record),
    # and its source's facts as they may be shown (no UIDs, no patient)
    frame: int = 0
    frames: int = 1
    windows: tuple = ()
    window: Optional[dict] = None
    facts: Optional[dict] = None
    # a slide: no `image`; the model encodes `field` (fields.py), made from the view the
    # browser sent with its field request number `field_rev`
    fields: Optional[FieldItem] = None
    field: Optional[Field] = None
    field_rev: int = 0

    @property
    def has_image(self) -> bool:
        """Whether an item is open (a decoded image, or a slide)."""
        return self.image is not None or self.fields is not None

    @property
    def decoded_in_browser(self) -> bool:
        """Whether the page decoded the masks it shows (`BrowserDecoding.record` sets both
        sides at once: their scores and shown candidates, no masks here)."""
        return self.sam is not None and self.sam.decoded_in == "browser"

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the open item at full resolution (a slide's level 0)."""
        if self.fields is not None:
            return self.fields.size
        return (int(self.image.shape[1]), int(self.image.shape[0]))
    decoder: Optional[DecoderNote] = None  # which decoder made the masks shown (None before any)

    def side(self, name: str) -> Optional[SideResult]:
        """The result of a side, by key or label ("sam"/"SAM", "basam"/"BA-SAM")."""
        try:
            return self.sam if side_key(name) == "sam" else self.basam
        except ValueError as exc:
            raise AppError(str(exc)) from None
