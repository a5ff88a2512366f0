"""DICOM in the pages' events, the API, eval and precompute (no browser): random vit_t at S=256.
An upload takes DICOM with or without extension and offers its windows; a new window reads the
image again and encodes it again (another cache key: the windowed pixels), keeps the prompts,
and objects record it; frames are selectable; `load_image` (eval, precompute) reads DICOM under
the file's first window."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

import dicoms
from basam_ui.basam.config import BASAMConfig
from basam_ui.image_io import load_image
from basam_ui.project import Project
from basam_ui.segmenter import image_hash
from basam_ui.sources import open_source
from basam_ui.web.annotate import editing
from basam_ui.web.annotate import events as annotate
from basam_ui.web.common import events as common
from basam_ui.web.common import window_events, windows
from basam_ui.web.common.engine import AppEngine
from basam_ui.web.common.session import AppError
from basam_ui.web.compare import api
from dicoms import LEAKS
from page_util import SETTINGS

STANDARD, HARDER = "linear:30000:40000", "linear:24000:16000"  # the mammogram's two windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def engine(vit_t, tmp_path) -> AppEngine:
    eng = AppEngine({"vit_t": lambda: vit_t}, max_size=1024, random_weights=True, work_dir=tmp_path / "work")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, dicoms.Made]:
    folder = tmp_path_factory.mktemp("dicoms")
    return {"mammogram": dicoms.mammogram(folder), "frames": dicoms.multiframe(folder), "jpeg": dicoms.jpeg_photo(folder)}


def calls(engine: AppEngine) -> int:
    return engine.segmenter("vit_t").encoder_calls


def test_an_upload_takes_dicom_without_extension_and_offers_its_windows(engine, made, tmp_path):
    bare = shutil.copy(made["mammogram"].path, tmp_path / "IM000017")  # as a scanner's export names it
    session = common.compute(engine, common.upload_image(engine, str(bare)), SETTINGS)
    assert [key for _, key in session.windows] == [STANDARD, HARDER, "auto:0.5-99.5", "full"]
    assert [label for label, _ in session.windows][:2] == ["STANDARD (C 30000, W 40000)", "HARDER (C 24000, W 16000)"]
    assert session.window["key"] == STANDARD and windows.control_value(session) == STANDARD
    assert session.canvas_image["window"] == {"center": 30000.0, "width": 40000.0, "inverted": True,
                                              "label": "STANDARD (C 30000, W 40000)"}
    with open_source(made["mammogram"].path) as source:
        np.testing.assert_array_equal(session.image, source.read())
    status = common.status_text(session).replace("\\", "")  # as Markdown shows it
    assert "window STANDARD (C 30000, W 40000)" in status and "modality MG" in status and "pixel 0.06364" in status
    assert not [leak for leak in LEAKS if leak in status]
    colour = common.upload_image(engine, str(made["jpeg"].path))
    assert colour.windows == () and colour.window is None and "window" not in colour.canvas_image
    assert windows.control_choices(colour) == []


def test_a_new_window_encodes_again_under_another_key_keeps_the_prompts_and_comes_back_from_the_cache(engine, made):
    first = common.compute(engine, common.upload_image(engine, str(made["mammogram"].path)), SETTINGS)
    assert calls(engine) == 2 and first.sam.source == "computed"
    value = {**common.canvas_value(first.canvas_image), "points": [{"x": 90, "y": 140, "label": 1, "i": 1}], "rev": 1}
    prompted = common.set_prompts(engine, first, value, SETTINGS)
    harder = window_events.reread(engine, prompted, window=HARDER)
    assert harder.prompts == prompted.prompts and harder.sam is None and harder.window["key"] == HARDER
    assert harder.canvas_image["keep_view"] and harder.canvas_image["url"] != first.canvas_image["url"]
    assert window_events.canvas_value_for(harder)["points"][0]["x"] == 90
    assert not np.array_equal(harder.image, first.image) and image_hash(harder.image) != image_hash(first.image)
    harder = common.compute(engine, harder, SETTINGS)
    assert calls(engine) == 4 and harder.sam.source == "computed" and harder.sam.mask is not None
    assert "encoded in" in common.status_text(harder) and "cache miss" in common.status_text(harder)
    vanilla = BASAMConfig.vanilla()
    one, two = (engine.embed("vit_t", s.image, 256, vanilla).embedding for s in (first, harder))
    assert one.shape == two.shape and not np.allclose(one.numpy(), two.numpy())
    back = common.compute(engine, window_events.reread(engine, harder, window=STANDARD), SETTINGS)
    assert calls(engine) == 4 and back.sam.source == "memory"  # each window keeps its embeddings


def test_typed_and_dragged_windows(made):
    assert windows.requested_window(STANDARD, None, None) == STANDARD
    assert windows.requested_window(windows.CUSTOM, 28000, 9000) == "linear:28000:9000"
    assert windows.dragged_window({"window_request": {"center": 100.5, "width": 50}}) == "linear:100.5:50"
    with pytest.raises(AppError, match="window width must be at least 1"):
        windows.requested_window(windows.CUSTOM, 100, 0.5)
    with pytest.raises(AppError, match="type a level and a width"):
        windows.requested_window(windows.CUSTOM, None, 100)
    with pytest.raises(AppError, match="malformed"):
        windows.dragged_window({"window_request": [1, 2]})


def test_frames_are_selectable_and_the_api_takes_window_and_frame(engine, made):
    session = common.upload_image(engine, str(made["frames"].path))
    assert (session.frame, session.frames) == (0, 3)
    third = window_events.reread(engine, session, frame=2)
    with open_source(made["frames"].path, frame=2) as source:
        np.testing.assert_array_equal(third.image, source.read())
    assert third.frame == 2 and "frame 3 of 3" in windows.facts_line(third)
    with pytest.raises(AppError, match="has 3 frame"):
        window_events.reread(engine, session, frame=5)
    _, _, info = api.segment(engine, str(made["frames"].path), "[[60, 40, 1]]", "", 256, window="linear:2048:1000",
                             frame=2)
    assert info["frame"] == 2 and info["window"]["key"] == "linear:2048:1000" and info["image_size"] == [128, 96]
    with pytest.raises(AppError, match="frame must be a frame number"):
        api.segment(engine, str(made["frames"].path), "[[60, 40, 1]]", "", 256, frame="second")


def test_annotate_objects_record_the_window_they_were_made_under(engine, made, tmp_path):
    root = tmp_path / "scans"
    root.mkdir()
    shutil.copy(made["mammogram"].path, root / "mammogram.dcm")
    with Project.open(root, labels=["mass"]) as project:
        state = annotate.encode(engine, annotate.first_image(engine, project, annotate.start(None, "ana")), SETTINGS)
        assert state.session.window["key"] == STANDARD
        state, value = annotate.set_window(engine, state, HARDER)
        assert value["image"]["url"] == state.session.canvas_image["url"]
        assert annotate.set_window(engine, state, HARDER) == (state, None)  # the window it has: nothing to do
        state = annotate.encode(engine, state, SETTINGS)
        prompt = {**value, "points": [{"x": 90, "y": 140, "label": 1, "i": 1}], "rev": 1}
        state = editing.set_prompts(engine, state, prompt, SETTINGS)
        state = editing.commit(engine, project, state, prompt, "mass", SETTINGS)
        [record] = project.objects(state.image_id)
        assert record.provenance.window["key"] == HARDER and record.provenance.window["name"] == "HARDER"
        assert record.provenance.window["center"] == 24000.0


def test_load_image_eval_and_precompute_read_dicom(made, tmp_path, vit_t):
    from basam_ui.cache import EmbeddingCache
    from basam_ui.evaluation.datasets import pair_folder
    from basam_ui.evaluation.evaluate import run_eval
    from basam_ui.jobs.precompute import list_images, make_jobs, run_jobs, settings_for
    from basam_ui.segmenter import Segmenter

    with open_source(made["mammogram"].path, window=STANDARD) as source:
        np.testing.assert_array_equal(load_image(made["mammogram"].path), source.read())  # the first window
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    shutil.copy(made["mammogram"].path, images / "case1")  # no extension: found by its preamble
    mask = np.zeros((320, 256), np.uint8)
    mask[120:150, 70:100] = 255
    Image.fromarray(mask).save(masks / "case1.png")
    pairing = pair_folder(images, masks)
    assert [p.image.name for p in pairing.pairs] == ["case1"]
    result = run_eval(Segmenter(vit_t), pairing.pairs, [256], ["box"], {"vanilla": BASAMConfig.vanilla()},
                      tmp_path / "eval")
    assert [(r["height"], r["width"]) for r in result.rows] == [(320, 256)] and 0 <= float(result.rows[0]["mae"]) <= 1
    paths = list_images([images])
    assert paths == [(images / "case1").resolve()]
    summary = run_jobs(make_jobs(paths, [256], settings_for(["vanilla"], 0.1)),
                       Segmenter(vit_t, cache=EmbeddingCache(0, tmp_path / "cache")))
    assert (summary.encoded, summary.skipped, summary.failed) == (1, 0, 0)
    reader = Segmenter(vit_t, cache_dir=tmp_path / "cache")
    assert reader.embed(load_image(paths[0]), 256, BASAMConfig.vanilla()).source == "disk"
