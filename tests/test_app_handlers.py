"""The app's event handlers without a browser: a random-weight vit_t on the CPU, a real
2048 x 1365 photograph, and small encoder sizes (S = 256 / 320) so the file stays quick."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from basam_ui.prompts import Prompts
from basam_ui.web.common import events as common
from basam_ui.web.compare import api
from basam_ui.web.compare import events as compare
from basam_ui.web.common.engine import AppEngine
from basam_ui.web.common.session import DISPLAY_MAX_SIDE, AppError, Session, Settings
from photos import CORGI

PHOTO = CORGI
W, H = 2048, 1365
SMALL = 256  # encoder size for most tests: fast on a CPU


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def engine(vit_t, tmp_path) -> AppEngine:
    """A fresh engine (own cache, own encoder count) around the session's random vit_t:
    for the tests that count encoder passes."""
    eng = AppEngine({"vit_t": lambda: vit_t}, max_size=1024, random_weights=True, work_dir=tmp_path / "work")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def warm(page_engine):
    return page_engine


@pytest.fixture(scope="module")
def warm_session(warm) -> Session:
    """The photograph uploaded to `warm` (sessions are immutable, so tests can share it)."""
    return common.compute(warm, common.upload_image(warm, str(PHOTO)), settings())


def settings(**changes) -> Settings:
    return replace(Settings("vit_t", SMALL, nsf=True, bmam=True, beta=0.1, multimask=False), **changes)


def calls(engine: AppEngine) -> int:
    return engine.segmenter("vit_t").encoder_calls


def canvas_with(session: Session, points=(), boxes=()) -> dict:
    """A PromptCanvas value as the browser sends it, numbering prompts in drawing order."""
    value = common.canvas_value(session.canvas_image)
    i = 0
    for x, y, label in points:
        i += 1
        value["points"].append({"x": x, "y": y, "label": label, "i": i})
    for x0, y0, x1, y1 in boxes:
        i += 1
        value["boxes"].append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "i": i})
    return value


@pytest.fixture
def uploaded(engine) -> Session:
    """The photograph uploaded and encoded, as the page's two upload steps do."""
    return common.compute(engine, common.upload_image(engine, str(PHOTO)), settings())


# -- upload -------------------------------------------------------------------------------


def test_upload_keeps_full_resolution_and_encodes_each_side_once(engine, uploaded):
    assert uploaded.image.shape == (H, W, 3)  # the model sees every pixel
    assert uploaded.canvas_image["width"] == W and uploaded.canvas_image["height"] == H
    assert max(uploaded.display.shape[:2]) == DISPLAY_MAX_SIDE  # only the display copy shrinks
    assert uploaded.canvas_image["url"].startswith("gradio_api/file=")
    assert Path(uploaded.canvas_image["url"].split("=", 1)[1]).is_file()
    assert uploaded.sam.source == uploaded.basam.source == "computed"
    assert uploaded.sam.config.is_vanilla and not uploaded.basam.config.is_vanilla
    assert uploaded.sam.masks is None  # no prompt yet: encoded (cache warm), nothing decoded
    assert calls(engine) == 2
    shown = compare.view(uploaded)
    assert shown.masks == {"url": uploaded.canvas_image["url"], "rev": 0, "png": None}  # nothing to draw yet
    assert "2048x1365" in shown.status


def test_full_resolution_copy_is_written_off_the_click_path(engine, uploaded):
    """The canvas loads it when zoomed past the display copy: a lossless copy of the image."""
    import time

    full = Path(uploaded.canvas_image["full"].split("=", 1)[1])
    assert full.parent == uploaded.folder and full != Path(uploaded.canvas_image["url"].split("=", 1)[1])
    deadline = time.monotonic() + 60
    while not full.is_file() and time.monotonic() < deadline:  # written by a background thread
        time.sleep(0.1)
    with Image.open(full) as copy:
        assert copy.format == "PNG" and np.array_equal(np.asarray(copy.convert("RGB")), uploaded.image)


def test_non_image_upload_is_a_readable_error_and_keeps_the_session(warm, warm_session, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image")
    with pytest.raises(AppError) as err:
        common.upload_image(warm, str(fake))
    assert "notes.png" in str(err.value) and "image" in str(err.value).lower()
    assert str(tmp_path) not in str(err.value)  # names the file, not the server's path


def test_image_over_the_pixel_limit_is_refused_before_decoding(vit_t, tmp_path):
    engine = AppEngine({"vit_t": lambda: vit_t}, max_size=1024, max_pixels=1_000_000, work_dir=tmp_path / "w")
    with pytest.raises(AppError) as err:
        common.upload_image(engine, str(PHOTO))
    assert "over the limit" in str(err.value) and "2048x1365" in str(err.value)
    assert engine.loaded() == []  # refused before any model work


# -- prompts and reuse ----------------------------------------------------------------------


def test_ten_clicks_encode_nothing_and_a_beta_change_encodes_once(engine, uploaded):
    session = uploaded
    points = []
    for k in range(10):
        points.append((200.0 + 150 * k, 300.0 + 60 * k, 1 if k % 3 else 0))
        session = common.set_prompts(engine, session, canvas_with(session, points), settings())
        assert session.sam.source == session.basam.source == "memory"
        assert session.sam.masks.shape == (1, H, W) and session.basam.masks.shape == (1, H, W)
    assert calls(engine) == 2  # one pass per side, at upload
    session = common.compute(engine, session, settings(beta=0.5))
    assert calls(engine) == 3
    assert session.sam.source == "memory" and session.basam.source == "computed"
    assert session.basam.config.beta == 0.5 and session.basam.masks is not None


def test_nsf_and_bmam_toggles_reencode_only_the_basam_side(engine, uploaded):
    session = common.set_prompts(engine, uploaded, canvas_with(uploaded, [(1000, 700, 1)]), settings())
    for changed, expected_calls in (
        (settings(nsf=False), 3),  # BM-AM only: a new BA-SAM embedding
        (settings(bmam=False), 4),  # NSF only: another
        (settings(), 4),  # both on again: cached
    ):
        session = common.compute(engine, session, changed)
        assert calls(engine) == expected_calls
        assert session.sam.source == "memory"  # the vanilla key never changes
        assert session.basam.config == changed.basam_config and session.basam.masks is not None
    # NSF and BM-AM both off is plain SAM: the BA-SAM side is served by the SAM embedding
    session = common.compute(engine, session, settings(nsf=False, bmam=False))
    assert calls(engine) == 4 and np.array_equal(session.sam.mask, session.basam.mask)


def test_beta_is_ignored_while_bmam_is_off(engine, uploaded):
    common.compute(engine, uploaded, settings(bmam=False))
    before = calls(engine)
    session = common.compute(engine, uploaded, settings(bmam=False, beta=2.0))
    assert calls(engine) == before and session.basam.source == "memory"


def test_size_change_encodes_each_side_once(engine, uploaded):
    session = common.set_prompts(engine, uploaded, canvas_with(uploaded, [(1000, 700, 1)]), settings())
    session = common.compute(engine, session, settings(size="320"))
    assert calls(engine) == 4
    assert session.sam.size == session.basam.size == 320
    assert session.sam.source == session.basam.source == "computed"
    session = common.compute(engine, session, settings(size=SMALL))  # back: both cached
    assert calls(engine) == 4 and session.sam.source == session.basam.source == "memory"


def test_native_size_follows_the_image_capped_at_max_size(vit_t, tmp_path):
    engine = AppEngine({"vit_t": lambda: vit_t}, max_size=512, work_dir=tmp_path / "w")
    assert engine.size_choices() == ["native"] and engine.default_size == "native"  # 1024 > --max-size
    session = common.compute(engine, common.upload_image(engine, str(PHOTO)), settings(size="native", bmam=False, nsf=False))
    assert session.sam.size == 512  # the long side 2048, capped at --max-size
    with pytest.raises(AppError, match="limit of 512"):
        common.compute(engine, session, settings(size=1024))


def test_points_boxes_undo_and_clear(warm, warm_session):
    before = calls(warm)
    value = canvas_with(warm_session, [(1000, 700, 1), (300, 200, 0)], [(600, 300, 1500, 1200), (800, 400, 1300, 1000)])
    prompts = Prompts.from_canvas(value)
    assert prompts.points == ((1000, 700, 1), (300, 200, 0))
    assert prompts.box == (800, 400, 1300, 1000)  # SAM takes one box: the last one drawn
    session = common.set_prompts(warm, warm_session, value, settings())
    assert session.prompts == prompts and session.sam.masks is not None
    assert "last box" in compare.view(session).status

    # undo happens in the browser (the canvas drops its most recent prompt and sends the rest)
    undone = {**value, "boxes": value["boxes"][:1], "rev": 5}
    session = common.set_prompts(warm, session, undone, settings())
    assert session.prompts.box == (600, 300, 1500, 1200)
    assert session.rev == 5 and compare.view(session).masks["rev"] == 5  # the masks say which prompts they are for

    cleared = {**value, "points": [], "boxes": [], "rev": 6}
    session = common.set_prompts(warm, session, cleared, settings())
    assert session.sam.masks is None and session.basam.masks is None
    assert compare.view(session).masks["png"] is None  # nothing drawn over the image
    assert calls(warm) == before  # prompts, undo and clear only decode


def test_masks_sent_to_the_canvas_decode_to_exactly_the_exported_masks(warm, warm_session):
    """Both masks travel at full resolution in one 4-bit PNG; what the browser gets back
    from it is, pixel for pixel, what Download exports (also for a picked candidate)."""
    import base64
    import io

    from basam_ui.web.common import render

    session = common.set_prompts(warm, warm_session, canvas_with(warm_session, [(1000, 700, 1), (400, 300, 0)]), settings(multimask=True))
    session = compare.pick_candidate(session, "SAM", (session.sam.choice + 1) % 3)
    sent = compare.view(session).masks
    assert (sent["width"], sent["height"]) == (W, H) and sent["url"] == session.canvas_image["url"]
    header, data = sent["png"].split(",", 1)
    assert header == "data:image/png;base64"
    png = base64.b64decode(data)
    assert len(png) < W * H / 16  # compact: far under a byte per 16 pixels here
    sam, basam = render.unpack_masks(png)
    for side, got in (("SAM", sam), ("BA-SAM", basam)):
        exported = np.array(Image.open(compare.export_mask_file(warm, session, side, "PNG"))) > 0
        assert got.shape == exported.shape and np.array_equal(got, exported)
    assert np.array_equal(sam, session.sam.mask)  # the picked candidate, not the best-scored one
    # the outline bits: inside pixels with a 4-neighbour outside, for each side
    with Image.open(io.BytesIO(png)) as image:
        values = np.asarray(image)
    for bit, mask in ((4, sam), (8, basam)):
        edge = (values & bit) > 0
        assert not (edge & ~mask).any() and edge.any() == (mask.any() and not mask.all())
    assert sent["timings"]["prepare_ms"] >= 0 and sent["timings"]["decode_sam_ms"] > 0


def test_a_box_alone_and_points_outside_the_image(warm, warm_session):
    session = common.set_prompts(warm, warm_session, canvas_with(warm_session, boxes=[(500, 300, 1600, 1200)]), settings())
    assert session.sam.masks.shape == (1, H, W)
    # coordinates past the border (a canvas clamps them; a hand-made request may not) are clipped
    session = common.set_prompts(warm, warm_session, canvas_with(warm_session, [(-50, 700, 1), (W + 500, H + 9, 1)]), settings())
    assert session.sam.masks.shape == (1, H, W)


def test_bad_prompt_values_from_the_browser_are_refused(warm, warm_session):
    value = canvas_with(warm_session, [(1000, 700, 1)])
    value["points"][0]["label"] = 7
    with pytest.raises(AppError, match="label"):
        common.set_prompts(warm, warm_session, value, settings())
    value["points"][0].update(label=1, x=float("nan"))
    with pytest.raises(AppError, match="finite"):
        common.set_prompts(warm, warm_session, value, settings())


def test_a_prompt_event_for_an_older_image_is_ignored(warm, warm_session):
    value = canvas_with(warm_session, [(1000, 700, 1)])
    value["image"] = {**value["image"], "url": "gradio_api/file=/elsewhere/display.jpg"}
    assert common.set_prompts(warm, warm_session, value, settings()) is warm_session


def test_multimask_lists_three_candidates_and_the_pick_is_used(warm, warm_session):
    value = canvas_with(warm_session, [(1000, 700, 1)])
    session = common.set_prompts(warm, warm_session, value, settings(multimask=True))
    for result in (session.sam, session.basam):
        assert result.masks.shape == (3, H, W)
        assert result.choice == int(np.argmax(result.scores))  # default: highest predicted IoU
    shown = compare.view(session)
    assert [index for _, index in shown.sam_candidates] == [0, 1, 2]
    assert sum("(best)" in label for label, _ in shown.basam_candidates) == 1
    assert shown.sam_choice == session.sam.choice

    other = (session.basam.choice + 1) % 3
    picked = compare.pick_candidate(session, "BA-SAM", other)
    assert picked.basam.choice == other and picked.sam.choice == session.sam.choice
    exported = compare.export_mask_file(warm, picked, "BA-SAM", "PNG")
    assert np.array_equal(np.array(Image.open(exported)) > 0, picked.basam.masks[other])
    assert common.mask_iou(picked) == pytest.approx(
        np.count_nonzero(picked.sam.mask & picked.basam.mask) / np.count_nonzero(picked.sam.mask | picked.basam.mask)
    )
    with pytest.raises(AppError, match="3 candidates"):
        compare.pick_candidate(session, "SAM", 3)
    single = common.compute(warm, session, settings(multimask=False))
    assert single.sam.masks.shape == (1, H, W) and compare.view(single).sam_candidates == []


def test_a_click_makes_only_the_shown_candidate_at_full_resolution(warm, warm_session, monkeypatch):
    """The others are made when picked, and equal what the every-candidate path gives."""
    from basam_ui.decoder import logits_to_image
    from basam_ui.web.common.session import CandidateMasks

    resized = []
    monkeypatch.setattr("basam_ui.decoder.logits_to_image", lambda lr, *a: resized.append(len(lr)) or logits_to_image(lr, *a))
    session = common.set_prompts(warm, warm_session, canvas_with(warm_session, [(1000, 700, 1)]), settings(multimask=True))
    assert resized == [1, 1]  # one candidate per side
    result = session.basam
    assert isinstance(result.masks, CandidateMasks) and set(result.masks._full) == {result.choice}
    segmenter = warm.segmenter("vit_t")
    embedding = segmenter.embed(session.image, SMALL, result.config)
    every, scores, _ = segmenter.predict_with(embedding, np.array([[1000, 700]]), np.array([1]), full_res="all")
    assert np.allclose(scores, result.scores)
    other = (result.choice + 1) % 3
    picked = compare.pick_candidate(session, "BA-SAM", other)
    assert np.array_equal(picked.basam.mask, every[other]) and np.array_equal(result.masks[result.choice], every[result.choice])
    assert np.array_equal(np.stack(list(result.masks)), every) and result.masks.shape == every.shape
    import pickle

    copy = pickle.loads(pickle.dumps(result.masks))  # ZeroGPU's worker returns it pickled
    assert np.array_equal(copy[2], every[2])


# -- ground truth ---------------------------------------------------------------------------


def test_ground_truth_metrics_per_panel(warm, warm_session, tmp_path):
    from basam_ui import metrics

    session = common.set_prompts(warm, warm_session, canvas_with(warm_session, [(1000, 700, 1)]), settings())
    gt = np.zeros((H, W), dtype=np.uint8)
    gt[400:1000, 600:1500] = 255
    path = tmp_path / "gt.png"
    Image.fromarray(gt).save(path)
    before = calls(warm)
    with_gt = common.compute(warm, compare.set_ground_truth(warm, session, str(path)), settings())
    assert calls(warm) == before  # metrics need a decode, never an encode
    segmenter = warm.segmenter("vit_t")
    for result, config in ((with_gt.sam, with_gt.sam.config), (with_gt.basam, with_gt.basam.config)):
        emb = segmenter.embed(with_gt.image, SMALL, config)
        logits, _, _ = segmenter.predict_with(emb, np.array([[1000, 700]]), np.array([1]), multimask_output=False, return_logits=True)
        assert result.gt_mae[0] == pytest.approx(metrics.mae(metrics.probability(logits[0]), gt > 0), abs=1e-6)
        assert result.gt_iou[0] == pytest.approx(metrics.iou(logits[0] > 0, gt > 0))
    status = compare.view(with_gt).status
    assert "MAE" in status and "gt.png" in status

    removed = common.compute(warm, compare.set_ground_truth(warm, with_gt, None), settings())
    assert removed.gt is None and removed.sam.gt_mae is None and "MAE" not in compare.view(removed).status

    Image.fromarray(gt[:500, :500]).save(tmp_path / "small.png")
    with pytest.raises(AppError, match="same size"):
        compare.set_ground_truth(warm, session, str(tmp_path / "small.png"))


# -- export --------------------------------------------------------------------------------


def test_exports_are_full_resolution_with_metadata(warm, warm_session):
    from pycocotools import mask as mask_utils

    from basam_ui.export import read_png_metadata

    value = canvas_with(warm_session, [(1000, 700, 1), (100, 100, 0)], [(500, 300, 1600, 1200)])
    session = common.set_prompts(warm, warm_session, value, settings(beta=0.35))
    assert compare.export_mask_file(warm, warm_session, "SAM", "PNG") is None  # nothing to export yet

    png = compare.export_mask_file(warm, session, "BA-SAM", "PNG")
    assert png.is_file() and Image.open(png).size == (W, H)
    meta = read_png_metadata(png)
    assert meta["model_type"] == "vit_t" and meta["input_size"] == SMALL
    assert (meta["nsf"], meta["bmam"], meta["beta"]) == (True, True, 0.35)
    assert meta["prompts"] == {"points": [[1000, 700], [100, 100]], "labels": [1, 0], "box": [500, 300, 1600, 1200]}

    rle = json.loads(compare.export_mask_file(warm, session, "SAM", "COCO RLE (JSON)").read_text())
    decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), session.sam.mask)
    assert rle["metadata"]["nsf"] is False and rle["metadata"]["beta"] == 0.0  # the SAM side is vanilla

    polygons = json.loads(compare.export_mask_file(warm, session, "SAM", "Polygons (JSON)").read_text())
    assert polygons["size"] == [H, W] and isinstance(polygons["polygons"], list)
    assert polygons["metadata"]["input_size"] == SMALL

    with pytest.raises(AppError, match="format"):
        compare.export_mask_file(warm, session, "SAM", "tiff")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encoder_precision_shows_in_status_api_and_exports(vit_t, tmp_path, precision):
    from basam_ui.export import read_png_metadata

    eng = AppEngine(
        {"vit_t": lambda: vit_t}, max_size=1024, random_weights=True, work_dir=tmp_path / "work", precision=precision
    )
    try:
        session = common.compute(eng, common.upload_image(eng, str(PHOTO)), settings())
        session = common.set_prompts(eng, session, canvas_with(session, [(1000, 700, 1)]), settings())
        assert session.sam.precision == session.basam.precision == precision
        assert common.status_text(session).count(f"ms · {precision}") == 2
        assert read_png_metadata(compare.export_mask_file(eng, session, "BA-SAM", "PNG"))["precision"] == precision
        _, _, info = api.segment(eng, str(PHOTO), "[[1000, 700, 1]]", "", SMALL)
        assert info["sam"]["precision"] == info["basam"]["precision"] == precision
    finally:
        eng.close()


# -- failures and isolation ------------------------------------------------------------------


def test_out_of_memory_is_a_readable_message_and_the_app_recovers(warm, warm_session, monkeypatch):
    import torch

    import basam_ui.segmenter

    session = common.set_prompts(warm, warm_session, canvas_with(warm_session, [(1000, 700, 1)]), settings())
    real_encode = basam_ui.segmenter.encode

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB")

    monkeypatch.setattr(basam_ui.segmenter, "encode", no_memory)
    with pytest.raises(AppError) as err:
        common.compute(warm, session, settings(size="320"))
    assert "out of memory" in str(err.value) and "smaller" in str(err.value)
    # a fresh upload's encoding fails the same way; its image stays (the upload step passed)
    fresh = common.upload_image(warm, str(PHOTO))
    with pytest.raises(AppError, match="out of memory"):
        common.compute(warm, fresh, settings(size="320"))

    monkeypatch.setattr(basam_ui.segmenter, "encode", real_encode)
    later = common.compute(warm, session, settings(size="320"))
    assert later.sam.size == 320 and later.sam.masks is not None


def test_two_sessions_do_not_share_prompts_but_share_the_cache(engine, uploaded):
    first = common.set_prompts(engine, uploaded, canvas_with(uploaded, [(1000, 700, 1)]), settings())
    second = common.compute(engine, common.upload_image(engine, str(PHOTO)), settings())
    assert calls(engine) == 2  # the second user's upload is served by the shared cache
    assert second.sam.source == "memory" and second.prompts.empty and second.sam.masks is None
    second = common.set_prompts(engine, second, canvas_with(second, [(300, 300, 0), (500, 900, 1)]), settings())
    assert first.prompts.points == ((1000, 700, 1),)
    assert second.prompts.points == ((300, 300, 0), (500, 900, 1))
    assert first.folder != second.folder


# -- API, page and command ------------------------------------------------------------------


def test_segment_api_returns_both_masks_and_info(engine):
    sam_png, basam_png, info = api.segment(engine, str(PHOTO), "[[1000, 700, 1], [5000, -20, 0]]", "", SMALL)
    assert Image.open(sam_png).size == Image.open(basam_png).size == (W, H)
    assert info["image_size"] == [W, H] and info["input_size"] == SMALL
    assert 0.0 <= info["iou_sam_basam"] <= 1.0
    assert info["sam"]["cache"] == "computed" and info["basam"]["setting"] == {"nsf": True, "bmam": True, "beta": 0.1}
    _, _, again = api.segment(engine, str(PHOTO), "[[900, 650, 1]]", "[400, 300, 1500, 1200]", str(SMALL))
    assert again["sam"]["cache"] == again["basam"]["cache"] == "memory"
    for points, box, pattern in (("[[1, 2, 3]]", "", "label"), ("nope", "", "JSON"), ("", "", "at least one"), ("", "[1, 2]", "box")):
        with pytest.raises(AppError, match=pattern):
            api.segment(engine, str(PHOTO), points, box, SMALL)
    with pytest.raises(AppError, match="limit"):
        api.segment(engine, str(PHOTO), "[[1, 2, 1]]", "", 2048)


def test_page_has_the_documented_elements(engine):
    from basam_ui.web.common.page import concurrency_limit
    from basam_ui.web.compare.page import build_app

    demo = build_app(engine)
    ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {
        "upload", "canvas", "click-mode", "undo", "clear", "model", "size", "nsf", "bmam", "beta", "multimask",
        "prompt-help", "status", "sam-candidates", "basam-candidates", "gt-upload",
        "export-side", "export-format", "download", "weights-warning",
    } <= ids
    warning = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "weights-warning")
    assert warning.visible and "meaningless" in warning.value
    assert "segment" in {fn.api_name for fn in demo.fns.values()}
    assert concurrency_limit("cpu") == 1 and concurrency_limit("cuda:0") > 1
    size = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "size")
    assert [value for _, value in size.choices] == ["1024", "native"] and size.value == "1024"


def _args(tmp_path, *argv) -> argparse.Namespace:
    from basam_ui.cli import build_parser

    return build_parser().parse_args(["--checkpoint-dir", str(tmp_path / "ckpt"), *argv])


def test_command_reports_a_failed_download_without_a_traceback(tmp_path, monkeypatch, capsys):
    from basam_ui import checkpoints
    from basam_ui.web.compare import serve as server

    def offline(model_type, directory=None, **kwargs):
        raise checkpoints.DownloadError(f"Could not download the {model_type} checkpoint (offline).")

    monkeypatch.setattr(checkpoints, "download", offline)
    assert server.main(_args(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "Could not download the vit_t checkpoint" in err and "Traceback" not in err


def test_command_reports_a_bad_checkpoint(tmp_path, capsys):
    from basam_ui.web.compare import serve as server

    bad = tmp_path / "mobile_sam.pt"
    bad.write_bytes(b"not a checkpoint")
    assert server.main(_args(tmp_path, "--checkpoint", str(bad))) == 1
    assert "mobile_sam.pt" in capsys.readouterr().err


def test_checkpoints_found_populate_the_models_and_load_lazily(tmp_path, checkpoint_files):
    from basam_ui.web.common import serve as common_serve

    folder = checkpoint_files["vit_t"].parent
    engine = common_serve.engine_from_args(_args(tmp_path, "--checkpoint-dir", str(folder), "--device", "cpu"))
    try:
        assert engine.model_types == ["vit_t", "vit_b"] and engine.default_model == "vit_t"
        assert engine.loaded() == ["vit_t"]  # the default at start, the others on first use
        assert not engine.random_weights
        engine.segmenter("vit_b")
        assert engine.loaded() == ["vit_t", "vit_b"]
    finally:
        engine.close()


def test_space_entry_point_exposes_the_demo(monkeypatch, tmp_path):
    import runpy
    import shutil

    import gradio as gr

    monkeypatch.setenv("BASAM_UI_RANDOM_WEIGHTS", "1")
    monkeypatch.setenv("BASAM_UI_CHECKPOINT_DIR", str(tmp_path / "empty"))  # nothing to download with random weights
    found = runpy.run_path(str(Path(__file__).resolve().parents[1] / "app.py"), run_name="space")
    try:
        assert isinstance(found["demo"], gr.Blocks)
        warning = next(b for b in found["demo"].blocks.values() if getattr(b, "elem_id", None) == "weights-warning")
        assert warning.visible
        assert found["launch_options"]["max_file_size"]
    finally:
        shutil.rmtree(found["launch_options"]["allowed_paths"][0], ignore_errors=True)


def test_space_without_a_checkpoint_stops_with_the_download_message(monkeypatch, tmp_path):
    from basam_ui import checkpoints
    from basam_ui.web.compare import serve as server

    def offline(model_type, directory=None, **kwargs):
        raise checkpoints.DownloadError("Could not download the MobileSAM checkpoint (offline).")

    monkeypatch.delenv("BASAM_UI_RANDOM_WEIGHTS", raising=False)
    monkeypatch.setenv("BASAM_UI_CHECKPOINT_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(checkpoints, "download", offline)
    with pytest.raises(SystemExit, match="Could not download the MobileSAM checkpoint"):
        server.space_app()

