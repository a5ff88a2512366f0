"""A slide on the annotate page, through its events (no browser): it opens as a thumbnail and
tiles with no field; the first prompt makes the field from the view it names, at the page's
S; the masks come back at the field's resolution with the field's rectangle; a field met
again comes from the embedding cache without reading its pixels; an encode is cancelled at its
next block, keeping nothing; a commit stores the field, the brush painting at the field's
resolution; a reopened object brings its field back; the objects layer draws it on its field;
the prefetcher leaves slides alone. Random vit_t, S = 256."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from basam_ui.project import Project
from basam_ui.sources.fields import Field, field_for_view
from basam_ui.sources import Region
from basam_ui.web.annotate import editing
from basam_ui.web.annotate import events as annotate
from basam_ui.web.annotate import view as annotate_view
from basam_ui.web.common import events as common
from basam_ui.web.common import fields
from basam_ui.web.common.session import AppError
from slides import write_slide
from page_util import SETTINGS, opened

SIZE = (20_000, 16_000)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    write_slide(root / "slide.tif", SIZE, levels=4, mpp=0.5)
    with Project.open(root, labels=["tumour", "stroma"]) as opened:
        yield opened



def value(state, points=(), field_rev=None, view=None, strokes=()) -> dict:
    made = {"image": dict(state.session.canvas_image), "rev": 5, "negative": False,
            "points": [{"x": x, "y": y, "label": 1, "i": k + 1} for k, (x, y) in enumerate(points)], "boxes": []}
    if field_rev is not None:
        made.update(field_rev=field_rev, field_view=dict(zip(("x", "y", "width", "height"), view)))
    if strokes:
        made["strokes"] = list(strokes)
    return made


def test_a_slide_opens_as_tiles_with_no_field_and_nothing_encoded(engine, project):
    before = engine.encodes
    state = opened(engine, project)
    session = state.session
    assert session.fields is not None and session.image is None and session.field is None
    assert session.image_size == SIZE and engine.encodes == before
    image = session.canvas_image
    assert image["fields"] and (image["width"], image["height"]) == SIZE and "full" not in image
    assert image["tiles"]["levels"][-1] == list(SIZE) and image["tiles"]["url"].startswith("basam-tiles/")
    assert max(session.display.shape[:2]) == 1600  # the thumbnail, from the pyramid
    assert "No field yet" in annotate_view.status_text(project, state) and "fields" in state.note
    [row] = annotate_view.image_rows(project, state)
    assert row[1].endswith("20000×16000 at 0.5 µm/px")  # listed with its level-0 size and pixel size


def test_the_first_prompt_makes_the_field_from_the_view_and_masks_lie_on_it(engine, project):
    state = opened(engine, project)
    view = (5000.4, 3000.7, 2047.2, 1500.0)
    state = editing.set_prompts(engine, state, value(state, [(6000, 3500)], 1, view), SETTINGS)
    field = state.session.field
    assert field == field_for_view(Region(*view), 256, SIZE) == Field(5000, 3000, 2048, 1501, 8.0)
    assert state.session.basam.mask.shape == field.size[::-1]
    masks = common.masks_for_canvas(state.session)
    assert masks["field"] == field.as_dict() and (masks["width"], masks["height"]) == field.size
    # a prompt of the same field decodes only; a new field_rev makes a new field
    before = engine.encodes
    state = editing.set_prompts(engine, state, value(state, [(6000, 3500), (6100, 3600)], 1, view), SETTINGS)
    assert engine.encodes == before and state.session.field == field
    state = editing.set_prompts(engine, state, value(state, [(12_000, 9000)], 2, (11_500, 8800, 1000, 800)), SETTINGS)
    assert state.session.field == Field(11_500, 8800, 1000, 800, 1000 / 256) and engine.encodes == before + 2
    assert fields.canvas_field(state.session) == {"field_rev": 2, "field_view": {"x": 11_500, "y": 8800, "width": 1000, "height": 800}}


def test_prompts_reach_the_model_in_field_pixels():
    field = Field(1000, 2000, 800, 400, 2.0)
    from basam_ui.prompts import Prompts

    moved = fields.field_prompts(Prompts(points=((1100.0, 2100.0, 1),), boxes=((1000.0, 2000.0, 1800.0, 2400.0),)), field)
    assert moved.points == ((50.0, 50.0, 1),) and moved.boxes == ((0.0, 0.0, 400.0, 200.0),)
    [stroke] = fields.field_strokes([{"mode": "brush", "size": 8.0, "points": [(1200.0, 2200.0)]}], field)
    assert stroke["size"] == 4.0 and stroke["points"] == [(100.0, 100.0)]


def test_a_field_met_again_comes_from_the_cache_unread(engine, project, monkeypatch):
    state = opened(engine, project)
    view = (2000, 2000, 1024, 1024)
    state = editing.set_prompts(engine, state, value(state, [(2500, 2500)], 1, view), SETTINGS)
    reads = []
    real = fields.read_slide_field
    monkeypatch.setattr(fields, "read_slide_field", lambda *a: reads.append(a) or real(*a))
    state = editing.set_prompts(engine, state, value(state, [(9000, 9000)], 2, (8000, 8000, 2000, 2000)), SETTINGS)
    assert len(reads) == 2  # a new field: read for each side's encode
    state = editing.set_prompts(engine, state, value(state, [(2600, 2600)], 3, view), SETTINGS)
    assert len(reads) == 2 and {state.session.sam.source, state.session.basam.source} == {"memory"}
    # the cache key: the slide's fingerprint and the field, not a hash of its pixels
    from basam_ui.cache import EmbeddingKey

    segmenter = engine.segmenter("vit_t")
    content = fields.field_key(state.session.fields, state.session.field)
    assert state.session.fields.fingerprint in content and "2000,2000,1024,1024" in content
    key = EmbeddingKey(content, segmenter.model.identity, 256, SETTINGS.basam_config, segmenter.encoder_precision)
    assert key in engine.cache


def test_cancel_stops_an_encode_at_its_next_block_and_keeps_nothing(engine, project):
    state = opened(engine, project)
    flag = threading.Event()
    seen = []

    def progress(fraction, text):  # the annotator presses Cancel as the first block ends
        seen.append(fraction)
        if text.startswith("encoding") and fraction > 0.1:
            flag.set()

    view = (7000, 7000, 3000, 2000)
    before, cached = engine.encodes, len(engine.cache)
    with pytest.raises(AppError, match="cancelled"):
        editing.set_prompts(engine, state, value(state, [(8000, 8000)], 1, view), SETTINGS, progress, flag)
    assert engine.encodes == before and len(engine.cache) == cached
    assert any(0.1 < f < 0.55 for f in seen)  # progress came block by block
    state = editing.set_prompts(engine, state, value(state, [(8000, 8000)], 1, view), SETTINGS)  # again: it runs
    assert state.session.basam.mask is not None and engine.encodes == before + 2


def test_commit_stores_the_field_and_brushes_at_its_resolution_and_reopen_brings_it_back(engine, project):
    state = opened(engine, project)
    view = (4000, 4000, 2560, 2048)  # a field at 1:10
    stroke = {"mode": "brush", "size": 40, "points": [[4100, 4100], [4500, 4100]]}
    state = editing.set_prompts(engine, state, value(state, [(5000, 5000)], 1, view), SETTINGS)
    field = state.session.field
    mask = state.session.basam.mask.copy()
    state = editing.commit(engine, project, state, value(state, [(5000, 5000)], 1, view, [stroke]), "tumour", SETTINGS)
    [record] = project.objects(state.image_id)
    assert record.field == field and (record.height, record.width) == field.size[::-1]
    painted = record.mask() & ~mask
    assert painted[9:12, 10:51].any() and not painted[20:].any()  # 40 level-0 px at 1:10: a 4-px line in field pixels
    assert record.provenance.prompts["points"] == [[5000.0, 5000.0]]  # prompts stay in level-0 pixels
    assert editing.fresh_value(state)["field_rev"] == 1
    layer = annotate_view.objects_layer(state, [record])
    [piece] = layer["pieces"]
    assert (piece["x"], piece["y"], piece["width"], piece["height"]) == (4000, 4000, 2560, 2048)
    assert layer["items"][0]["bbox"][0] >= 4000
    # elsewhere, then reopen: the object's field is asked for again
    state = editing.set_prompts(engine, state, value(state, [(15_000, 12_000)], 2, (14_000, 11_000, 3000, 3000)), SETTINGS)
    state = editing.select_object(state, record.id)
    state, reopened = editing.reopen_selected(engine, project, state, SETTINGS)
    assert reopened["field_rev"] == 3 and reopened["focus"] == {"x": 4000, "y": 4000, "width": 2560, "height": 2048}
    assert state.session.field == field and state.reopened == record.id


def test_the_prefetcher_leaves_slides_alone(engine, project):
    from basam_ui.web.annotate.prefetch import Prefetcher

    prefetcher = Prefetcher(engine, idle_s=0.01)
    try:
        before = engine.encodes
        resolution, configs = annotate.settings_for(engine, SETTINGS)
        prefetcher.request("vit_t", str(project.file_path(project.images()[0])), resolution, configs)
        import time

        time.sleep(1.0)
        assert engine.encodes == before and prefetcher.done == []
    finally:
        prefetcher.stop()


def test_a_large_photo_is_shown_in_tiles_and_annotated_whole(engine, tmp_path, monkeypatch):
    from PIL import Image

    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(np.full((480, 640, 3), 120, np.uint8)).save(root / "large.png")
    Image.fromarray(np.full((120, 160, 3), 120, np.uint8)).save(root / "small.png")
    monkeypatch.setattr(fields, "PHOTO_TILE_PIXELS", 100_000)  # a "large" photo here: over 0.1 MP
    with Project.open(root) as project:
        state = annotate.open_image(engine, project, annotate.start(None, "ann"), project.image_by_path("large.png").id)
        image = state.session.canvas_image
        assert "tiles" in image and "full" not in image and "fields" not in image
        assert image["tiles"]["url"] == f"basam-tiles/{state.image_id}/{project.image(state.image_id).sha256[:16]}/tiles_files"
        assert state.session.image.shape == (480, 640, 3) and state.session.fields is None  # encoded whole, as before
        state = annotate.open_image(engine, project, state, project.image_by_path("small.png").id)
        assert "full" in state.session.canvas_image and "tiles" not in state.session.canvas_image


def test_a_slides_clicks_are_decoded_on_the_server_and_the_page_is_told_why(engine, project, tmp_path):
    """decoder.js maps prompts to a whole image's embedding, not to a field's region: a slide's
    offer says the server decodes, and a browser's record for a field is not taken."""
    from basam_ui.web.common.browser_decode import BrowserDecoding

    browser = BrowserDecoding("auto", tmp_path / "decoders", lambda model: engine.segmenter(model).sam)
    state = opened(engine, project)
    offer = browser.offer(state.session)
    assert offer == {"mode": "server", "why": "a slide's fields are decoded on the server", "state": "off",
                     "url": state.session.canvas_image["url"]}  # fmt: skip
    view = (5000.0, 3000.0, 2048.0, 1500.0)
    state = editing.set_prompts(engine, state, value(state, [(6000, 3500)], 1, view), SETTINGS)
    record = {"by": "browser", "rev": 5, "keys": {}, "ms": {"sam": 1, "basam": 1, "total": 1},
              "scores": {"sam": [0.5], "basam": [0.5]}, "best": {"sam": 0, "basam": 0}}
    assert browser.claim(state.session, {**value(state, [(6000, 3500)]), "decoded": record}, SETTINGS) is None
    assert browser.server_note(state.session).why == "a slide's fields are decoded on the server"
