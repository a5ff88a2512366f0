"""Changing what the pages show of an image: the same file read again under another display
window (the prompts kept; both sides are then encoded again) or at another frame of a
multi-frame file (a new image: no prompts). No Gradio here; see windows.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from . import events
from .engine import AppEngine
from .session import AppError, Session


def reread(engine: AppEngine, session: Session, *, window: Optional[str] = None, frame: Optional[int] = None) -> Session:
    """The session's image read again under `window` (a key) or at `frame` (0-based), as a new
    session: a new display copy for the canvas (same size: the canvas keeps its view for a new
    window), the prompts and ground truth kept for a new window (dropped for a new frame), no
    results (`compute` then encodes both sides). AppError when the window or frame can't be used."""
    if session.image_path is None or session.image is None:
        raise AppError("open an image first")
    if frame is not None:
        window = session.window["key"] if session.window else None
        try:
            fresh = events.upload_image(engine, session.image_path, frame=frame, window=window)
        except AppError:  # that window is not one this frame can take (a VOI LUT it lacks)
            fresh = events.upload_image(engine, session.image_path, frame=frame)
        fresh = replace(fresh, image_name=session.image_name)
    else:
        fresh = events.upload_image(engine, session.image_path, frame=session.frame, window=window, keep_view=True)
        fresh = replace(fresh, image_name=session.image_name, prompts=session.prompts, gt=session.gt,
                        gt_name=session.gt_name)
    engine.forget(session)  # the old display copies
    return fresh


def canvas_value_for(session: Session, negative: bool = False) -> Optional[dict]:
    """The canvas value after a re-read: the new image with the session's prompts."""
    value = events.canvas_value(session.canvas_image, negative)
    return None if value is None else {**value, **session.prompts.canvas_items()}
