"""The events both pages share, without their layouts: opening an image, encoding both sides,
prompting and decoding, and what the canvas and the status line show. No Gradio here: the
pages wire these to components, and the tests call them directly.

Every event takes the engine, the session and the event's inputs and returns a new
`Session`. Opening an image is two events: `upload_image` (read the file, show it) then
`compute` (encode), so a failed encoding still leaves the image on the page.

Reuse: an embedding depends on (image, model, size S, setting), and the engine's one
`EmbeddingCache` is shared by every session. The SAM side always uses the vanilla setting,
so changing NSF, BM-AM or beta only encodes the BA-SAM side, and a prompt never encodes.

A click the page decoded in the browser (browser_decode.py) reaches `set_prompts` with its
record: the prompts are stored and nothing is decoded; `server_masks` decodes them here when
a commit or an export needs the masks at full resolution.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ...basam.config import BASAMConfig
from ...prompts import PromptError, Prompts
from ...vocabulary import SIDE_LABELS, SIDES
from . import fields, render, windows
from .text import literal
from .engine import AppEngine
from .session import (
    DISPLAY_MAX_SIDE, AppError, DecoderNote, Progress, Session, SideResult, Settings, no_progress, parse_size,
)  # fmt: skip

def compute(
    engine: AppEngine, session: Session, settings: Settings, progress: Progress = no_progress,
    cancel: Optional[threading.Event] = None,
    why: str = "the settings changed: the masks were decoded again here",
) -> Session:
    """Both sides for the session's image (a slide's field), prompts and ground truth under
    `settings`: the handler after an upload and for every settings change. Embeddings come
    from the cache when they are there; masks are decoded (here) when there are prompts, and
    the status line says why the browser did not decode them (`why` when nothing else says
    it). An encode reports its progress block by block and stops at the next block once
    `cancel` is set (raising AppError)."""
    from ...encode_watch import EncodeCancelled, EncodeWatch, watching

    session = fields.place(session, None, settings, engine.max_size)
    if not session.has_image or (session.fields is not None and session.field is None):
        return replace(session, settings=settings)
    segmenter = engine.segmenter(settings.model, progress)
    resolution = parse_size(settings.size, engine.max_size)
    configs = {"sam": BASAMConfig.vanilla(), "basam": settings.basam_config}
    sides = [(SIDE_LABELS[key], configs[key], session.side(key)) for key in SIDES]
    # the same model, size and setting as the last result: its embedding is cached
    cached = [
        previous is not None and session.settings is not None and previous.config == config
        and (session.settings.model, session.settings.size) == (settings.model, settings.size)
        for _, config, previous in sides
    ]

    image, content_key, original_size = fields.model_input(session)
    prompts = fields.field_prompts(session.prompts, session.field)

    def run(config: BASAMConfig) -> SideResult:
        return engine.run_side(segmenter, image, resolution, config, prompts, settings.multimask, session.gt,
                               content_key=content_key, original_size=original_size)  # fmt: skip

    if all(cached):  # a prompt: decode both sides at once, each on its own thread
        progress(0.5, "decoding…")
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode") as pool:
            results = list(pool.map(run, [config for _, config, _ in sides]))
    else:  # one encoding at a time: two would only split the same cores and memory
        results = []
        for fraction, (name, config, _), hit in zip((0.1, 0.55), sides, cached):
            text = f"{'decoding' if hit else 'encoding'} {name}…"
            progress(fraction, text)
            watch = EncodeWatch(lambda done, f=fraction, t=text: progress(f + 0.45 * done, t), cancel)
            try:
                with watching(watch):
                    results.append(run(config))
            except EncodeCancelled:
                raise AppError("encode cancelled: nothing was kept; click again (or change the view) to start over") from None
    session = replace(session, settings=settings, **dict(zip(SIDES, results)))
    note = engine.browser.server_note(session, why=why) if not session.prompts.empty else None
    return replace(session, decoder=note)


def server_masks(engine: AppEngine, session: Session, why: str = "the masks at full resolution") -> Session:
    """`session` with masks decoded here when the browser decoded its prompts (a commit and an
    export need them at full resolution), each side keeping the candidate the page showed;
    the session itself otherwise."""
    if not session.has_image or session.settings is None or session.prompts.empty:
        return session
    if not session.decoded_in_browser:
        return session
    shown = {side: session.side(side).choice for side in SIDES}
    decoded = compute(engine, session, session.settings, why=why)
    return replace(decoded, **{side: _with_choice(decoded.side(side), shown[side]) for side in SIDES})


def _with_choice(result: SideResult, choice: int) -> SideResult:
    return replace(result, choice=choice) if result.masks is not None and 0 <= choice < len(result.masks) else result


def canvas_value(image: Optional[Mapping[str, Any]], negative: bool = False) -> Optional[dict]:
    """A fresh PromptCanvas value for a session's `canvas_image`, no prompts."""
    if image is None:
        return None
    return {"image": dict(image), "points": [], "boxes": [], "negative": bool(negative), "rev": 0}


# -- event handlers ---------------------------------------------------------------------


def read_image(engine: AppEngine, path: str) -> np.ndarray:
    """The image at `path` (an upload or a project's file) at full resolution; AppError naming
    the file as its user calls it (Gradio keeps an upload's own name) when it can't be read."""
    from ...image_io import load_image

    shown = Path(path).name
    try:
        return load_image(path, max_pixels=engine.max_pixels)
    except ValueError as exc:  # ImageReadError, ImageTooLargeError
        raise AppError(_with_name(str(exc), path, shown)) from None
    except OSError as exc:
        raise AppError(f"could not read {shown}: {exc.strerror or exc}") from None


def upload_image(
    engine: AppEngine, path: Optional[str], *, api: bool = False, frame: int = 0, window: Optional[str] = None,
    keep_view: bool = False, tiles_url: Optional[str] = None,
) -> Session:
    """Upload: a new session (no prompts, ground truth or results) for the file at `path` (the
    server-side upload): the image at full resolution (frame `frame` of a multi-frame file,
    under display window `window`, a key; None: the file's default) and, unless `api`, its
    display copy for the canvas (`keep_view`: the canvas keeps its zoom, for a new window of the
    same image). With `tiles_url`, an image over fields.PHOTO_TILE_PIXELS is shown in tiles
    (served there) instead of a full-resolution copy. `compute` then encodes it. A bad file
    raises AppError (the old session stays)."""
    if not path:
        return Session()
    shown = Path(path).name
    image, item = windows.read_item(engine, path, frame, window)
    if api:
        return Session(folder=engine.new_folder("api"), image=image, image_path=str(path), image_name=shown, **item)
    display = render.downscale(image, DISPLAY_MAX_SIDE)
    folder = engine.new_folder()
    copy = render.save_jpeg(display, folder / "display.jpg")
    full = folder / "full.png"
    height, width = image.shape[:2]
    canvas_image: dict = {"url": f"gradio_api/file={copy}", "width": int(width), "height": int(height)}
    if tiles_url is not None and fields.tiled(width, height, False):
        from .tiles import tiles_value

        canvas_image["tiles"] = tiles_value((width, height), tiles_url)
    elif display.shape == image.shape:
        canvas_image["full"] = f"gradio_api/file={copy}"  # the display copy is the image itself
    else:  # written in the background: the browser asks for it only when zoomed in
        threading.Thread(target=_write_full_copy, args=(image, full), name="full-copy", daemon=True).start()
        canvas_image["full"] = f"gradio_api/file={full}"
    session = Session(
        folder=folder, image=image, image_path=str(path), image_name=shown, display=display, canvas_image=canvas_image,
        **item,
    )
    window_for_canvas = windows.canvas_window(session)
    if window_for_canvas is not None or keep_view:
        canvas_image.update(window=window_for_canvas, keep_view=keep_view)
    return session


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
    progress: Progress = no_progress, cancel: Optional[threading.Event] = None,
) -> Session:
    """A prompt was added on the canvas (or undone, or cleared): decode both sides again (a
    slide: in the field the value asks for, `fields.place`), unless the page decoded them
    itself (its record in the value holds: they are stored, not decoded). The session keeps
    the value's "rev", which the masks sent back carry."""
    if not session.has_image or not canvas or not _same_image(session, canvas):
        return session  # an event from before the current upload
    if engine.browser.pending(canvas):
        return session  # the page decodes these prompts; its record comes in the next event
    prompts = canvas_prompts(canvas)
    rev = canvas.get("rev")
    rev = rev if isinstance(rev, int) and not isinstance(rev, bool) else 0
    session = fields.place(replace(session, prompts=prompts, rev=rev), canvas, settings, engine.max_size)
    run = None if prompts.empty else engine.browser.claim(session, canvas, settings)
    if run is not None:
        return engine.browser.record(session, run)
    session = compute(engine, session, settings, progress, cancel)
    return replace(session, decoder=engine.browser.server_note(session, canvas)) if session.decoder else session


def canvas_prompts(canvas: Optional[Mapping[str, Any]]) -> Prompts:
    """The prompts of a canvas value (`Prompts.from_canvas`), malformed ones as AppError."""
    try:
        return Prompts.from_canvas(canvas)
    except PromptError as exc:
        raise AppError(str(exc)) from None


def _same_image(session: Session, canvas: Mapping[str, Any]) -> bool:
    shown = canvas.get("image") or {}
    return bool(session.canvas_image) and shown.get("url") == session.canvas_image["url"]


def export_metadata(engine: AppEngine, session: Session, result: SideResult) -> dict:
    """export.export_metadata for one side's result."""
    from ... import mask_formats as export
    from ...models import model_info

    assert session.settings is not None
    info = model_info(engine.segmenter(session.settings.model).sam)
    return export.export_metadata(
        info.model_type, info.sha256, result.size, result.config.nsf, result.config.bmam,
        result.config.beta, session.prompts.record(), precision=result.precision,
    )


# -- what the pages show --------------------------------------------------------------


def mask_iou(session: Session) -> Optional[float]:
    """IoU between the two shown masks (None before the first prompt)."""
    from ... import metrics

    if session.sam is None or session.basam is None:
        return None
    if session.decoded_in_browser:  # as the browser measured it
        return session.decoder.iou if session.decoder is not None else None
    if session.sam.mask is None or session.basam.mask is None:
        return None
    return metrics.iou(session.sam.mask, session.basam.mask)


def masks_for_canvas(session: Session) -> Optional[dict]:
    """The canvas's `masks` prop: both shown masks at full resolution in one 4-bit PNG (see
    canvas.py), with the prompt revision and image they belong to ("png" None before the
    first prompt); None without an image."""
    if session.canvas_image is None:
        return None
    shown = {"url": session.canvas_image["url"], "rev": session.rev, "png": None}
    if session.field is not None:  # a slide's masks lie on their field
        shown["field"] = fields.field_rectangle(session.field)
    sam, basam = session.sam, session.basam
    if session.decoded_in_browser and basam is not None:  # drawn there
        return {**shown, "browser": {"sam": sam.choice, "basam": basam.choice}}
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
    if result.decoded_in == "browser":
        return (f"**{name}** ({setting_label(result.config)}, S={result.size}): decoded in the browser in "
                f"{result.decode_seconds * 1000:.0f} ms · {result.precision}")
    encode = (
        f"encoded in {result.encode_seconds:.2f} s (cache miss)"
        if result.source == "computed"
        else f"embedding from the cache ({result.source}, hit)"
    )
    line = f"**{name}** ({setting_label(result.config)}, S={result.size}): {encode}"
    if result.masks is not None:
        line += f"; decoded in {result.decode_seconds * 1000:.0f} ms"
    return line + f" · {result.precision}"


def decoder_line(note: DecoderNote) -> str:
    """'Decoder: browser, 41 ms' or 'Decoder: server: <why>' (the page's own words go through
    `literal`)."""
    if note.where == "browser":
        return f"Decoder: **browser**, {note.ms:.0f} ms" if note.ms is not None else "Decoder: **browser**"
    return f"Decoder: **server**: {literal(note.why)}" if note.why else "Decoder: **server**"


def status_text(session: Session) -> str:
    """IoU between the masks, per-side timings and cache use, ground-truth metrics."""
    if session.sam is None or session.basam is None:
        return f"{literal(session.image_name)}: {session.image_size[0]}x{session.image_size[1]}" if session.has_image else ""
    w, h = session.image_size
    lines = []
    iou = mask_iou(session)
    note = session.decoder
    if session.prompts.empty or (iou is None and note is None):
        lines.append(f"{literal(session.image_name)} ({w}x{h}): click the image to add a point, drag for a box.")
    elif iou is None:
        lines.append("**IoU between SAM and BA-SAM masks**: not measured")
    elif note is not None and note.where == "browser":
        grid = f", on a {note.grid[0]}x{note.grid[1]} grid of the image" if note.grid else ""
        lines.append(f"**IoU between SAM and BA-SAM masks: {iou:.4f}** (measured in the browser{grid})")
    else:
        lines.append(f"**IoU between SAM and BA-SAM masks: {iou:.4f}**")
    lines += [_side_line(SIDE_LABELS[key], session.side(key)) for key in SIDES]
    facts = windows.facts_line(session)
    if facts:
        lines.append(literal(facts))
    if note is not None and not session.prompts.empty:
        lines.append(decoder_line(note))
    if session.gt is not None:
        if iou is None:
            lines.append(f"Ground truth {literal(session.gt_name)} loaded: metrics appear after the first prompt.")
        else:
            parts = []
            for name, result in ((SIDE_LABELS[key], session.side(key)) for key in SIDES):
                k = result.choice
                parts.append(f"{name}: MAE {result.gt_mae[k]:.4f}, IoU {result.gt_iou[k]:.4f}")
            lines.append(f"Against ground truth {literal(session.gt_name)} — " + " · ".join(parts) + " (MAE: lower is better)")
    if len(session.prompts.boxes) > 1:
        lines.append("SAM takes one box per prediction: the last box drawn is used, with all points.")
    return "  \n".join(lines)


