"""Decoding clicks in the browser, the server's side (web/common/browser_decode.py and
decode_routes.py), without a browser: what a page is offered, a click the browser decoded
stored without a decode (counted), a record that does not hold decoded here instead, the
reasons the server decodes, the commit's and export's full-resolution masks, and the routes
(types, lengths, tokens only, logins). Random vit_t on the CPU at S = 256; the decoder is
exported once (tests/onnx_exports.py) into the engines' decoder folder."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from basam_ui.onnx_decoder import ExportError, embedding_from_payload
from basam_ui.vocabulary import BROWSER_DECODE_MAX_SIZE
from basam_ui.web.common import events as common
from basam_ui.web.common.decode_routes import VENDOR, VENDOR_FILES
from basam_ui.web.common.engine import AppEngine
from basam_ui.web.common.session import Settings
from browser import free_port
from onnx_exports import exported_decoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 256
LOGINS = [("ana", "s3cret")]


def settings(**changes) -> Settings:
    return replace(Settings("vit_t", SIZE, nsf=True, bmam=True, beta=0.1), **changes)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    pixels = (rng.random((200, 300, 3)) * 255).astype(np.uint8)
    pixels[60:150, 90:220] = (200, 60, 40)
    path = tmp_path_factory.mktemp("image") / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def decoder_dir(vit_t) -> Path:
    return exported_decoder(vit_t, SIZE).parent


def make_engine(vit_t, folder: Path, decoder_dir: Path, decode: str = "auto") -> AppEngine:
    return AppEngine({"vit_t": lambda: vit_t}, random_weights=True, work_dir=folder, decoder_dir=decoder_dir,
                     precision="fp32", decode=decode)  # fmt: skip


@pytest.fixture
def engine(vit_t, tmp_path, decoder_dir):
    engine = make_engine(vit_t, tmp_path / "work", decoder_dir)
    yield engine
    engine.close()


def encoded(engine: AppEngine, image_path: Path, **changes):
    return common.compute(engine, common.upload_image(engine, str(image_path)), settings(**changes))


def canvas_with(session, points, rev: int, decoded: dict | None = None) -> dict:
    value = common.canvas_value(session.canvas_image)
    value["points"] = [{"x": x, "y": y, "label": label, "i": i} for i, (x, y, label) in enumerate(points, start=1)]
    value["rev"] = rev
    if decoded is not None:
        value["decoded"] = decoded
    return value


def browser_record(offer: dict, rev: int, candidates: int = 1, **changes) -> dict:
    """What decode.js sends after a click it decoded and drew."""
    record = {
        "by": "browser", "rev": rev, "keys": {side: offer["sides"][side]["key"] for side in ("sam", "basam")},
        "ms": {"sam": 38.0, "basam": 41.0, "total": 52.0},
        "scores": {"sam": [0.5, 0.4, 0.3][:candidates], "basam": [0.7] if candidates == 1 else [0.2, 0.3, 0.7]},
        "best": {"sam": 0, "basam": candidates - 1}, "iou": 0.875, "grid": [300, 200],
    }  # fmt: skip
    return {**record, **changes}


def test_a_click_the_browser_decoded_is_stored_without_a_decode(engine, image_path):
    session = encoded(engine, image_path)
    offer = engine.browser.offer(session)
    assert (offer["mode"], offer["why"], offer["state"]) == ("browser", "", "ready")
    assert offer["size"] == SIZE and offer["original"] == [200, 300] and offer["input"] == [171, 256]
    # the routes name things by tokens: no path, no file name
    urls = [offer["model"], offer["stateUrl"], *(side["url"] for side in offer["sides"].values())]
    assert all(url.startswith("basam/") and "photo" not in url and "/tmp" not in url and ".." not in url for url in urls)
    assert offer["sides"]["sam"]["key"] != offer["sides"]["basam"]["key"]
    assert offer["sides"]["sam"]["bytes"] == 28 + 2 * 256 * 16 * 16

    assert engine.decodes == 0
    clicked = common.set_prompts(engine, session, canvas_with(session, [(150, 100, 1)], 1, browser_record(offer, 1)), settings())
    assert engine.decodes == 0  # nothing decoded here
    assert clicked.prompts.points == ((150.0, 100.0, 1),) and clicked.rev == 1
    assert clicked.sam.decoded_in == clicked.basam.decoded_in == "browser" and clicked.sam.masks is None
    assert common.masks_for_canvas(clicked)["browser"] == {"sam": 0, "basam": 0}
    status = common.status_text(clicked)
    assert "Decoder: **browser**, 52 ms" in status and "IoU between SAM and BA-SAM masks: 0.8750" in status
    assert "decoded in the browser in 41 ms" in status

    # a commit or an export gets the masks decoded here, at full resolution, from the same prompts
    full = common.server_masks(engine, clicked)
    assert engine.decodes == 2 and full.sam.masks is not None and full.basam.mask.shape == (200, 300)
    plain = common.set_prompts(engine, session, canvas_with(session, [(150, 100, 1)], 1), settings())
    assert np.array_equal(full.basam.mask, plain.basam.mask) and np.array_equal(full.sam.mask, plain.sam.mask)
    assert "Decoder: **server**" in common.status_text(plain)


def test_prompts_the_page_is_still_decoding_wait_for_its_record(engine, image_path):
    """A queued event may carry a value whose prompts the page is decoding (marked pending):
    the server neither decodes nor stores them; the page's record follows. A commit (the
    annotate page's) or a download carries its prompts and decodes them here."""
    from basam_ui.web.annotate import editing

    session = encoded(engine, image_path)
    pending = canvas_with(session, [(150, 100, 1)], 1, {"by": "browser", "rev": 1, "pending": True})
    assert common.set_prompts(engine, session, pending, settings()) is session and engine.decodes == 0
    stale = canvas_with(session, [(150, 100, 1)], 2, {"by": "browser", "rev": 1, "pending": True})  # not for this rev
    assert common.set_prompts(engine, session, stale, settings()).basam.masks is not None and engine.decodes == 2

    class NoProject:  # the commit's store calls are not what this checks
        def labels(self):
            return ["lesion"]

        def commit_object(self, image_id, mask, label, provenance, replaces=None, holder=None, field=None):
            self.mask, self.prompts = mask, provenance.prompts
            return type("Record", (), {"id": 1})()

    project = NoProject()
    state = editing.AnnotateState(holder="h", annotator="ana", image_id=1, session=session)
    editing.commit(engine, project, state, pending, "lesion", settings())
    assert engine.decodes == 4 and project.prompts["points"] == [[150.0, 100.0]] and project.mask.shape == (200, 300)


@pytest.mark.parametrize("broken", ["keys", "rev", "scores", "best", "settings", "by"])
def test_a_record_that_does_not_hold_is_decoded_here(engine, image_path, broken):
    session = encoded(engine, image_path)
    offer = engine.browser.offer(session)
    record = browser_record(offer, 1)
    page_settings = settings()
    if broken == "keys":
        record["keys"] = {"sam": record["keys"]["basam"], "basam": record["keys"]["sam"]}
    elif broken == "rev":
        record["rev"] = 0
    elif broken == "scores":
        record["scores"] = {"sam": [0.5, 0.4, 0.3], "basam": [float("nan")]}
    elif broken == "best":
        record["best"] = {"sam": 1, "basam": True}
    elif broken == "settings":
        page_settings = settings(beta=0.3)  # the page moved beta: the browser's BA-SAM embedding is an old one
    elif broken == "by":
        record = {"by": "server", "rev": 1, "why": "the browser is loading the decoder (40%)"}
    before = engine.decodes
    clicked = common.set_prompts(engine, session, canvas_with(session, [(150, 100, 1)], 1, record), page_settings)
    assert engine.decodes == before + 2 and clicked.basam.decoded_in == "server" and clicked.basam.masks is not None
    if broken == "by":  # the page's own reason reaches the status line, as text
        assert "Decoder: **server**: the browser is loading the decoder (40%)" in common.status_text(clicked)


def test_multimask_picks_and_the_download_keep_the_browsers_candidate(engine, image_path):
    from basam_ui.web.compare import events as compare

    session = encoded(engine, image_path, multimask=True)
    offer = engine.browser.offer(session)
    assert offer["multimask"] is True
    clicked = common.set_prompts(engine, session, canvas_with(session, [(150, 100, 1)], 1, browser_record(offer, 1, 3)),
                                 settings(multimask=True))  # fmt: skip
    assert engine.decodes == 0 and [label for label, _ in compare.candidates(clicked.basam)][2].endswith("(best)")
    picked = compare.pick_candidate(clicked, "sam", 1)
    assert common.masks_for_canvas(picked)["browser"] == {"sam": 1, "basam": 2} and engine.decodes == 0
    exported = compare.export_mask_file(engine, common.server_masks(engine, picked), "SAM", "png")
    assert engine.decodes == 2
    reference = common.set_prompts(engine, session, canvas_with(session, [(150, 100, 1)], 1), settings(multimask=True))
    assert np.array_equal(np.array(Image.open(exported)) > 0, reference.sam.masks[1])


def test_why_the_server_decodes(vit_t, tmp_path, decoder_dir, image_path):
    # --decode server: the page is told, and a record is not taken
    engine = make_engine(vit_t, tmp_path / "a", decoder_dir, decode="server")
    try:
        session = encoded(engine, image_path)
        offer = engine.browser.offer(session)
        assert offer["mode"] == "server" and "--decode server" in offer["why"] and "model" not in offer
        clicked = common.set_prompts(engine, session, canvas_with(session, [(150, 100, 1)], 1, {"by": "browser", "rev": 1}),
                                     settings())  # fmt: skip
        assert engine.decodes == 2 and "Decoder: **server**: this server decodes every click (--decode server)" in common.status_text(clicked)
    finally:
        engine.close()

    engine = make_engine(vit_t, tmp_path / "b", decoder_dir)
    try:
        session = encoded(engine, image_path)
        # a ground truth: its metrics need the masks here
        with_gt = replace(session, gt=np.zeros((200, 300), bool), gt_name="gt.png")
        assert "ground truth" in engine.browser.offer(with_gt)["why"]
        # over the bound: the embedding stays on the server (a side at S = 4096, as a result says it)
        big = replace(session, sam=replace(session.sam, size=4096), basam=replace(session.basam, size=4096))
        offer = engine.browser.offer(big)
        assert offer["mode"] == "server" and f"over the browser's bound of {BROWSER_DECODE_MAX_SIZE}" in offer["why"]
        assert "32 MiB per side" in offer["why"]
    finally:
        engine.close()

    # --decode browser lifts the bound
    engine = make_engine(vit_t, tmp_path / "c", decoder_dir, decode="browser")
    try:
        assert engine.browser.bound is None and engine.browser.session_reason(big) == ""
    finally:
        engine.close()


def test_a_decoder_that_does_not_export_says_why_and_the_server_decodes(vit_t, tmp_path, image_path, monkeypatch):
    import basam_ui.onnx_decoder as onnx_decoder

    def refuse(sam, size, path, timeout=900.0):
        raise ExportError("RuntimeError: this decoder branches on its input")

    monkeypatch.setattr(onnx_decoder, "export_decoder_in_subprocess", refuse)
    engine = make_engine(vit_t, tmp_path / "work", tmp_path / "empty")
    try:
        session = encoded(engine, image_path)
        first = engine.browser.offer(session)
        assert first["state"] in ("exporting", "failed")
        export = engine.browser.export("vit_t", SIZE)
        assert export.wait(60) and export.failed
        offer = engine.browser.offer(session)
        assert offer["state"] == "failed" and "this decoder branches on its input" in offer["exportWhy"]
        clicked = common.set_prompts(engine, session, canvas_with(session, [(150, 100, 1)], 1), settings())
        assert engine.decodes == 2
        assert "could not be exported to ONNX at S=256: RuntimeError: this decoder branches" in common.status_text(clicked)
    finally:
        engine.close()


# -- the routes ---------------------------------------------------------------------------


def http(url: str, cookie: str = "", data: bytes | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=data, headers={"Cookie": cookie, "Accept-Encoding": "identity"} if cookie else {"Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.fixture(scope="module")
def served(vit_t, tmp_path_factory, decoder_dir, image_path):
    """The compare page served in this process twice: without logins and with one."""
    from basam_ui.web.compare.page import build_app
    from basam_ui.web.compare.serve import launch_options

    servers = {}
    for name, logins in (("open", []), ("logins", LOGINS)):
        engine = make_engine(vit_t, tmp_path_factory.mktemp(name), decoder_dir)
        session = encoded(engine, image_path)
        demo = build_app(engine)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **launch_options(engine, logins))  # fmt: skip
        servers[name] = (f"http://127.0.0.1:{port}", engine, session, demo)
    try:
        yield servers
    finally:
        for url, engine, session, demo in servers.values():
            demo.close()
            engine.close()


def test_routes_serve_the_decoder_files_by_token_with_types_and_lengths(served):
    url, engine, session, _ = served["open"]
    offer = engine.browser.offer(session)
    for name in VENDOR_FILES:
        status, headers, body = http(f"{url}/basam/vendor/{name}")
        assert status == 200 and len(body) == (VENDOR / name).stat().st_size
        assert headers["content-type"].startswith("application/wasm" if name.endswith(".wasm") else "text/javascript"), name
    status, headers, body = http(f"{url}/basam/static/decode-worker.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"importScripts" in body

    status, headers, model = http(f"{url}/{offer['model']}")
    assert status == 200 and int(headers["content-length"]) == len(model) == exported_decoder(engine.segmenter("vit_t").sam, SIZE).stat().st_size
    assert json.loads(http(f"{url}/{offer['stateUrl']}")[2]) == {"state": "ready", "why": ""}

    emb = engine.embed("vit_t", session.image, SIZE, session.basam.config)
    status, headers, payload = http(f"{url}/{offer['sides']['basam']['url']}")
    assert status == 200 and int(headers["content-length"]) == len(payload) == offer["sides"]["basam"]["bytes"]
    values = embedding_from_payload(payload)
    assert values.shape == (1, 256, 16, 16)
    np.testing.assert_allclose(values, emb.embedding.numpy(), rtol=1e-3, atol=1e-4)  # float16

    # nothing but the tables and the tokens: other names, paths and forged tokens are not found
    for path in ("vendor/LICENSE", "vendor/..%2F..%2Fcli.py", "static/canvas.js", "static/..%2Fcommon%2Fengine.py",
                 "decoder/0123456789abcdef0123456789abcdef.onnx", f"decoder/{offer['sides']['sam']['key']}.onnx",
                 "embedding/0123456789abcdef0123456789abcdef", f"embedding/{offer['model'].split('/')[-1][:-5]}"):
        assert http(f"{url}/basam/{path}")[0] == 404, path

    engine.cache.clear()  # evicted from memory (no disk cache): the page is told, the server decodes
    assert http(f"{url}/{offer['sides']['sam']['url']}")[0] == 410


def test_routes_need_the_login_when_the_server_has_logins(served):
    url, engine, session, _ = served["logins"]
    offer = engine.browser.offer(session)
    paths = [offer["model"], offer["stateUrl"], offer["sides"]["sam"]["url"], "basam/vendor/ort-wasm-simd-threaded.wasm",
             "basam/static/decoder.js"]  # fmt: skip
    for path in paths:
        assert http(f"{url}/{path}")[0] == 401, path
    form = urllib.parse.urlencode({"username": "ana", "password": "s3cret"}).encode()
    request = urllib.request.Request(f"{url}/login", data=form)
    with urllib.request.urlopen(request, timeout=30) as response:
        cookie = "; ".join(part.split(";")[0] for part in response.headers.get_all("Set-Cookie") if "access-token" in part)
    for path in paths:
        assert http(f"{url}/{path}", cookie)[0] == 200, path
    assert http(f"{url}/{paths[0]}", "access-token-x=forged")[0] == 401
