"""Display windows and frames in both pages, without their layouts' Gradio wiring: reading an
item under a window (and a frame), what the window control offers and shows, which window a
control or the canvas's drag asks for, and the canvas's part of it (`window_drag.js`: hold W
and drag). Changing the window is `window_events.reread`: the image is read again and both
sides encoded again (the embedding cache is keyed by the windowed pixels, so each window has
its own embeddings).

Images whose source has no windows (photos, colour DICOM) show no window control; nothing here
asks which kind an image is (`ImageSource.windows`, `window_record`, `inverted`, `frames`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ...sources.base import public_provenance
from .engine import AppEngine
from .session import AppError, Session

HERE = Path(__file__).resolve().parent
DRAG_SCRIPT = HERE / "window_drag.js"  # the canvas extension: hold W and drag
CUSTOM = "custom"  # the window control's value for a typed or dragged window
CUSTOM_LABEL = "typed / dragged"
DRAG_HELP = (
    "**Window** (monochrome DICOM): pick one of the file's windows, *auto* (0.5–99.5 percentiles) or "
    "*full range*, type a level and width (Enter or Apply), or **hold W and drag on the image**: right "
    "widens, left narrows; down raises the level, up lowers it (the image previews while you drag; "
    "releasing applies it). The model sees the windowed image, so a new window encodes both sides again: "
    "seconds at S = 1024, minutes at S = 2048 and above on a CPU."
)
FACT_KEYS = ("modality", "pixel_spacing_mm", "pixel_spacing_source")  # what the status line shows


def read_item(
    engine: AppEngine, path: str, frame: int = 0, window: Optional[str] = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The item at `path` (frame `frame`, 0-based) under `window` (a `Window` key; None: the
    file's default) at full resolution, and the Session fields that describe it: "frame",
    "frames", "windows" ((label, key) pairs), "window" (its record, resolved) and "facts" (the
    source's provenance without its identifying part). AppError naming the file as its user
    calls it when it can't be read, or has no such frame or window."""
    from ...sources import open_source

    shown = Path(path).name
    try:
        with open_source(path, max_pixels=engine.max_pixels, frame=int(frame)) as source:
            source = source.with_window(window) if window is not None else source
            image = source.read()
            record = source.window_record()
            fields = {
                "frame": source.frame, "frames": source.frames,
                "windows": tuple((w.label(), w.key()) for w in source.windows),
                "window": record, "facts": {**public_provenance(source.provenance()), "inverted": source.inverted},
            }
    except ValueError as exc:  # ImageReadError, ImageTooLargeError, a window the file can't take
        raise AppError(str(exc).replace(str(path), shown)) from None
    except OSError as exc:
        raise AppError(f"could not read {shown}: {exc.strerror or exc}") from None
    return image, fields


def canvas_window(session: Session) -> Optional[dict]:
    """What the canvas's drag needs of the session's window: {"center", "width", "inverted",
    "label"} (None when the image has no window, or one without a centre and width: a VOI LUT)."""
    window = session.window
    if not session.windows or not window or window.get("center") is None or window.get("width") is None:
        return None
    return {"center": window["center"], "width": window["width"], "inverted": bool((session.facts or {}).get("inverted")),
            "label": window_label(window)}


def window_label(record: Optional[Mapping[str, Any]]) -> str:
    """A window record as the page shows it: "STANDARD (C 30000, W 40000)", "auto (C …, W …)"."""
    if not record:
        return ""
    values = (f"C {record['center']:.6g}, W {record['width']:.6g}"
              if record.get("center") is not None and record.get("width") is not None else "")
    name = record.get("name") or ""
    if name and values:
        return f"{name} ({values})"
    return name or values or record.get("key", "")


def control_value(session: Session) -> Optional[str]:
    """The window control's value for the session: the key of the file's window it shows, or
    CUSTOM for a typed or dragged one (None without windows)."""
    if not session.windows or not session.window:
        return None
    keys = [key for _, key in session.windows]
    return session.window["key"] if session.window["key"] in keys else CUSTOM


def control_choices(session: Session) -> list[tuple[str, str]]:
    """The window control's choices: the file's windows, auto, full range, then CUSTOM."""
    return [*session.windows, (CUSTOM_LABEL, CUSTOM)] if session.windows else []


def requested_window(choice: Optional[str], level: Any, width: Any) -> str:
    """The window key the control asks for: a preset's key, or for CUSTOM the typed level
    (centre) and width as a LINEAR window. AppError for a width under 1 or numbers missing."""
    from ...sources import Window

    if choice and choice != CUSTOM:
        return str(choice)
    try:
        return Window(float(level), float(width), "LINEAR").key()
    except (TypeError, ValueError) as exc:
        reason = str(exc) if "window" in str(exc) else "type a level and a width"
        raise AppError(f"window: {reason}") from None


def dragged_window(canvas: Optional[Mapping[str, Any]]) -> str:
    """The window key the canvas's drag asks for (its value's "window_request": {"center",
    "width"}, sent by window_drag.js). AppError when it is malformed."""
    request = (canvas or {}).get("window_request") or {}
    if not isinstance(request, Mapping):
        raise AppError("the window sent by the page is malformed")
    return requested_window(CUSTOM, request.get("center"), request.get("width"))


def facts_line(session: Session) -> str:
    """The status line's facts of a windowed or measured image: frame, window, modality, pixel
    spacing ("" when there is nothing to say)."""
    parts = []
    if session.frames > 1:
        parts.append(f"frame {session.frame + 1} of {session.frames}")
    if session.window:
        parts.append(f"window {window_label(session.window)} (hold W and drag to change it)")
    facts = {k: (session.facts or {}).get(k) for k in FACT_KEYS}
    if facts["modality"]:
        parts.append(f"modality {facts['modality']}")
    if facts["pixel_spacing_mm"]:
        row, column = facts["pixel_spacing_mm"]
        parts.append(f"pixel {row:.4g} × {column:.4g} mm ({facts['pixel_spacing_source']})")
    return " · ".join(parts)
