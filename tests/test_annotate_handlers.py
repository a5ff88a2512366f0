"""The annotate page's events (basam_ui.web.annotate) and views, called directly: random vit_t,
small images, S=256, a project in tmp_path."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from basam_ui.project import Project
from basam_ui.web.annotate import editing
from basam_ui.web.annotate import events as annotate
from basam_ui.web.annotate import view as annotate_view
from basam_ui.web.annotate.events import AnnotateState
from basam_ui.web.annotate.prefetch import Prefetcher
from basam_ui.web.common.session import AppError
from project_util import make_images
from page_util import SETTINGS, opened

SIZES = {"a.png": (120, 160), "b.png": (100, 140), "c.png": (90, 120), "d.png": (80, 100)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def project(tmp_path):
    with Project.open(make_images(tmp_path / "images", SIZES), labels=["lesion", "background"]) as opened:
        yield opened



def canvas(state: AnnotateState, points=(), box=None, strokes=()) -> dict:
    value = {"image": dict(state.session.canvas_image), "rev": 3, "negative": False,
             "points": [{"x": x, "y": y, "label": 1, "i": k} for k, (x, y) in enumerate(points)],
             "boxes": [] if box is None else [dict(zip(("x0", "y0", "x1", "y1"), box), i=99)]}
    if strokes:
        value["strokes"] = list(strokes)
    return value


def prompted(engine, state, points=((60, 50),), box=None):
    value = canvas(state, points, box)
    return editing.set_prompts(engine, state, value, SETTINGS), value


def test_commit_records_the_chosen_side_and_provenance(engine, project):
    state = opened(engine, project, "alice")
    assert project.image(state.image_id).path == "a.png" and state.session.basam.source == "computed"
    state, value = prompted(engine, state, ((60, 50), (30, 40)))
    basam_mask = state.session.basam.mask.copy()
    state = editing.commit(engine, project, state, value, "2 · background", SETTINGS)
    [record] = project.objects(state.image_id)
    assert record.label == "background" and record.provenance.side == "basam" and record.provenance.annotator == "alice"
    assert np.array_equal(record.mask(), basam_mask) and not record.provenance.brushed
    p = record.provenance
    assert (p.input_size, p.nsf, p.bmam, p.beta, p.model_type, p.precision) == (256, True, True, 0.1, "vit_t", engine.segmenter("vit_t").encoder_precision)
    assert p.prompts["points"] == [[60.0, 50.0], [30.0, 40.0]] and p.iou_sam_basam is not None and p.predicted_iou is not None
    assert state.session.prompts.empty and state.selected == record.id and project.image(state.image_id).status == "in_progress"
    # S: SAM's mask, with the vanilla setting recorded
    state, value = prompted(engine, state, ((100, 80),))
    state = editing.switch_side(state, "SAM")
    sam_mask = state.session.sam.mask.copy()
    state = editing.commit(engine, project, state, value, "lesion", SETTINGS)
    second = project.objects(state.image_id)[-1]
    assert second.provenance.side == "sam" and not second.provenance.nsf and not second.provenance.bmam
    assert np.array_equal(second.mask(), sam_mask) and state.side == "basam"
    with pytest.raises(AppError, match="no mask"):
        editing.commit(engine, project, state, canvas(state), "lesion", SETTINGS)


def test_brush_strokes_paint_original_pixels(engine, project):
    mask = np.zeros((20, 30), bool)
    line = editing.apply_strokes(mask, [{"mode": "brush", "size": 1, "points": [(10.5, 5.2), (20.9, 5.7)]}])
    assert np.array_equal(np.argwhere(line), [[5, x] for x in range(10, 21)])  # one row, 1 px wide
    erased = editing.apply_strokes(np.ones((20, 30), bool), [{"mode": "erase", "size": 5, "points": [(15, 10)]}])
    assert (~erased).sum() == 13 and not erased[10, 13] and erased[10, 18]  # the 13 pixels within 2 px of the centre
    with pytest.raises(AppError, match="malformed"):
        editing.parse_strokes({"strokes": [{"mode": "paint", "size": 3, "points": [[1, 2]]}]})
    with pytest.raises(AppError, match="malformed"):
        editing.parse_strokes({"strokes": [{"mode": "brush", "size": 3, "points": [[1, float("nan")]]}]})

    state = opened(engine, project)
    state, value = prompted(engine, state)
    stroke = {"mode": "brush", "size": 3, "points": [[5, 100], [150, 100]]}
    expected = editing.apply_strokes(state.session.basam.mask, editing.parse_strokes({"strokes": [stroke]}))
    state = editing.commit(engine, project, state, {**value, "strokes": [stroke]}, "lesion", SETTINGS)
    [record] = project.objects(state.image_id)
    assert record.provenance.brushed and record.provenance.brush_edits == 1
    assert np.array_equal(record.mask(), expected) and record.mask()[99:102, 5:151].all()


def test_select_relabel_reopen_replace_delete_undo(engine, project):
    state = opened(engine, project)
    state, value = prompted(engine, state, ((40, 40),))
    state = editing.commit(engine, project, state, value, "lesion", SETTINGS)
    first = state.selected
    state = editing.relabel(project, editing.select_object(state, first), "2 · background")
    assert project.object(first).label == "background"
    state, value = editing.reopen_selected(engine, project, state, SETTINGS)
    assert value["points"][0]["x"] == 40 and state.reopened == first and not state.session.prompts.empty
    value = canvas(state, ((40, 40), (70, 60)))
    state = editing.set_prompts(engine, state, value, SETTINGS)
    state = editing.commit(engine, project, state, value, "background", SETTINGS)
    [replaced] = project.objects(state.image_id)
    assert replaced.id != first and replaced.replaces == first and len(replaced.provenance.prompts["points"]) == 2
    state = editing.undo(project, state)  # the replacement goes, the original comes back
    assert [o.id for o in project.objects(state.image_id)] == [first]
    state = editing.delete_selected(project, editing.select_object(state, first))
    assert project.objects(state.image_id) == [] and state.selected is None
    with pytest.raises(AppError, match="nothing to undo"):
        editing.undo(project, state)
    with pytest.raises(AppError, match="select an object"):
        editing.delete_selected(project, state)
    assert editing.add_label(project, "vessel")[-1] == "vessel"
    with pytest.raises(AppError):
        editing.add_label(project, "  ")


def test_two_sessions_get_different_images_and_done_moves_on(engine, project):
    one, two = opened(engine, project, "alice"), opened(engine, project, "bob")
    assert one.holder != two.holder and one.image_id != two.image_id
    rows = annotate_view.image_rows(project, one)
    assert any("open by bob" in row[1] for row in rows) and rows[0][0].startswith("▶ ")
    assert [row[0] for row in annotate_view.image_rows(project, two, limit=2)] == ["a.png", "▶ b.png"]
    one = annotate.mark(engine, project, one, "done")
    assert one.image_id not in (two.image_id, project.image_by_path("a.png").id)
    assert project.image_by_path("a.png").status == "done" and "1 / 4 done" in annotate_view.progress_text(project)
    two = annotate.go(engine, project, two, "next")
    assert project.image(two.image_id).path == "c.png"
    with pytest.raises(AppError, match="last image"):
        annotate.go(engine, project, annotate.go(engine, project, two, "next"), "next")
    annotate.close(engine, project, one)  # its claim goes: the image can be handed out again
    assert one.image_id not in project.claimed_by_others(two.holder)


def test_objects_layer_and_changed_or_missing_files(engine, project, tmp_path):
    state = opened(engine, project)
    for point in ((40, 40), (120, 90)):
        state, value = prompted(engine, state, (point,))
        state = editing.commit(engine, project, state, value, "lesion", SETTINGS)
    records = project.objects(state.image_id)
    layer = annotate_view.objects_layer(state, records)
    assert [item["label"] for item in layer["items"]] == ["lesion", "lesion"]
    with Image.open(io.BytesIO(annotate_view.pack_objects(list(enumerate(records)), 120, 160))) as png:
        values = np.asarray(png)
    for k, record in enumerate(records):  # the top object's pixels hold its own number
        top = record.mask() & ~np.any([r.mask() for r in records[k + 1:]], axis=0) if k + 1 < len(records) else record.mask()
        assert set(np.unique(values[top] & 127)) == {k + 1}
    assert not (values[~np.any([r.mask() for r in records], axis=0)]).any()
    # the file changes: flagged in the list and the page, commits refused; a deleted file: missing
    path = project.file_path(project.image(state.image_id))
    Image.fromarray(np.zeros((120, 160, 3), np.uint8)).save(path)
    state = annotate.open_image(engine, project, state, state.image_id)
    assert "changed" in state.note and "changed!" in annotate_view.image_rows(project, state)[0][1]
    with pytest.raises(AppError, match="changed"):
        editing.commit(engine, project, *prompted(engine, annotate.encode(engine, state, SETTINGS)), "lesion", SETTINGS)
    state = annotate.resolve_changed(engine, project, state, keep=False)
    assert project.objects(state.image_id) == [] and not project.image(state.image_id).changed
    project.file_path(project.image_by_path("d.png")).unlink()
    with pytest.raises(AppError, match="missing"):
        annotate.open_image(engine, project, state, project.image_by_path("d.png").id)
    assert "missing" in annotate_view.image_rows(project, state)[3][1]


def test_prefetch_encodes_when_idle_and_never_while_busy(engine, project):
    prefetcher = Prefetcher(engine, idle_s=0.05)
    try:
        image = project.file_path(project.image_by_path("c.png"))
        resolution, configs = annotate.settings_for(engine, SETTINGS)
        with prefetcher.busy():
            prefetcher.request("vit_t", str(image), resolution, configs)
            time.sleep(0.5)
            assert prefetcher.done == []  # an event is running: nothing starts
        deadline = time.monotonic() + 60
        while not prefetcher.done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert prefetcher.done == [str(image)]
        state = annotate.open_image(engine, project, annotate.start(None), project.image_by_path("c.png").id)
        before = engine.encodes
        state = annotate.encode(engine, state, SETTINGS)
        assert engine.encodes == before and {state.session.sam.source, state.session.basam.source} == {"memory"}
    finally:
        prefetcher.stop()
