"""The /segment API function: one image file and prompts in, both masks out. No Gradio here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from ...prompts import PromptError, Prompts
from ...vocabulary import DEFAULT_BETA, DEFAULT_SIZE, SIDES, Resolution
from ..common.engine import AppEngine
from ..common.events import compute, export_metadata, mask_iou, upload_image
from ..common.session import AppError, Progress, Session, SideResult, Settings, no_progress

API_FILES_MAX_AGE_S = 3600.0


def segment(
    engine: AppEngine,
    image_path: str,
    points: Any = "",
    box: Any = "",
    size: Resolution = DEFAULT_SIZE,
    nsf: bool = True,
    bmam: bool = True,
    beta: float = DEFAULT_BETA,
    multimask: bool = False,
    model: Optional[str] = None,
    progress: Progress = no_progress,
    window: str = "",
    frame: Any = 1,
) -> tuple[Path, Path, dict]:
    """The API: one image file (a photo, or a DICOM file with or without extension) and prompts
    in, the SAM and BA-SAM masks (full-resolution PNGs with metadata) and an info dict out.
    Points outside the image are clipped to its border by the Segmenter; with multimask, each
    side returns its best-scored candidate. `window`: a display window for a monochrome DICOM
    ("linear:CENTRE:WIDTH", "auto", "full", a preset's key; "": the file's first); `frame`: the
    1-based frame of a multi-frame DICOM."""
    try:
        prompts = Prompts.from_api(points, box)
    except PromptError as exc:
        raise AppError(str(exc)) from None
    if prompts.empty:
        raise AppError("give at least one point or a box")
    settings = Settings(model or engine.default_model, size, bool(nsf), bool(bmam), float(beta), bool(multimask))
    try:
        frame_index = int(frame if frame not in (None, "") else 1) - 1
    except (TypeError, ValueError):
        raise AppError(f"frame must be a frame number (1, 2, ...), got {frame!r}") from None
    engine.prune("api", API_FILES_MAX_AGE_S)
    session = upload_image(engine, image_path, api=True, frame=frame_index, window=str(window or "").strip() or None)
    session = replace(session, prompts=prompts)
    session = compute(engine, session, settings, progress)
    files = [_api_mask_file(engine, session, side) for side in SIDES]
    info = {
        "image_size": [int(session.image.shape[1]), int(session.image.shape[0])],
        "model": settings.model,
        "input_size": session.sam.size,
        "iou_sam_basam": mask_iou(session),
        "frame": session.frame + 1,
        "window": session.window,
        "sam": _side_info(session.sam),
        "basam": _side_info(session.basam),
    }
    return files[0], files[1], info


def _api_mask_file(engine: AppEngine, session: Session, side: str) -> Path:
    """A side's ("sam", "basam") mask as a PNG with metadata, under the call's own folder (which the next
    export in it would replace, so each side gets a file of its own)."""
    from ... import mask_formats

    result = session.side(side)
    stem = f"{Path(session.image_name).stem or 'image'}-{side}-{result.size}"
    metadata = export_metadata(engine, session, result)
    return mask_formats.export_mask(result.mask, session.folder / side, stem, metadata, ["png"])[0]


def _side_info(result: SideResult) -> dict:
    return {
        "setting": {"nsf": result.config.nsf, "bmam": result.config.bmam, "beta": result.config.beta},
        "encode_seconds": round(result.encode_seconds, 4),
        "cache": result.source,
        "precision": result.precision,
        "decode_seconds": round(result.decode_seconds, 4),
        "predicted_iou": float(result.scores[result.choice]),
        "area": int(result.mask.sum()),
    }

