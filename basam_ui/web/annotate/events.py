"""The annotate page's events, without its layout: one function per page event. No Gradio
here: `page.py` wires these to components, and the tests call them directly.

Every event takes the engine, the project (`basam_ui.project.Project`), the session's
`AnnotateState` and the event's inputs, and returns a new `AnnotateState`; the store does
the work (claims, objects, statuses), this module only turns page input into its calls.
The current image, its prompts and both sides' masks are a `Session` inside the state, so
prompting works as on the compare page (the shared `common/events.py`).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

import numpy as np

from ...prompts import Prompts
from ...vocabulary import DEFAULT_SIDE, side_key
from ..common import events as common
from ..common import fields, window_events
from ..common.engine import AppEngine
from ..common.session import AppError, Progress, Session, Settings, no_progress, parse_size
MAX_STROKES = 500
MAX_STROKE_POINTS = 20_000


@dataclass(frozen=True, eq=False)
class AnnotateState:
    """One browser session of the annotate page (kept in gr.State).

    `holder` names this session's claims (made on its first event); `session` holds the open
    image, its prompts and masks; `side` is the mask Enter commits ("basam" or "sam");
    `selected` the object picked in the list; `reopened` the object a commit replaces;
    `started` when the first prompt of the current object was made (time per object); `mode`
    "annotate", or "review" while a reviewer walks the done images (`review.py`)."""

    holder: str = ""
    annotator: str = ""
    image_id: Optional[int] = None
    session: Session = field(default_factory=Session)
    side: str = DEFAULT_SIDE
    selected: Optional[int] = None
    reopened: Optional[int] = None
    started: Optional[float] = None
    note: str = ""
    mode: str = "annotate"


def start(state: Optional[AnnotateState], annotator: Optional[str] = None) -> AnnotateState:
    """The state with this session's claim name (made once) and the annotator's name: the
    given one (the page sends its field's text, empty too, with every event), else the one it
    had."""
    state = state or AnnotateState()
    holder = state.holder or uuid.uuid4().hex
    name = state.annotator if annotator is None else annotator.strip()[:100]
    return replace(state, holder=holder, annotator=name)


def set_annotator(project, state: AnnotateState, name: str) -> AnnotateState:
    """The name typed in the page (or the login name): recorded with every object from now on."""
    state = start(state)
    state = replace(state, annotator=(name or "").strip()[:100])
    if state.image_id is not None:
        project.open_image(state.image_id, state.holder, state.annotator)  # the claim shows the new name
    return state


# -- images -----------------------------------------------------------------------------


def open_image(engine: AppEngine, project, state: AnnotateState, image_id: int) -> AnnotateState:
    """Open image `image_id`: claim it, record its size and hash, load it for the canvas (the
    encode is `encode`, a second step). A file that can't be read is shown as such, with the
    reason, instead of an image (the store flags it; moving on works as usual); a missing file
    raises AppError."""
    state = start(state)
    image, other = project.open_image(int(image_id), state.holder, state.annotator)
    if image.missing:
        raise AppError(f"{image.display_name}: the file is missing (its objects are kept)")
    if image.unreadable:
        return _without_image(engine, state, image)
    try:
        session = open_item(engine, project, image)
    except AppError as exc:  # the header read, the pixels did not (a truncated file, a bomb)
        reason = str(exc).removeprefix(f"{project.file_path(image).name}: ")
        return _without_image(engine, state, project.mark_unreadable(image.id, reason))
    engine.forget(state.session)
    shown = image.display_name
    note = f"{shown} is also open in {other or 'another'} session" if other is not None else ""
    if session.fields is not None and not note:
        note = slide_note(engine)
    if image.changed:
        note = (f"⚠️ {shown} changed on disk since its objects were drawn: they are kept apart "
                "(see the export's changed.txt); commits are refused until it is resolved")
    return replace(
        state, image_id=image.id, session=replace(session, image_name=shown),
        side=DEFAULT_SIDE, selected=None, reopened=None, started=None, note=note,
    )


def open_item(engine: AppEngine, project, image) -> Session:
    """The Session for a project image: a slide (a source read by region) with its thumbnail,
    tiles and fields; an image decoded whole (its frame, for a multi-frame file), in tiles when
    it is a large photo. Tiles are served by the project's image id (`tile_file`). Raises
    AppError."""
    from ...sources import open_source

    path = project.file_path(image)
    tiles_url = fields.tile_url(str(image.id), image.current_sha256 or "")
    try:
        with open_source(path, max_pixels=engine.max_pixels, frame=image.frame) as source:
            regions, plain = source.regions, source.plain_file
    except (OSError, ValueError):
        regions = plain = False  # the reader says what is wrong below
    if regions:
        return fields.open_slide(engine, str(path), tiles_url)
    # tiles come from the file itself: only for an ordinary image file (not a DICOM frame,
    # whose pixels depend on its frame and window)
    return common.upload_image(engine, str(path), frame=image.frame, tiles_url=tiles_url if plain else None)


def tile_file(project):
    """The tile server's resolver for `project` (`web/common/tiles.TileServer`): an image id
    (the key the canvas names) -> its file, for an image of the project that is there and
    readable; None for any other key. The path comes from the database, never the request."""

    def resolve(key: str):
        try:
            image = project.image(int(key))
        except (KeyError, ValueError):
            return None
        return None if image.missing or image.unreadable else project.file_path(image)

    return resolve


def slide_note(engine: AppEngine) -> str:
    """What the page says on opening a slide: how fields work, and why S starts where it does."""
    note = ("A slide is annotated in fields: the first click encodes what you see (G takes the current view as "
            "the field; a click outside the field starts a new one; C cancels an encode).")
    if not str(engine.device).startswith("cuda"):
        note += (f" S = {engine.default_field_size} by default on this CPU: a field at 4096 takes over a minute per "
                 "side to encode with vit_t and 7 to 17 minutes with vit_b (zoom in for finer fields, or pick a larger S)")
    return note


def _without_image(engine: AppEngine, state: AnnotateState, image) -> AnnotateState:
    """The state on an image whose file can't be read: its name and why, no canvas."""
    engine.forget(state.session)
    note = (f"⚠️ can't be read: {image.unreadable}. Its status is kept; fix the file and open the image again, "
            "or move on (D, Next to do).")
    return replace(state, image_id=image.id, session=Session(image_name=image.display_name), side=DEFAULT_SIDE, selected=None,
                   reopened=None, started=None, note=note)  # fmt: skip


def readable(state: AnnotateState) -> bool:
    """Whether the open image is shown (it was found and read)."""
    return state.session.has_image


def encode(engine: AppEngine, state: AnnotateState, settings: Settings, progress: Progress = no_progress,
           cancel=None) -> AnnotateState:  # fmt: skip
    """Both sides' embeddings of the open image (a slide's field; from the cache when there),
    and masks for its prompts: after opening an image and for every settings change. `cancel`:
    the encode's cancel flag (`AppEngine.encoding`)."""
    return replace(state, session=common.compute(engine, state.session, settings, progress, cancel))


def go(engine: AppEngine, project, state: AnnotateState, where: str) -> AnnotateState:
    """Move to the "next" or "prev" image (path order) or the next one "todo" (claimed, so
    other sessions get other images)."""
    state = start(state)
    if where == "todo":
        opened = _open_next_todo(engine, project, state, after=state.image_id)
        if opened is None:
            raise AppError("nothing left to do: every image is done, skipped, missing, unreadable or open elsewhere")
        return opened
    if where in ("next", "prev"):
        if state.image_id is None:
            images = project.images()
            if not images:
                raise AppError("the project has no images")
            found = images[0] if where == "next" else images[-1]
        else:
            found = project.neighbour(state.image_id, 1 if where == "next" else -1)
            if found is None:
                raise AppError(f"this is the {'last' if where == 'next' else 'first'} image")
    else:
        raise AppError(f"unknown move {where!r}")
    return open_image(engine, project, state, found.id)


def _open_next_todo(engine: AppEngine, project, state: AnnotateState, after: Optional[int]) -> Optional[AnnotateState]:
    """Open the next image to do that can be shown: one found unreadable on opening is flagged
    (so it is not handed out again) and the next one is tried. None when none is left."""
    for _ in range(len(project.images())):
        found = project.next_todo(state.holder, state.annotator, after=after)
        if found is None:
            return None
        try:
            opened = open_image(engine, project, state, found.id)
        except AppError:  # gone since the last scan: it is marked missing now
            opened = None
        if opened is not None and readable(opened):
            return opened
        after = found.id
    return None


def image_named(project, shown: str):
    """The image a row of the list names (as `ImageRecord.display_name` shows it); AppError for none."""
    try:
        return project.image_by_path(shown)
    except KeyError:
        found = next((image for image in project.images() if image.display_name == shown), None)
    if found is None:
        raise AppError("pick an image in the list")
    return found


def first_image(engine: AppEngine, project, state: AnnotateState) -> AnnotateState:
    """The image a new session opens: its next to do that can be read, else the first image
    that is there (shown with its reason when it can't be read)."""
    state = start(state)
    opened = _open_next_todo(engine, project, state, after=None)
    if opened is not None:
        return opened
    images = [i for i in project.images() if not i.missing]
    if not images:
        return state
    return open_image(engine, project, state, images[0].id)


def mark(engine: AppEngine, project, state: AnnotateState, status: str) -> AnnotateState:
    """Mark the open image "done" or "skipped" (or back "todo") and, for done and skipped, open
    the next image to do (staying when none is left). An image that can't be read can be
    marked too (e.g. skipped)."""
    if state.image_id is None:
        raise AppError("open an image first")
    if state.mode == "review":
        raise AppError("this page is reviewing: Y accepts, R rejects; switch the mode back to annotate to mark images")
    following = project.set_status(state.image_id, status, state.annotator, state.holder)
    if status in ("done", "skipped") and following is not None:
        opened = open_image(engine, project, state, following.id)
        if readable(opened):
            return opened
        return _open_next_todo(engine, project, state, after=following.id) or opened
    note = "every image is done or skipped" if status in ("done", "skipped") else ""
    return replace(state, note=note)


def resolve_changed(engine: AppEngine, project, state: AnnotateState, keep: bool) -> AnnotateState:
    """The open image's file changed since its objects were drawn: accept the new file, keeping
    its objects (`keep`) or dropping them; commits are taken again."""
    _need_image(state)
    if not project.image(state.image_id).changed:
        raise AppError("this image's file has not changed since it was annotated")
    project.resolve_changed(state.image_id, keep_objects=keep)
    return replace(open_image(engine, project, state, state.image_id),
                   note="objects kept for the new file" if keep else "old objects dropped")


def touch(project, state: AnnotateState) -> None:
    """Keep this session's claim alive (any activity)."""
    if state.holder:
        project.touch(state.holder)


def close(engine: AppEngine, project, state: Optional[AnnotateState]) -> None:
    """A closed browser session: give up its claim and delete its files."""
    if state is None:
        return
    if state.holder:
        project.release(state.holder)
    engine.forget(state.session)


# -- prompts, brush and objects -----------------------------------------------------------


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

    _need_image(state)
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
            state.image_id, mask, _label(project, label), provenance, replaces=state.reopened, holder=state.holder,
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


def _label(project, label: str) -> str:
    """A class radio's value ("2 · lesion" or "lesion") -> the class name."""
    names = project.labels()
    if label in names:
        return label
    text = str(label or "").split("·", 1)[-1].strip()
    if text in names:
        return text
    raise AppError(f"pick a class first (classes: {', '.join(names)})")


def _need_image(state: AnnotateState) -> None:
    if state.image_id is None or not state.session.has_image:
        raise AppError("open an image first")


def select_object(state: AnnotateState, object_id: Any) -> AnnotateState:
    """Pick an object in the list (None: none)."""
    return replace(state, selected=None if object_id in (None, "") else int(object_id))


def relabel(project, state: AnnotateState, label: str) -> AnnotateState:
    """Give the selected object the class `label`."""
    if state.selected is None:
        raise AppError("select an object first")
    try:
        project.relabel(state.selected, _label(project, label))
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
    _need_image(state)
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
    _need_image(state)
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


def set_window(engine: AppEngine, state: AnnotateState, window: str) -> tuple[AnnotateState, Optional[dict]]:
    """Show and encode the open image under display window `window` (a `Window` key), keeping
    its prompts; objects committed from now on record it. Returns (the state, the canvas value
    with the new image and the prompts), or the state and None when it has that window already.
    `encode` then encodes both sides."""
    _need_image(state)
    if state.session.window and state.session.window["key"] == window:
        return state, None
    session = window_events.reread(engine, state.session, window=window)
    return replace(state, session=session), window_events.canvas_value_for(session)


def settings_for(engine: AppEngine, settings: Settings) -> tuple[int | str, list]:
    """(resolution, [configs]) the two sides of `settings` are encoded with (for prefetch)."""
    from ...basam.config import BASAMConfig

    return parse_size(settings.size, engine.max_size), [BASAMConfig.vanilla(), settings.basam_config]
