"""The annotate page's events, without its layout: one function per page event. No Gradio
here: `page.py` wires these to components, and the tests call them directly.

Every event takes the engine, the project (`basam_ui.project.Project`), the session's
`AnnotateState` and the event's inputs, and returns a new `AnnotateState`; the store does
the work (claims, objects, statuses), this module only turns page input into its calls.
The current image, its prompts and both sides' masks are a `Session` inside the state, so
prompting works as on the compare page (the shared `common/events.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Optional

from ...vocabulary import DEFAULT_SIDE
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


def need_image(state: AnnotateState) -> None:
    """AppError unless an image is open."""
    if state.image_id is None or not state.session.has_image:
        raise AppError("open an image first")


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
    need_image(state)
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


def set_window(engine: AppEngine, state: AnnotateState, window: str) -> tuple[AnnotateState, Optional[dict]]:
    """Show and encode the open image under display window `window` (a `Window` key), keeping
    its prompts; objects committed from now on record it. Returns (the state, the canvas value
    with the new image and the prompts), or the state and None when it has that window already.
    `encode` then encodes both sides."""
    need_image(state)
    if state.session.window and state.session.window["key"] == window:
        return state, None
    session = window_events.reread(engine, state.session, window=window)
    return replace(state, session=session), window_events.canvas_value_for(session)


def settings_for(engine: AppEngine, settings: Settings) -> tuple[int | str, list]:
    """(resolution, [configs]) the two sides of `settings` are encoded with (for prefetch)."""
    from ...basam.config import BASAMConfig

    return parse_size(settings.size, engine.max_size), [BASAMConfig.vanilla(), settings.basam_config]
