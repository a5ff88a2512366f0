"""The annotate page's review mode, without its layout: a reviewer (named with `--reviewers`;
the login name when logins are on) walks the images marked done that are not their own, one
object at a time: Y accepts it, R and a short reason reject it; when every object of the image
is decided the image is *reviewed* (or *needs work*, back to its annotators) and the next one
opens. Also which objects the page shows: on an image annotated twice, an annotator sees only
their own copy. No Gradio here."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from ...project.records import display_path
from ...project.review import ReviewError
from ..common.engine import AppEngine
from ..common.session import AppError
from . import events as annotate
from .events import AnnotateState

MODES = ("annotate", "review")
MODE_LABELS = {"annotate": "Annotate", "review": "Review"}


def visible_objects(project, st: AnnotateState) -> list:
    """The objects the page shows and lists for the open image: all of them, except on an image
    annotated twice while annotating, where each annotator sees only their own copy."""
    if st.image_id is None:
        return []
    records = project.objects(st.image_id)
    if st.mode != "review" and project.image(st.image_id).copies > 1:
        return [r for r in records if r.provenance.annotator == st.annotator]
    return records


def may_review(project, name: str) -> bool:
    return bool(name) and name in project.reviewers()


def set_mode(engine: AppEngine, project, st: AnnotateState, mode: str) -> AnnotateState:
    """Switch between annotating and reviewing; entering review opens the first image to review."""
    label_to_mode = {label: key for key, label in MODE_LABELS.items()}
    mode = label_to_mode.get(mode, mode)
    if mode not in MODES:
        raise AppError(f"mode must be one of {', '.join(MODE_LABELS.values())}, got {mode!r}")
    if mode == st.mode:
        return st
    if mode == "annotate":
        return replace(st, mode="annotate", selected=None, note="")
    if not may_review(project, st.annotator):
        names = ", ".join(project.reviewers()) or "none: start the server with --reviewers NAME,..."
        raise AppError(f"{st.annotator or 'this session'} is not a reviewer of this project (reviewers: {names})")
    return next_image(engine, project, replace(st, mode="review", note=""))


def next_image(engine: AppEngine, project, st: AnnotateState) -> AnnotateState:
    """Open the next image to review (after the open one), its first undecided object selected;
    the state with a note when nothing is left."""
    _need_review(st)
    try:
        found = project.next_review(st.annotator, st.holder, after=st.image_id)
    except ReviewError as exc:
        raise AppError(str(exc)) from None
    if found is None:  # the image shown stays for a look, but is not held: its annotators may need it now
        project.release(st.holder)
        return replace(st, note="nothing to review: every image marked done is reviewed, your own, or open elsewhere")
    opened = annotate.open_image(engine, project, st, found.id)
    return _select_undecided(project, opened)


def _select_undecided(project, st: AnnotateState) -> AnnotateState:
    undecided = [r.id for r in project.objects(st.image_id) if r.review is None] if st.image_id is not None else []
    count = len(project.objects(st.image_id)) if st.image_id is not None else 0
    note = (f"reviewing: {len(undecided)} of {count} objects to decide · Y accepts, R then a reason rejects"
            if undecided else "every object is decided: Shift+Y accepts the image as it is")  # fmt: skip
    return replace(st, selected=undecided[0] if undecided else None, note=note)


def decide(engine: AppEngine, project, st: AnnotateState, decision: str, reason: str = "") -> AnnotateState:
    """Accept or reject the selected object; when that decides the image, open the next one."""
    _need_review(st)
    if st.selected is None:
        raise AppError("select an object first (the list on the right)")
    try:
        image = project.review_object(st.selected, decision, st.annotator, reason)
    except (ReviewError, ValueError) as exc:
        raise AppError(str(exc)) from None
    return _after(engine, project, st, image)


def accept_rest(engine: AppEngine, project, st: AnnotateState) -> AnnotateState:
    """Accept every undecided object of the open image (an image without objects as it is)."""
    _need_review(st)
    if st.image_id is None:
        raise AppError("open an image first")
    try:
        image = project.accept_remaining(st.image_id, st.annotator)
    except ReviewError as exc:
        raise AppError(str(exc)) from None
    return _after(engine, project, st, image)


def _after(engine: AppEngine, project, st: AnnotateState, image) -> AnnotateState:
    if image.status in ("reviewed", "needs_work"):
        said = (f"{display_path(image.path)}: "
                + ("reviewed" if image.status == "reviewed" else "needs work (back to its annotators)"))
        following = next_image(engine, project, st)
        return replace(following, note=f"{said} · {following.note}")
    return _select_undecided(project, st)


def _need_review(st: AnnotateState) -> None:
    if st.mode != "review":
        raise AppError("switch the mode to review first")


def review_line(project, st: AnnotateState) -> Optional[str]:
    """What the review panel says: images waiting for this reviewer (None when not reviewing)."""
    if st.mode != "review":
        return None
    waiting = len(project.to_review(st.annotator))
    return f"{waiting} image{'s' if waiting != 1 else ''} waiting for your review"
