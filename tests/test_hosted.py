"""Hosted model work (ZeroGPU): with a forking stand-in for `spaces.GPU` (tests/fork_gpu.py),
each image is still encoded once per (model, S, setting), counted in this (the main)
process, and the masks are those of the unwrapped path; only encodes ask for the GPU: clicks
(the page's and the API's) are decoded on the CPU here (or in the browser: then the page
sends no decode at all, test_decode_page_browser.py); a GPU out-of-memory inside the worker
becomes a message naming a smaller size. With the real `spaces` package and no ZeroGPU
environment the app runs as anywhere. Random vit_t on the CPU, small S."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fork_gpu
from browser import compare_page
from basam_ui.web.common import events as common
from basam_ui.web.compare import api
from basam_ui.web.common.engine import AppEngine
from basam_ui.web.common.gpu_work import encode_duration
from basam_ui.web.common.session import AppError, Session, Settings
from photos import CORGI

PHOTO = CORGI
SMALL = 256
POINTS = "[[1000, 700, 1], [300, 250, 0]]"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def settings(**changes) -> Settings:
    return replace(Settings("vit_t", SMALL, nsf=True, bmam=True, beta=0.1), **changes)


def make_engine(vit_t, folder: Path, gpu=None) -> AppEngine:
    return AppEngine({"vit_t": lambda: vit_t}, max_size=2048, random_weights=True, work_dir=folder, gpu=gpu)


def canvas_with(session: Session, points) -> dict:
    value = common.canvas_value(session.canvas_image)
    value["points"] = [{"x": x, "y": y, "label": label, "i": i} for i, (x, y, label) in enumerate(points, start=1)]
    return value


def events(engine: AppEngine) -> list[Session]:
    """Upload, 10 prompt events, a beta change: the sessions after each event."""
    session = common.compute(engine, common.upload_image(engine, str(PHOTO)), settings())
    sessions, points = [session], []
    for k in range(10):
        points.append((200.0 + 150 * k, 300.0 + 60 * k, 1 if k % 3 else 0))
        session = common.set_prompts(engine, session, canvas_with(session, points), settings())
        sessions.append(session)
    sessions.append(common.compute(engine, session, settings(beta=0.5)))
    return sessions


@pytest.fixture(scope="module")
def served(vit_t, tmp_path_factory):
    """An engine whose model work forks (the stand-in), serving the app in this process."""
    engine = make_engine(vit_t, tmp_path_factory.mktemp("forked"), gpu=fork_gpu.GPU)
    with compare_page(engine) as url:
        yield engine, url


def segment(client, **kwargs):
    from gradio_client import handle_file

    return client.predict(image=handle_file(str(PHOTO)), **{"points": POINTS, "size": str(SMALL), **kwargs}, api_name="/segment")


def test_forked_model_work_encodes_once_per_side_and_setting(served, vit_t, tmp_path):
    from gradio_client import Client

    engine, url = served
    fork_gpu.requests.clear()
    forked = events(engine)
    plain_engine = make_engine(vit_t, tmp_path / "plain")
    try:
        plain = events(plain_engine)
        # the same masks as without the fork
        for a, b in zip(forked[1:], plain[1:]):
            for side in ("SAM", "BA-SAM"):
                assert np.array_equal(a.side(side).masks, b.side(side).masks)
                assert np.allclose(a.side(side).scores, b.side(side).scores)
        assert forked[-1].basam.source == "computed" and all(s.sam.source == "memory" for s in forked[1:])
        # SAM, BA-SAM beta 0.1, BA-SAM beta 0.5: three encodes, all in the forked workers
        assert engine.encodes == 3 == plain_engine.encodes
        assert engine.segmenter("vit_t").encoder_calls == 0  # none ran in this process
        # cached on the CPU, in this process's own memory (not moved into shared memory by the pickler)
        assert all(emb.device.type == "cpu" and not emb.is_shared() for emb in engine.cache._items.values())
        kinds = [name for name, _ in fork_gpu.requests]
        assert kinds == ["encode_here"] * 3  # the 2 x 11 decodes ran here, on the CPU
        assert engine.decodes == 2 * 11

        client = Client(url, verbose=False)
        fork_gpu.requests.clear()
        sam_png, basam_png, info = segment(client, beta=0.3)  # a new BA-SAM setting: one encode
        assert (info["sam"]["cache"], info["basam"]["cache"]) == ("memory", "computed")
        _, _, again = segment(client, beta=0.3)
        assert again["sam"]["cache"] == again["basam"]["cache"] == "memory"
        assert engine.encodes == 4 and engine.segmenter("vit_t").encoder_calls == 0
        # the durations asked: the wrapped function's own arguments decide them
        assert fork_gpu.requests == [("encode_here", encode_duration("vit_t", None, SMALL, None))]

        # the API's masks equal the unwrapped path's
        plain_sam, plain_basam, _ = api.segment(plain_engine, str(PHOTO), POINTS, "", SMALL, beta=0.3)
        for served_png, plain_png in ((sam_png, plain_sam), (basam_png, plain_basam)):
            assert np.array_equal(np.array(Image.open(served_png)), np.array(Image.open(plain_png)))
    finally:
        plain_engine.close()


def test_an_encode_asks_for_time_in_proportion_to_its_work():
    for model in ("vit_t", "vit_b", "vit_h"):
        assert encode_duration(model, None, 4096, None) > encode_duration(model, None, 2048, None) > encode_duration(model, None, 1024, None)
    assert encode_duration("vit_h", None, 4096, None) > encode_duration("vit_t", None, 4096, None)
    assert encode_duration("vit_t", None, 1024, None) <= 15  # what README's ZeroGPU table says a visitor is asked for
    assert encode_duration("vit_h", None, 8192, None) == 300  # ZeroGPU's most for one call


def test_twenty_clicks_after_the_first_encode_ask_for_no_gpu(served):
    """20 page clicks and 20 `/segment` calls on an image already encoded: not one GPU call."""
    from gradio_client import Client

    engine, url = served
    session = common.compute(engine, common.upload_image(engine, str(PHOTO)), settings())
    client = Client(url, verbose=False)
    segment(client)  # the API's first call: the same image, the same settings (encoded just now, or before)
    fork_gpu.requests.clear()
    before = engine.decodes
    points = []
    for k in range(20):
        points.append((150.0 + 80 * k, 200.0 + 45 * k, 1 if k % 4 else 0))
        session = common.set_prompts(engine, session, canvas_with(session, points), settings())
        assert session.basam.masks is not None
    for k in range(20):
        _, _, info = segment(client, points=f"[[{300 + 70 * k}, {250 + 40 * k}, 1]]")
        assert info["sam"]["cache"] == info["basam"]["cache"] == "memory"
    assert fork_gpu.requests == []
    assert engine.decodes == before + 2 * 20 + 2 * 20  # decoded here, on the CPU


def test_gpu_out_of_memory_in_the_worker_names_a_smaller_size(served, monkeypatch):
    """torch.OutOfMemoryError raised inside the forked worker: the events and the API say
    which size to try, and the next request works."""
    import torch
    from gradio_client import Client

    import basam_ui.segmenter

    engine, url = served
    real_encode = basam_ui.segmenter.encode

    def little_memory(sam, x, config):
        if x.shape[-1] > 512:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB")
        return real_encode(sam, x, config)

    monkeypatch.setattr(basam_ui.segmenter, "encode", little_memory)  # the worker forks with it
    session = common.upload_image(engine, str(PHOTO))
    with pytest.raises(AppError, match="out of memory encoding at size 2048.*try 1536 or smaller"):
        common.compute(engine, session, settings(size="2048"))
    assert common.compute(engine, session, settings()).sam.size == SMALL

    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="try 1536 or smaller"):
        segment(client, size="2048")
    sam_png, _, info = segment(client)
    assert info["input_size"] == SMALL and Image.open(sam_png).size == (2048, 1365)


def test_a_worker_finds_its_model_even_if_the_fork_copied_a_held_lock(vit_t, tmp_path):
    """A worker forked while another thread held the engine's lock (loading a model) has a
    copy that stays locked: the worker's lookup, and its loading of a model first used after
    the fork, take no lock."""
    engine = make_engine(vit_t, tmp_path, gpu=fork_gpu.GPU)
    try:
        with engine._lock:
            segmenter = engine._worker_segmenter("vit_t")  # not loaded yet: loads without the lock
            assert engine._worker_segmenter("vit_t") is segmenter and segmenter.sam is vit_t
    finally:
        engine.close()


def test_real_spaces_without_zero_gpu_runs_as_before(vit_t, tmp_path, monkeypatch):
    """The `spaces` package installed, no ZeroGPU: the server wraps nothing, and even
    spaces.GPU itself hands the functions back unchanged; the masks are the plain ones."""
    import spaces

    from basam_ui.web.common import serve as common_serve

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert common_serve.zero_gpu() is None
    assert spaces.GPU(encode_duration) is encode_duration
    wrapped, plain = make_engine(vit_t, tmp_path / "a", gpu=spaces.GPU), make_engine(vit_t, tmp_path / "b")
    try:
        sessions = [events(engine)[-1] for engine in (wrapped, plain)]
        assert np.array_equal(sessions[0].basam.masks, sessions[1].basam.masks)
        assert wrapped.encodes == plain.encodes == 3
    finally:
        wrapped.close()
        plain.close()


def test_under_zero_gpu_models_load_on_the_cpu(tmp_path, monkeypatch):
    """SPACES_ZERO_GPU set (the stand-in as the `spaces` module): the engine runs its model
    work under spaces.GPU on CUDA, while this process holds the model on the CPU and never
    initialises CUDA."""
    import torch

    from basam_ui.cli import build_parser
    from basam_ui.web.common import serve as common_serve

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", fork_gpu)
    args = build_parser().parse_args(["--random-weights", "--checkpoint-dir", str(tmp_path)])
    engine = common_serve.engine_from_args(args)
    try:
        assert engine.gpu_work is not None and engine.device == "cuda" == engine.gpu_work.device
        assert engine.segmenter("vit_t").sam.pixel_mean.device.type == "cpu"
        assert not torch.cuda.is_initialized()
    finally:
        engine.close()
