"""The annotate page's proposals without a browser: the background service computes them only
while the server is idle and only from an embedding already in the cache (it never encodes:
a click would wait), stores finished sets, and other settings find other proposals; the
page's events accept a proposal as an object (scores kept), reject one, accept all above a
score; and the page's other additions (an annotator sees only their copy of a double image,
the review mode's events)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from project_util import make_images, provenance
from team_util import disc, fake_set

from basam_ui.project import Project
from basam_ui.web.annotate import editing
from basam_ui.web.annotate import events as annotate
from basam_ui.web.annotate import proposals as page_proposals
from basam_ui.web.annotate import review as page_review
from basam_ui.web.annotate.prefetch import Prefetcher
from basam_ui.web.annotate.proposals import PageProposalSettings, ProposalService
from basam_ui.web.common.session import AppError, Settings
from page_util import SETTINGS, opened

SIZES = {"a.png": (120, 160), "b.png": (100, 140), "c.png": (90, 120)}
LOOSE = PageProposalSettings(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def project(tmp_path):
    with Project.open(make_images(tmp_path / "images", SIZES), labels=["lesion", "background"]) as opened:
        yield opened



def wait_for(condition, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_background_proposals_run_while_idle_from_cached_embeddings_only(engine, project):
    prefetcher = Prefetcher(engine, idle_s=0.05)
    service = ProposalService(engine, project, wake=prefetcher.wake)
    prefetcher.add_task(service)
    try:
        state = opened(engine, project)  # a.png, encoded
        wish = page_proposals.open_wish(engine, project, state, SETTINGS, LOOSE)
        other, _ = project.open_image(project.image_by_path("b.png").id)  # size and hash known, never encoded
        other_wish = page_proposals.wish_for(engine, project, other.id, SETTINGS, LOOSE)
        encodes = engine.encodes
        with prefetcher.busy():
            service.request(state.holder, [wish, other_wish])
            time.sleep(0.4)
            assert service.finished == [] and service.state(wish).startswith("queued")  # an event runs: nothing
        wait_for(lambda: (wish.image_id, wish.key) in service.finished)
        wait_for(lambda: service.state(other_wish) == "waiting for the image's embedding")
        assert engine.encodes == encodes  # the service never encodes
        stored = project.proposal_set(wish.image_id, wish.key)
        assert stored is not None and stored.settings["points_per_side"] == 3 and stored.points == 9
        assert service.state(wish) == "ready"
        layer = page_proposals.layer(project, state, wish, {})
        assert layer["url"] == state.session.canvas_image["url"] and len(layer["items"]) == len(project.proposals(stored.id))
        assert all(item["rings"] and len(item["rings"][0]) >= 3 for item in layer["items"])
        # other settings: other proposals (none yet), never the ones above
        stricter = PageProposalSettings(points_per_side=3, pred_iou_thresh=0.5, stability_score_thresh=0.0)
        assert page_proposals.layer(project, state, page_proposals.open_wish(engine, project, state, SETTINGS, stricter)) is None
        vanilla = Settings("vit_t", 256, False, False, 0.1, False)
        assert page_proposals.open_wish(engine, project, state, vanilla, LOOSE).key != wish.key
        # once the other image is encoded (by the page or the prefetcher), its turn comes
        image = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(project.file_path(other)).convert("RGB"))
        engine.embed("vit_t", image, 256, SETTINGS.basam_config)
        wait_for(lambda: (other_wish.image_id, other_wish.key) in service.finished, 120)
        service.request(state.holder, [])
        assert not service.pending()
    finally:
        prefetcher.stop()


def test_accept_reject_and_accept_above_a_score(engine, project):
    state = opened(engine, project)
    wish = page_proposals.open_wish(engine, project, state, SETTINGS, LOOSE)
    h, w = state.session.image.shape[:2]
    made = fake_set(h, w, key=wish.key)
    stored = project.store_proposals(state.image_id, wish.sha256, made)
    first, second, third = (item["id"] for item in page_proposals.layer(project, state, wish)["items"])
    state = page_proposals.accept(project, state, first, "2 · background", seconds=1.5)
    record = project.object(state.selected)
    assert record.label == "background" and record.provenance.source == "proposal"
    assert (record.provenance.predicted_iou, record.provenance.stability_score, record.provenance.seconds) == (0.97, 0.96, 1.5)
    assert record.provenance.model_type == "vit_t" and record.provenance.input_size == 1024  # the set's own record
    state = page_proposals.reject(project, state, second)
    assert [i["id"] for i in page_proposals.layer(project, state, wish)["items"]] == [third]
    with pytest.raises(AppError, match="already object"):
        page_proposals.accept(project, state, first, "lesion")
    state = page_proposals.accept_above(project, state, wish, "0.5", "lesion")
    assert "1 proposals" in state.note and page_proposals.layer(project, state, wish)["items"] == []
    assert project.proposal_states(stored.id) == {first: "accepted", second: "rejected", third: "accepted"}
    text = page_proposals.status_text(ProposalService(engine, project), wish, page_proposals.layer(project, state, wish), True)
    assert "0 pending (3 decided)" in text
    # a proposal of another image is refused
    other = annotate.open_image(engine, project, state, project.image_by_path("b.png").id)
    with pytest.raises(AppError, match="another image"):
        page_proposals.accept(project, other, third, "lesion")


def test_an_annotator_sees_only_their_copy_of_a_double_image_and_reviewers_review(engine, project):
    project.set_reviewers(["rita"])
    image = project.image_by_path("a.png")
    project._conn.execute("UPDATE images SET copies = 2 WHERE id = ?", (image.id,))
    ann = opened(engine, project, "ann")
    assert ann.image_id == image.id
    mine = project.commit_object(image.id, disc(120, 160, 40, 40, 20), "lesion", provenance(annotator="ann"))
    theirs = project.commit_object(image.id, disc(120, 160, 90, 60, 20), "lesion", provenance(annotator="bob"))
    assert [r.id for r in page_review.visible_objects(project, ann)] == [mine.id]
    project.set_status(image.id, "done", "ann")
    project.set_status(image.id, "done", "bob")
    project.release(ann.holder)  # ann moved on
    with pytest.raises(AppError, match="not a reviewer"):
        page_review.set_mode(engine, project, ann, "Review")
    rita = page_review.set_mode(engine, project, annotate.start(None, "rita"), "Review")
    assert rita.image_id == image.id and rita.selected == mine.id and rita.mode == "review"
    assert [r.id for r in page_review.visible_objects(project, rita)] == [mine.id, theirs.id]
    with pytest.raises(AppError, match="reviewing"):
        editing.commit(engine, project, rita, None, "lesion", SETTINGS)
    rita = page_review.decide(engine, project, rita, "accepted")
    assert rita.selected == theirs.id
    with pytest.raises(AppError, match="few words"):
        page_review.decide(engine, project, rita, "rejected", "  ")
    rita = page_review.decide(engine, project, rita, "rejected", "too round")
    assert project.image(image.id).status == "needs_work" and "needs work" in rita.note and "nothing to review" in rita.note
    assert page_review.set_mode(engine, project, rita, "Annotate").mode == "annotate"


def test_the_proposals_timer_before_the_session_starts_updates_nothing(engine, project):
    """Under load the page's proposals timer can tick before its load event starts the session:
    the tick must then answer with its outputs left alone (an empty dict is one output value
    to Gradio: an Error badge in the page)."""
    import asyncio

    from gradio.state_holder import SessionState

    from basam_ui.web.annotate.page import build_annotate_app

    prefetcher = Prefetcher(engine)
    app = build_annotate_app(engine, project, prefetcher, ProposalService(engine, project, enabled=False))
    try:
        [tick] = [f for f in app.fns.values() if getattr(f.fn, "__name__", "") == "on_tick"]
        inputs = {block: None for block in tick.inputs}
        answer = tick.fn(inputs)
        assert answer, "an empty answer is one output value to Gradio"
        # Gradio accepts it as it would in the page (a wrong shape raises ValueError here)
        values = asyncio.run(app.postprocess_data(tick, answer, SessionState(app)))
        assert len(values) == len(tick.outputs)
    finally:
        prefetcher.stop()
