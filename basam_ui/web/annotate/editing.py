"""The annotate page's editing events: prompts, the brush, committing an object, and the
object list's actions (select, relabel, delete, reopen, undo). Like `events.py`, no Gradio:
each takes the engine and/or the project, the session's `AnnotateState` and the event's
inputs, and returns a new `AnnotateState`; the store does the work.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Mapping, Optional

import numpy as np

from ...prompts import Prompts
from ...vocabulary import DEFAULT_SIDE, side_key
from ..common import events as common
from ..common import fields
from ..common.engine import AppEngine
from ..common.session import AppError, Progress, Session, Settings, no_progress
from .events import AnnotateState, need_image

MAX_STROKES = 500
MAX_STROKE_POINTS = 20_000

def set_prompts(
    engine: AppEngine, state: AnnotateState, canvas: Optional[Mapping[str, Any]], settings: Settings,
    progress: Progress = no_progress, cancel=None,
) -> AnnotateState:
    """The canvas's prompts changed (a slide: maybe its field too): decode both sides again."""
    session = common.set_prompts(engine, state.session, canvas, settings, progress, cancel)
    started = state.started if state.started is not None or session.prompts.empty else time.time()
    return replace(state, session=session, started=started)


def switch_side(state: AnnotateState, side: str) -> AnnotateState:
    """Which side's mask Enter commits ("basam"/"sam" or "BA-SAM"/"SAM")."""
    try:
        return replace(state, side=side_key(side))
    except ValueError as exc:
        raise AppError(str(exc)) from None


def parse_strokes(value: Optional[Mapping[str, Any]]) -> list[dict]:
    """The brush strokes in a canvas value ("strokes": [{"mode": "brush"|"erase", "size": px,
    "points": [[x, y], ...]}], original pixels), checked field by field."""
    raw = (value or {}).get("strokes") or []
    if not isinstance(raw, list) or len(raw) > MAX_STROKES:
        raise AppError("the brush strokes sent by the page are malformed")
    strokes = []
    for stroke in raw:
        try:
            mode, size, points = stroke["mode"], float(stroke["size"]), stroke["points"]
            points = [(float(x), float(y)) for x, y in points]
        except (KeyError, TypeError, ValueError):
            raise AppError("the brush strokes sent by the page are malformed") from None
        if mode not in ("brush", "erase") or not 1 <= size <= 1000 or not points or len(points) > MAX_STROKE_POINTS:
            raise AppError("the brush strokes sent by the page are malformed")
        if not all(math.isfinite(x) and math.isfinite(y) for x, y in points):
            raise AppError("the brush strokes sent by the page are malformed")
        strokes.append({"mode": mode, "size": size, "points": points})
    return strokes


def apply_strokes(mask: np.ndarray, strokes: list[dict]) -> np.ndarray:
    """Paint `strokes` on a copy of an H x W bool mask at its own resolution: a stroke of size
    n covers the pixels within an n-px-wide round-capped line through its points (pixel
    (i, j) holds the original coordinates [j, j+1) x [i, i+1)); size 1 is a 1-px line."""
    import cv2

    out = mask.astype(np.uint8)
    for stroke in strokes:
        colour = 1 if stroke["mode"] == "brush" else 0
        width = max(1, int(round(stroke["size"])))
        pts = [(int(math.floor(x)), int(math.floor(y))) for x, y in stroke["points"]]
        for p in pts:
            cv2.circle(out, p, (width - 1) // 2, colour, -1)
        for p, q in zip(pts, pts[1:]):
            cv2.line(out, p, q, colour, width)
    return out.astype(bool)


def commit(
    engine: AppEngine, project, state: AnnotateState, canvas: Optional[Mapping[str, Any]], label: str,
    settings: Settings, progress: Progress = no_progress,
) -> AnnotateState:
    """Enter: store the chosen side's mask (with the canvas's brush strokes painted on it) as an
    object of class `label`, replacing the reopened object if there is one. The prompts are
    cleared for the next object; the embeddings stay."""
    from ...models import model_info
    from ...project import ProjectError, Provenance

    need_image(state)
    if not state.annotator:
        raise AppError("type your name in the Annotator field first: every object records who made it")
    if state.mode == "review":
        raise AppError("this page is reviewing: switch the mode back to annotate to commit objects")
    session = state.session
    if canvas and common.canvas_prompts(canvas) != session.prompts:  # an answer (or the browser's record) on its way
        value = {key: item for key, item in canvas.items() if key != "decoded"}  # decoded here, from the prompts committed
        state = set_prompts(engine, state, value, settings, progress)
        session = state.session
    session = common.server_masks(engine, session, why="the commit")  # the browser drew them: full resolution here
    result = session.side(state.side)
    if result is None or result.mask is None:
        raise AppError("click the image (or draw a box) first: there is no mask to commit")
    strokes = parse_strokes(canvas)  # level-0 pixels; a slide's mask is its field's
    mask = apply_strokes(result.mask, fields.field_strokes(strokes, session.field)) if strokes else result.mask
    if not mask.any():
        raise AppError("the mask is empty: nothing to commit")
    segmenter = engine.segmenter(session.settings.model if session.settings else settings.model)
    info = model_info(segmenter.sam)
    iou = common.mask_iou(session)
    provenance = Provenance(
        side=state.side, model_type=info.model_type, checkpoint_sha256=info.sha256, input_size=result.size,
        nsf=result.config.nsf, bmam=result.config.bmam, beta=result.config.beta,
        precision=segmenter.encoder_precision,
        prompts=session.prompts.record(), brush_edits=len(strokes),
        predicted_iou=float(result.scores[result.choice]) if result.scores is not None else None,
        iou_sam_basam=iou, annotator=state.annotator,
        seconds=time.time() - state.started if state.started is not None else None,
        window=session.window,
    )
    try:
        record = project.commit_object(
            state.image_id, mask, label_name(project, label), provenance, replaces=state.reopened, holder=state.holder,
            field=session.field,
        )
    except (ProjectError, ValueError) as exc:  # ImageChangedError, a wrong size, an unknown class
        raise AppError(str(exc)) from None
    return replace(state, session=_without_prompts(session), selected=record.id, reopened=None, started=None,
                   side=DEFAULT_SIDE, note="")


def _without_prompts(session: Session) -> Session:
    """The session with no prompts and no masks (the embeddings' sources kept)."""
    def bare(result):
        return None if result is None else replace(result, masks=None, scores=None, choice=0, gt_mae=None, gt_iou=None)

    return replace(session, prompts=Prompts(), rev=0, sam=bare(session.sam), basam=bare(session.basam))


def label_name(project, label: str) -> str:
    """A class radio's value ("2 · lesion" or "lesion") -> the class name."""
    names = project.labels()
    if label in names:
        return label
    text = str(label or "").split("·", 1)[-1].strip()
    if text in names:
        return text
    raise AppError(f"pick a class first (classes: {', '.join(names)})")


def select_object(state: AnnotateState, object_id: Any) -> AnnotateState:
    """Pick an object in the list (None: none)."""
    return replace(state, selected=None if object_id in (None, "") else int(object_id))


def relabel(project, state: AnnotateState, label: str) -> AnnotateState:
    """Give the selected object the class `label`."""
    if state.selected is None:
        raise AppError("select an object first")
    try:
        project.relabel(state.selected, label_name(project, label))
    except KeyError as exc:
        raise AppError(str(exc.args[0])) from None
    return state


def delete_selected(project, state: AnnotateState) -> AnnotateState:
    """Delete the selected object."""
    if state.selected is None:
        raise AppError("select an object first")
    try:
        project.delete_object(state.selected)
    except KeyError as exc:
        raise AppError(str(exc.args[0])) from None
    return replace(state, selected=None, reopened=None if state.reopened == state.selected else state.reopened)


def reopen_selected(
    engine: AppEngine, project, state: AnnotateState, settings: Settings, progress: Progress = no_progress
) -> tuple[AnnotateState, dict]:
    """Put the selected object's prompts back on the canvas and decode them, so the next
    commit replaces it; an object without prompts (imported) is seeded from its mask: its box
    and points well inside it (`proposals.prompts_from_mask`), so one more click corrects it.
    Returns (the state, the canvas value with those prompts)."""
    need_image(state)
    if state.selected is None:
        raise AppError("select an object first")
    record = project.object(state.selected)
    stored = record.provenance.prompts
    if not stored["points"] and stored["box"] is None:  # an imported object: prompts drawn from its mask
        from ...proposals.seeds import prompts_from_mask

        stored = prompts_from_mask(record.mask())
    prompts = Prompts.from_record(stored)
    value = {**fresh_value(state), **prompts.canvas_items(), "rev": 1}
    if record.field is not None:  # its field again (made at the page's S), shown on the canvas
        view = {k: getattr(record.field, k) for k in ("x", "y", "width", "height")}
        value.update(field_rev=state.session.field_rev + 1, field_view=view, focus=view)
    side = record.provenance.side or DEFAULT_SIDE  # an imported object was made by neither side
    state = set_prompts(engine, replace(state, reopened=record.id, side=side), value, settings, progress)
    return state, value


def fresh_value(state: AnnotateState) -> Optional[dict]:
    """A new canvas value for the open image: no prompts, and a slide's current field kept."""
    value = common.canvas_value(state.session.canvas_image)
    return None if value is None else {**value, **fields.canvas_field(state.session)}


def undo(project, state: AnnotateState) -> AnnotateState:
    """Take back this annotator's last commit on the open image."""
    need_image(state)
    removed = project.undo_last_commit(state.image_id, state.annotator)
    if removed is None:
        raise AppError("nothing to undo on this image")
    return replace(state, selected=None, note=f"object {removed} taken back")


def add_label(project, name: str) -> list[str]:
    """Store a new class; returns every class name."""
    try:
        return project.add_labels([name])
    except ValueError as exc:
        raise AppError(str(exc)) from None
