"""The compare page's events, without its layout: one function per page event. No Gradio
here: `compare_page.py` wires these to components, and the tests call them directly.

Every event takes the engine, the session and the event's inputs and returns a new
`Session`. An upload is two events: `upload_image` (read the file, show it) then `compute`
(encode), so a failed encoding still leaves the image on the page.

Reuse: an embedding depends on (image, model, size S, setting), and the engine's one
`EmbeddingCache` is shared by every session. The SAM side always uses the vanilla setting,
so changing NSF, BM-AM or beta only encodes the BA-SAM side, and a prompt never encodes.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ..basam.config import BASAMConfig
from . import render
from .engine import AppEngine
from .session import (
    DISPLAY_MAX_SIDE, EXPORT_FORMATS, AppError, Progress, Session, SideResult, Settings, no_progress, parse_size,
    prompts_from_canvas,
)

def compute(engine: AppEngine, session: Session, settings: Settings, progress: Progress = no_progress) -> Session:
    """Both sides for the session's image, prompts and ground truth under `settings`: the
    handler after an upload and for every settings change. Embeddings come from the cache
    when they are there; masks are decoded when there are prompts."""
    if session.image is None:
        return replace(session, settings=settings)
    segmenter = engine.segmenter(settings.model, progress)
    resolution = parse_size(settings.size, engine.max_size)
    sides = (("SAM", BASAMConfig.vanilla(), session.sam), ("BA-SAM", settings.basam_config, session.basam))
    # the same model, size and setting as the last result: its embedding is cached
    cached = [
        previous is not None and session.settings is not None and previous.config == config
        and (session.settings.model, session.settings.size) == (settings.model, settings.size)
        for _, config, previous in sides
    ]

    def run(config: BASAMConfig) -> SideResult:
        return engine.run_side(segmenter, session.image, resolution, config, session.prompts, settings.multimask, session.gt)

    if all(cached):  # a prompt: decode both sides at once, each on its own thread
        progress(0.5, "decoding…")
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode") as pool:
            results = list(pool.map(run, [config for _, config, _ in sides]))
    else:  # one encoding at a time: two would only split the same cores and memory
        results = []
        for fraction, (name, config, _), hit in zip((0.1, 0.55), sides, cached):
            progress(fraction, f"{'decoding' if hit else 'encoding'} {name}…")
            results.append(run(config))
    return replace(session, settings=settings, sam=results[0], basam=results[1])


def canvas_value(image: Optional[Mapping[str, Any]], negative: bool = False) -> Optional[dict]:
    """A fresh PromptCanvas value for a session's `canvas_image`, no prompts."""
    if image is None:
        return None
    return {"image": dict(image), "points": [], "boxes": [], "negative": bool(negative), "rev": 0}


# -- event handlers ---------------------------------------------------------------------


def upload_image(engine: AppEngine, path: Optional[str], *, api: bool = False) -> Session:
    """Upload: a new session (no prompts, ground truth or results) for the file at `path` (the
    server-side upload): the image at full resolution and, unless `api`, its display copy for
    the canvas. `compute` then encodes it. A bad file raises AppError (the old session stays)."""
    from ..image_io import load_image

    if not path:
        return Session()
    shown = Path(path).name  # Gradio keeps the uploaded file's own name
    try:
        image = load_image(path, max_pixels=engine.max_pixels)
    except ValueError as exc:  # ImageReadError, ImageTooLargeError
        raise AppError(_with_name(str(exc), path, shown)) from None
    except OSError as exc:
        raise AppError(f"could not read {shown}: {exc.strerror or exc}") from None
    if api:
        return Session(folder=engine.new_folder("api"), image=image, image_path=str(path), image_name=shown)
    display = render.downscale(image, DISPLAY_MAX_SIDE)
    folder = engine.new_folder()
    copy = render.save_jpeg(display, folder / "display.jpg")
    full = folder / "full.png"
    if display.shape == image.shape:
        full = copy  # the display copy is the image itself: nothing more to load
    else:  # written in the background: the browser asks for it only when zoomed in
        threading.Thread(target=_write_full_copy, args=(image, full), name="full-copy", daemon=True).start()
    canvas_image = {
        "url": f"gradio_api/file={copy}", "full": f"gradio_api/file={full}",
        "width": int(image.shape[1]), "height": int(image.shape[0]),
    }
    return Session(
        folder=folder, image=image, image_path=str(path), image_name=shown, display=display, canvas_image=canvas_image
    )


def _write_full_copy(image: np.ndarray, path: Path) -> None:
    """The lossless full-resolution copy the canvas loads when zoomed past the display copy."""
    try:
        render.save_png_atomically(image, path)
    except OSError:  # the session's folder was removed meanwhile (a new upload, a closed tab)
        pass


def _with_name(message: str, path: str, name: str) -> str:
    """Error messages name the file as the user called it, not Gradio's temporary path."""
    return message.replace(str(path), name)


def set_prompts(
    engine: AppEngine, session: Session, canvas: Optional[Mapping[str, Any]], settings: Settings,
    progress: Progress = no_progress,
) -> Session:
    """A prompt was added on the canvas (or undone, or cleared): decode both sides again.
    The session keeps the value's "rev", which the masks sent back carry."""
    if session.image is None or not canvas or not _same_image(session, canvas):
        return session  # an event from before the current upload
    prompts = prompts_from_canvas(canvas)
    rev = canvas.get("rev")
    rev = rev if isinstance(rev, int) and not isinstance(rev, bool) else 0
    return compute(engine, replace(session, prompts=prompts, rev=rev), settings, progress)


def _same_image(session: Session, canvas: Mapping[str, Any]) -> bool:
    shown = canvas.get("image") or {}
    return bool(session.canvas_image) and shown.get("url") == session.canvas_image["url"]


def pick_candidate(session: Session, side: str, index: Any) -> Session:
    """Show candidate `index` of one side's masks (multimask output)."""
    result = session.side(side)
    if result is None or result.masks is None:
        return session
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise AppError(f"candidate must be a number, got {index!r}") from None
    if not 0 <= index < len(result.masks):
        raise AppError(f"{side} has {len(result.masks)} candidates, got candidate {index + 1}")
    picked = replace(result, choice=index)
    return replace(session, sam=picked) if side == "SAM" else replace(session, basam=picked)


def read_ground_truth(engine: AppEngine, path: str, image_hw: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask file -> H x W bool (pixels brighter than half the file's maximum).
    It must have the image's size."""
    from ..image_io import load_image

    shown = Path(path).name
    try:
        pixels = load_image(path, max_pixels=engine.max_pixels).max(axis=2)
    except ValueError as exc:
        raise AppError(_with_name(str(exc), path, shown)) from None
    except OSError as exc:
        raise AppError(f"could not read {shown}: {exc.strerror or exc}") from None
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
    "polygons", or their labels in EXPORT_FORMATS), with how it was made; None without a mask."""
    from .. import mask_formats as export

    fmt = EXPORT_FORMATS.get(fmt, fmt)
    if fmt not in export.EXPORT_FORMATS:
        raise AppError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    result = session.side(side)
    if result is None or result.mask is None or session.settings is None:
        return None
    stem = f"{Path(session.image_name).stem or 'image'}-{'sam' if side == 'SAM' else 'basam'}-{result.size}"
    out_dir = session.folder / "export"
    shutil.rmtree(out_dir, ignore_errors=True)  # one export per session on disk at a time
    return export.export_mask(result.mask, out_dir, stem, export_metadata(engine, session, result), [fmt])[0]


def export_metadata(engine: AppEngine, session: Session, result: SideResult) -> dict:
    """export.export_metadata for one side's result."""
    from .. import mask_formats as export
    from ..models import model_info

    assert session.settings is not None
    info = model_info(engine.segmenter(session.settings.model).sam)
    return export.export_metadata(
        info.model_type, info.sha256, result.size, result.config.nsf, result.config.bmam,
        result.config.beta, session.prompts.for_export(), precision=result.precision,
    )


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
    if result is None or result.masks is None or len(result.masks) < 2:
        return []
    best = int(np.argmax(result.scores))
    return [
        (f"#{k + 1} · predicted IoU {score:.3f}{' (best)' if k == best else ''}", k)
        for k, score in enumerate(result.scores)
    ]


def mask_iou(session: Session) -> Optional[float]:
    """IoU between the two shown masks (None before the first prompt)."""
    from .. import metrics

    if session.sam is None or session.basam is None or session.sam.mask is None or session.basam.mask is None:
        return None
    return metrics.iou(session.sam.mask, session.basam.mask)


def view(session: Session) -> View:
    """What the page shows for `session`: the candidates, the status line and the masks for
    the canvas (`masks_for_canvas`)."""
    if session.image is None or session.display is None:
        return View(None, [], [], None, None, "Upload an image to start.")
    return View(
        masks_for_canvas(session),
        candidates(session.sam), candidates(session.basam),
        session.sam.choice if session.sam and session.sam.masks is not None else None,
        session.basam.choice if session.basam and session.basam.masks is not None else None,
        status_text(session),
    )


def masks_for_canvas(session: Session) -> Optional[dict]:
    """The canvas's `masks` prop: both shown masks at full resolution in one 4-bit PNG (see
    canvas.py), with the prompt revision and image they belong to ("png" None before the
    first prompt); None without an image."""
    if session.canvas_image is None:
        return None
    shown = {"url": session.canvas_image["url"], "rev": session.rev, "png": None}
    sam, basam = session.sam, session.basam
    if sam is None or basam is None or sam.mask is None or basam.mask is None:
        return shown
    started = time.perf_counter()
    png = render.pack_masks(sam.mask, basam.mask)
    height, width = sam.mask.shape
    return {
        **shown, "png": render.data_url(png), "width": int(width), "height": int(height),
        "timings": {
            "decode_sam_ms": round(sam.decode_seconds * 1000, 2), "decode_basam_ms": round(basam.decode_seconds * 1000, 2),
            "prepare_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    }


def setting_label(config: BASAMConfig) -> str:
    """'vanilla', 'NSF', 'BM-AM β=0.1' or 'NSF + BM-AM β=0.1'."""
    parts = (["NSF"] if config.nsf else []) + ([f"BM-AM β={config.beta:g}"] if config.bmam else [])
    return " + ".join(parts) or "vanilla"


def _side_line(name: str, result: SideResult) -> str:
    encode = (
        f"encoded in {result.encode_seconds:.2f} s (cache miss)"
        if result.source == "computed"
        else f"embedding from the cache ({result.source}, hit)"
    )
    line = f"**{name}** ({setting_label(result.config)}, S={result.size}): {encode}"
    if result.masks is not None:
        line += f"; decoded in {result.decode_seconds * 1000:.0f} ms"
    return line + f" · {result.precision}"


def status_text(session: Session) -> str:
    """IoU between the masks, per-side timings and cache use, ground-truth metrics."""
    if session.sam is None or session.basam is None:
        return f"{session.image_name}: {session.image.shape[1]}x{session.image.shape[0]}" if session.image is not None else ""
    h, w = session.image.shape[:2]
    lines = []
    iou = mask_iou(session)
    if iou is None:
        lines.append(f"{session.image_name} ({w}x{h}): click the image to add a point, drag for a box.")
    else:
        lines.append(f"**IoU between SAM and BA-SAM masks: {iou:.4f}**")
    lines += [_side_line("SAM", session.sam), _side_line("BA-SAM", session.basam)]
    if session.gt is not None:
        if iou is None:
            lines.append(f"Ground truth {session.gt_name} loaded: metrics appear after the first prompt.")
        else:
            parts = []
            for name, result in (("SAM", session.sam), ("BA-SAM", session.basam)):
                k = result.choice
                parts.append(f"{name}: MAE {result.gt_mae[k]:.4f}, IoU {result.gt_iou[k]:.4f}")
            lines.append(f"Against ground truth {session.gt_name} — " + " · ".join(parts) + " (MAE: lower is better)")
    if len(session.prompts.boxes) > 1:
        lines.append("SAM takes one box per prediction: the last box drawn is used, with all points.")
    return "  \n".join(lines)


