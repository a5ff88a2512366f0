"""Proposals in the annotate page, without its layout: computed in the background for the open
and next images of each session (`ProposalService`, an idle task of the prefetcher: one batch
of points per step, and only once the image's embedding is in the cache, so a click waits at
most one batch), looked up by image file and settings (other settings or a changed file find
other proposals, never a mix), drawn as outlines (`layer`), and accepted (as objects of a
class, their scores kept) or rejected by the page's events. No Gradio here."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from ...basam.config import BASAMConfig
from ...project.records import display_path
from ...vocabulary import Resolution
from ..common.engine import AppEngine
from ..common.session import AppError, Settings, parse_size
from .events import AnnotateState

log = logging.getLogger(__name__)

WAIT_FOR_EMBEDDING_S = 3.0  # how long a wish whose embedding is not cached yet waits before it is looked at again
MAX_WISHES = 16  # wishes kept in all (sessions that went away leave theirs behind)
RING_TOLERANCE_PX = 1.0  # outlines sent to the browser are simplified by this much (they are drawn, not exported)
ITEMS_KEPT = 5000  # outlines kept in memory (a few KB each)


@dataclass(frozen=True)
class PageProposalSettings:
    """The page's three proposal settings (SAM's automatic mask generator's defaults)."""

    points_per_side: int = 32
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95

    def settings(self):
        from ...proposals import ProposalSettings

        try:
            return ProposalSettings(points_per_side=int(self.points_per_side), pred_iou_thresh=float(self.pred_iou_thresh),
                                    stability_score_thresh=float(self.stability_score_thresh))  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise AppError(f"proposal settings: {exc}") from None


@dataclass(frozen=True)
class Wish:
    """Proposals wanted for one image file under one set of settings (`key`)."""

    image_id: int
    path: str
    sha256: str
    model: str
    resolution: Resolution
    config: BASAMConfig
    settings: Any  # ProposalSettings
    key: str

    @property
    def ident(self) -> tuple[int, str, str]:
        return (self.image_id, self.sha256, self.key)


def wish_for(engine: AppEngine, project, image_id: int, settings: Settings, proposal: PageProposalSettings) -> Optional[Wish]:
    """The wish for an image under the page's settings: BA-SAM's setting of the page, at its S
    (None when the image was never opened, or is missing or unreadable)."""
    from ...proposals import record_for, settings_key

    image = project.image(image_id)
    sha = image.current_sha256 or image.sha256
    if image.missing or image.unreadable or sha is None or image.height is None:
        return None
    segmenter = engine.segmenter(settings.model)
    resolution = parse_size(settings.size, engine.max_size)
    size = segmenter.resolve_size((image.height, image.width), resolution)
    config = settings.basam_config
    record = record_for(segmenter.model.identity, size, config, segmenter.encoder_precision, proposal.settings())
    return Wish(image.id, str(project.file_path(image)), sha, settings.model, size, config, proposal.settings(),
                settings_key(record))  # fmt: skip


class ProposalService:
    """The proposals wanted by the page's sessions, computed one step at a time while idle
    (added to the prefetcher with `add_task`), stored in the project when finished."""

    def __init__(self, engine: AppEngine, project, wake: Callable[[], None] = lambda: None,
                 batch_seconds: float = 0.1, enabled: bool = True):  # fmt: skip
        self.engine, self.project, self.wake = engine, project, wake
        self.batch_seconds = batch_seconds
        self.enabled = enabled  # the page's default for its "compute in the background" setting
        self._lock = threading.RLock()
        self._wishes: OrderedDict[str, list[Wish]] = OrderedDict()  # holder -> wishes, newest holder last
        self._stored: set[tuple] = set()
        self._later: dict[tuple, float] = {}  # wish ident -> when to look at it again
        self._failed: dict[tuple, str] = {}
        self._run: Optional[tuple[Wish, Any]] = None
        self._decoders: dict[str, Any] = {}
        self.finished: list[tuple] = []  # (image id, key) of the sets computed here (tests, status)

    # -- what the page asks ---------------------------------------------------------------

    def request(self, holder: str, wishes: list[Optional[Wish]]) -> None:
        """`holder`'s wishes now (the open image first, then the next): they replace its
        earlier ones; [] withdraws them (a run nobody wants any more stops)."""
        wanted = []
        for wish in wishes:
            if wish is None or wish.ident in self._stored:
                continue
            if self.project.proposal_set(wish.image_id, wish.key, wish.sha256) is not None:
                self._stored.add(wish.ident)
                continue
            wanted.append(wish)
        with self._lock:
            self._wishes.pop(holder, None)
            if wanted:
                self._wishes[holder] = wanted
            while sum(len(w) for w in self._wishes.values()) > MAX_WISHES:
                self._wishes.popitem(last=False)
        self.wake()

    def state(self, wish: Wish) -> str:
        """Where a wish stands, in words for the page."""
        with self._lock:
            if wish.ident in self._stored:
                return "ready"
            if wish.ident in self._failed:
                return f"could not be computed: {self._failed[wish.ident]}"
            if self._run is not None and self._run[0].ident == wish.ident:
                p = self._run[1].progress
                return (f"computing: {p.points_done} / {p.points_total} points, {p.candidates} masks so far"
                        if p.phase == "decoding" else f"computing: {p.phase}")
            if wish.ident in self._later:
                return "waiting for the image's embedding"
            if any(w.ident == wish.ident for ws in self._wishes.values() for w in ws):
                return "queued: computed while the server is idle"
        return "not computed (tick 'compute in the background', or run basam-ui propose)"

    # -- the idle task --------------------------------------------------------------------

    def _wanted(self) -> list[Wish]:
        """Every wish not done, failed or waiting, the newest holder's first."""
        now = time.monotonic()
        seen, out = set(), []
        for wishes in reversed(self._wishes.values()):
            for wish in wishes:
                if wish.ident in seen or wish.ident in self._stored or wish.ident in self._failed:
                    continue
                seen.add(wish.ident)
                if self._later.get(wish.ident, 0.0) <= now:
                    out.append(wish)
        return out

    def pending(self) -> bool:
        with self._lock:
            return self._run is not None or bool(self._wanted())

    def step(self) -> None:
        """One step: a batch of points of the run under way (stored when it finishes), or the
        start of the next wanted run (its image read, its embedding taken from the cache)."""
        with self._lock:
            run = self._run
            if run is not None and run[0] not in self._wanted():
                self._run = run = None  # nobody wants it any more
            if run is None:
                wanted = self._wanted()
                if not wanted:
                    return
                wish = wanted[0]
        if run is None:
            self._start(wish)
            return
        wish, proposal_run = run
        if proposal_run.step():
            return
        result = proposal_run.result()
        self.project.store_proposals(wish.image_id, wish.sha256, result)
        with self._lock:
            self._stored.add(wish.ident)
            self._run = None
            self.finished.append((wish.image_id, wish.key))
        log.info("proposals of %s: %d masks in %.1f s", wish.path, len(result.proposals), result.seconds)

    def _start(self, wish: Wish) -> None:
        from ...cache import EmbeddingKey
        from ...image_io import load_image
        from ...proposals import ProposalRun, segmenter_decoder
        from ...segmenter import image_hash

        try:
            image = load_image(wish.path, max_pixels=self.engine.max_pixels)
            segmenter = self.engine.segmenter(wish.model)
            key = EmbeddingKey(image_hash(image), segmenter.model.identity, wish.resolution, wish.config,
                               segmenter.encoder_precision)  # fmt: skip
            on_disk = self.engine.cache.path(key)
            if key not in self.engine.cache and not (on_disk is not None and on_disk.is_file()):
                with self._lock:  # the page or the prefetcher encodes it: never here, a click would wait
                    self._later[wish.ident] = time.monotonic() + WAIT_FOR_EMBEDDING_S
                return
            embedding = self.engine.embed(wish.model, image, wish.resolution, wish.config)
            decode = self._decoders.get(wish.model) or self._decoders.setdefault(wish.model, segmenter_decoder(segmenter))
            proposal_run = ProposalRun(embedding, decode, wish.settings, batch_seconds=self.batch_seconds)
        except Exception as exc:  # a file gone bad since, a model that won't load: said in the page
            log.info("proposals of %s could not start", wish.path, exc_info=True)
            with self._lock:
                self._failed[wish.ident] = str(exc) or type(exc).__name__
            return
        with self._lock:
            self._later.pop(wish.ident, None)
            self._run = (wish, proposal_run)


# -- the page's events ------------------------------------------------------------------


def open_wish(engine: AppEngine, project, st: AnnotateState, settings: Settings,
              proposal: PageProposalSettings) -> Optional[Wish]:  # fmt: skip
    """The wish of the open image (None without one that can be shown)."""
    if st.image_id is None or st.session.image is None:
        return None
    return wish_for(engine, project, st.image_id, settings, proposal)


def layer(project, st: AnnotateState, wish: Optional[Wish], cache: Optional[dict] = None) -> Optional[dict]:
    """The canvas's `proposals` prop for the open image: {"url" (the image it belongs to),
    "set", "key", "items": [{"id", "rank", "iou", "stability", "area", "bbox", "rings"}],
    "decided"} of its pending proposals under the page's settings, best first (rings: outer
    outlines in image pixels, simplified by RING_TOLERANCE_PX); None when there is no set.
    `cache` ({proposal id: item}) keeps the outlines made, so a decision redraws nothing."""
    if wish is None or st.session.canvas_image is None:
        return None
    stored = project.proposal_set(wish.image_id, wish.key, wish.sha256)
    if stored is None:
        return None
    states = project.proposal_states(stored.id)
    pending = [pid for pid, status in states.items() if status == "pending"]
    cache = {} if cache is None else cache
    if any(pid not in cache for pid in pending):  # outlines are made once per proposal
        for proposal in project.proposals(stored.id, "pending"):
            if proposal.id not in cache:
                cache[proposal.id] = _item(proposal)
        shown = set(pending)
        for old in [pid for pid in cache if pid not in shown][: max(0, len(cache) - ITEMS_KEPT)]:
            del cache[old]  # the oldest others first
    items = [cache[pid] for pid in pending]
    return {"url": st.session.canvas_image["url"], "set": stored.id, "key": wish.key, "items": items,
            "decided": len(states) - len(pending)}  # fmt: skip


def _item(proposal) -> dict:
    import cv2
    import numpy as np

    x, y, w, h = (int(round(v)) for v in proposal.bbox)
    crop = np.pad(proposal.mask()[y : y + h, x : x + w].astype(np.uint8), 1)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for contour in contours:
        ring = cv2.approxPolyDP(contour, RING_TOLERANCE_PX, True).reshape(-1, 2) + np.array([x - 1, y - 1])
        if len(ring) >= 3:
            rings.append((ring + 0.5).round(1).tolist())  # pixel centres
    return {"id": proposal.id, "rank": proposal.rank, "iou": round(proposal.predicted_iou, 3),
            "stability": round(proposal.stability_score, 3), "area": proposal.area, "bbox": proposal.bbox, "rings": rings}


def status_text(service: ProposalService, wish: Optional[Wish], shown: Optional[dict], enabled: bool) -> str:
    """The proposals line: how many are pending for the open image, or where their computing stands."""
    if wish is None:
        return "Proposals: open an image."
    if shown is not None:
        n = len(shown["items"])
        return (f"Proposals: {n} pending ({shown['decided']} decided) · P shows/hides them · click one, then a digit "
                "or Enter accepts it as that class, X rejects it")
    state = service.state(wish)
    if not enabled and state.startswith("not computed"):
        return "Proposals: none stored for this image and these settings; tick 'compute in the background' or run basam-ui propose."
    return f"Proposals: {state}."


def _proposal_of_image(project, st: AnnotateState, proposal_id: Any):
    """The proposal (of the open image) an event names; AppError otherwise."""
    try:
        proposal = project.proposal(int(proposal_id))
    except (KeyError, TypeError, ValueError):
        raise AppError("that proposal is gone: press P to show the current ones") from None
    stored = next((s for s in project.proposal_sets(st.image_id) if s.id == proposal.set_id), None)
    if stored is None:
        raise AppError("that proposal belongs to another image")
    return proposal


def accept(project, st: AnnotateState, proposal_id: Any, label: str, seconds: Optional[float] = None) -> AnnotateState:
    """A digit or Enter on a selected proposal: it becomes an object of class `label` (its
    predicted IoU and stability kept), selected in the list."""
    from ...project import ProjectError
    from .editing import label_name

    if not st.annotator:
        raise AppError("type your name in the Annotator field first: every object records who made it")
    proposal = _proposal_of_image(project, st, proposal_id)
    try:
        record = project.accept_proposal(proposal.id, label_name(project, label), st.annotator, holder=st.holder,
                                         seconds=seconds)  # fmt: skip
    except (ProjectError, ValueError) as exc:
        raise AppError(str(exc)) from None
    return replace(st, selected=record.id, note=f"proposal accepted as object {record.id} ({record.label})")


def reject(project, st: AnnotateState, proposal_id: Any) -> AnnotateState:
    """X on a selected proposal: it is marked rejected (kept, with who) and no longer shown."""
    from ...project import ProjectError

    proposal = _proposal_of_image(project, st, proposal_id)
    try:
        project.reject_proposal(proposal.id, st.annotator)
    except ProjectError as exc:
        raise AppError(str(exc)) from None
    return replace(st, note="proposal rejected")


def accept_above(project, st: AnnotateState, wish: Optional[Wish], min_iou: Any, label: str) -> AnnotateState:
    """"Accept all above a score": every pending proposal of the open image (these settings)
    whose predicted IoU is at least `min_iou`, as objects of class `label`."""
    from ...project import ProjectError
    from .editing import label_name

    if not st.annotator:
        raise AppError("type your name in the Annotator field first: every object records who made it")
    stored = None if wish is None else project.proposal_set(wish.image_id, wish.key, wish.sha256)
    if stored is None:
        raise AppError("no proposals for this image and these settings yet")
    try:
        threshold = float(min_iou)
    except (TypeError, ValueError):
        raise AppError(f"the score must be a number between 0 and 1, got {min_iou!r}") from None
    try:
        made = project.accept_proposals(stored.id, threshold, label_name(project, label), st.annotator, holder=st.holder)
    except (ProjectError, ValueError) as exc:
        raise AppError(str(exc)) from None
    shown = display_path(project.image(st.image_id).path)
    return replace(st, note=f"{len(made)} proposals of {shown} with predicted IoU ≥ {threshold:g} accepted")
