"""The compare page's own events, beside the shared ones (`common/events.py`): picking a
candidate, a ground-truth mask, the mask download, and what the page shows around the canvas.
No Gradio here: `page.py` wires these to components, and the tests call them directly."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...vocabulary import MASK_FORMAT_LABELS, MASK_FORMATS, side_key
from ..common.engine import AppEngine
from ..common.events import export_metadata, masks_for_canvas, read_image, status_text
from ..common.session import AppError, Session, SideResult

# the download's format radio: label -> format
EXPORT_CHOICES = {MASK_FORMAT_LABELS[fmt]: fmt for fmt in MASK_FORMATS}


def pick_candidate(session: Session, side: str, index: Any) -> Session:
    """Show candidate `index` of one side's masks (multimask output; drawn by the browser when
    it decoded them)."""
    result = session.side(side)
    if result is None or result.scores is None:
        return session
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise AppError(f"candidate must be a number, got {index!r}") from None
    if not 0 <= index < len(result.scores):
        raise AppError(f"{side} has {len(result.scores)} candidates, got candidate {index + 1}")
    picked = replace(result, choice=index)
    return replace(session, **{side_key(side): picked})


def read_ground_truth(engine: AppEngine, path: str, image_hw: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask file -> H x W bool (pixels brighter than half the file's maximum).
    It must have the image's size."""
    shown = Path(path).name
    pixels = read_image(engine, path).max(axis=2)
    if pixels.shape != tuple(image_hw):
        raise AppError(
            f"the ground-truth mask {shown} is {pixels.shape[1]}x{pixels.shape[0]} but the image is "
            f"{image_hw[1]}x{image_hw[0]}: it must have the same size"
        )
    return pixels > pixels.max() / 2 if pixels.max() > 0 else np.zeros(pixels.shape, dtype=bool)


def set_ground_truth(engine: AppEngine, session: Session, path: Optional[str]) -> Session:
    """Ground-truth upload (None removes it). `compute` then adds MAE and IoU of every
    candidate against it (a decode; the embeddings are cached)."""
    if not path:
        return replace(session, gt=None, gt_name="")
    if session.image is None:
        raise AppError("upload an image first, then its ground-truth mask")
    gt = read_ground_truth(engine, path, session.image.shape[:2])
    return replace(session, gt=gt, gt_name=Path(path).name)


def export_mask_file(engine: AppEngine, session: Session, side: str, fmt: str) -> Optional[Path]:
    """The selected mask of `side` at full resolution as a file ("png", "rle" or
    "polygons", or their labels in EXPORT_CHOICES), with how it was made; None without a mask."""
    from ... import mask_formats

    fmt = EXPORT_CHOICES.get(fmt, fmt)
    if fmt not in MASK_FORMATS:
        raise AppError(f"export format must be one of {', '.join(EXPORT_CHOICES)}, got {fmt!r}")
    result = session.side(side)
    if result is None or result.mask is None or session.settings is None:
        return None
    stem = f"{Path(session.image_name).stem or 'image'}-{side_key(side)}-{result.size}"
    out_dir = session.folder / "export"
    shutil.rmtree(out_dir, ignore_errors=True)  # one export per session on disk at a time
    return mask_formats.export_mask(result.mask, out_dir, stem, export_metadata(engine, session, result), [fmt])[0]


# -- what the page shows ----------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """Everything the page shows for a session: the canvas's masks (`masks_for_canvas`),
    candidate choices as (label, index) pairs, and the status text (Markdown)."""

    masks: Optional[dict]
    sam_candidates: list[tuple[str, int]]
    basam_candidates: list[tuple[str, int]]
    sam_choice: Optional[int]
    basam_choice: Optional[int]
    status: str


def candidates(result: Optional[SideResult]) -> list[tuple[str, int]]:
    """Radio choices for a multimask result: "#1 · IoU 0.93" (predicted IoU), best marked."""
    if result is None or result.scores is None or len(result.scores) < 2:
        return []
    best = int(np.argmax(result.scores))
    return [
        (f"#{k + 1} · predicted IoU {score:.3f}{' (best)' if k == best else ''}", k)
        for k, score in enumerate(result.scores)
    ]


def view(session: Session) -> View:
    """What the page shows for `session`: the candidates, the status line and the masks for
    the canvas (`masks_for_canvas`)."""
    if session.image is None or session.display is None:
        return View(None, [], [], None, None, "Upload an image to start.")
    return View(
        masks_for_canvas(session),
        candidates(session.sam), candidates(session.basam),
        session.sam.choice if session.sam and session.sam.scores is not None else None,
        session.basam.choice if session.basam and session.basam.scores is not None else None,
        status_text(session),
    )


