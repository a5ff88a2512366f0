"""The decoder in the browser (basam_ui/web/decoder.js with the vendored ONNX Runtime Web and
the exported model) draws the masks the server computes (`Segmenter.predict_with`).

A tiny static page on Python's http.server (no Gradio) loads the vendored ORT, the model
exported at S and the embedding payload, decodes prompts in headless Chromium and draws each
candidate into a canvas; the test reads the canvas back and compares it pixel by pixel."""

from __future__ import annotations

import base64
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from basam_ui.decoder import masks_from_logits
from basam_ui.onnx_decoder import embedding_payload
from basam_ui.segmenter import ImageEmbedding, Segmenter
from browser import launch_chromium, serve
from onnx_exports import exported_decoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WEB = Path(__file__).resolve().parents[1] / "basam_ui" / "web"
AGREEMENT = 0.995  # of the drawn pixels, browser against server
ROUNDING_PIXELS = 10  # the browser's drawing against logits_to_image of the browser's own logits (measured: 0 or 1)
# older Pythons' mimetypes lack .mjs and .wasm; ORT's module script must come as JavaScript
STATIC_SERVER = (
    "import functools, http.server, sys\n"
    "class Handler(http.server.SimpleHTTPRequestHandler):\n"
    "    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,\n"
    "        '.mjs': 'text/javascript', '.js': 'text/javascript', '.wasm': 'application/wasm'}\n"
    "    def log_message(self, *args): pass\n"
    "handler = functools.partial(Handler, directory=sys.argv[2])\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()\n"
)
PAGE = """<!doctype html><html><head><meta charset="utf-8"><script src="decoder.js"></script></head>
<body><canvas id="canvas"></canvas><script>
// decode one click and draw candidate `index` into the canvas; the mask comes back as packed bits
window.drawnBits = (decoded, index, region, width, height) => {
  const canvas = document.getElementById("canvas");
  canvas.width = width; canvas.height = height;
  window.decoder.drawMask(canvas, decoded, index, region, width, height);
  const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const bits = new Uint8Array(Math.ceil(width * height / 8));
  for (let p = 0; p < width * height; p++) if (rgba[4 * p + 3] > 0) bits[p >> 3] |= 128 >> (p & 7);
  return toBase64(bits);
};
// arrays cross to and from Python as base64 (JSON lists of 10^5 numbers take seconds)
const toBase64 = (array) => {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 32768) text += String.fromCharCode(...bytes.subarray(i, i + 32768));
  return btoa(text);
};
window.floatsFromBase64 = (text) => new Float32Array(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer);
</script></body></html>"""
LOAD = """async ([size, inputSize, originalSize]) => {
  const started = performance.now();
  window.decoder = await basamDecoder.BrowserDecoder.create({
    ortUrl: "vendor/ort.wasm.min.js", modelUrl: `model-${size}.onnx`, embedding: `embedding-${size}.bin`,
    size, inputSize, originalSize});
  return performance.now() - started;
}"""
DECODE_AND_DRAW = """async ([prompt, views]) => {
  if (prompt.maskInput) prompt.maskInput = window.floatsFromBase64(prompt.maskInput);
  const decoded = await window.decoder.decode(prompt);
  const masks = [];
  for (let index = 0; index < decoded.count; index++) {
    masks.push(views.map(([region, width, height]) => window.drawnBits(decoded, index, region, width, height)));
  }
  const started = performance.now();
  window.decoder.maskImage(decoded, decoded.best, null, views[0][1], views[0][2]);
  const drawMs = performance.now() - started;
  return {masks, scores: Array.from(decoded.scores), best: decoded.best, lowRes: toBase64(decoded.lowRes),
          decodeMs: decoded.ms, drawMs};
}"""
# (H, W) of the image per S: 1024 shrinks a 900 x 600 photo, 2048 enlarges a 2000 x 1500 one
GEOMETRY = {1024: (600, 900), 2048: (1500, 2000)}


TWO_SIDES = """async ([point, size]) => {
  const other = await basamDecoder.BrowserDecoder.create({
    ortUrl: "vendor/ort.wasm.min.js", modelUrl: `model-${size}.onnx`, embedding: `embedding-${size}-other.bin`,
    size, inputSize: window.decoder.inputSize, originalSize: window.decoder.originalSize});
  const prompt = {points: [point], labels: [1]};
  const [a, b] = await Promise.all([window.decoder.decode(prompt), other.decode(prompt)]);
  const alone = await window.decoder.decode(prompt);
  const same = (x, y) => x.length === y.length && x.every((v, i) => v === y[i]);
  return {sameAsAlone: same(a.lowRes, alone.lowRes), sameAsOther: same(a.lowRes, b.lowRes)};
}"""
# every prompt at 1024; at 2048 (4x the pixels, ~5x the decode time) the ones that differ most
SIZES_WITH = {name: (1024, 2048) if name in ("point", "box+point", "mask+point") else (1024,) for name in
              ("point", "points", "box", "box+point", "edge point", "mask+point", "single")}


def bits_to_mask(text: str, height: int, width: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))
    return bits[: height * width].reshape(height, width).astype(bool)


@pytest.fixture(scope="module")
def segmenter(vit_t) -> Segmenter:
    return Segmenter(vit_t, precision="fp32")


def embedded(segmenter: Segmenter, size: int) -> ImageEmbedding:
    """An image of GEOMETRY[size] 'encoded' to a seeded random embedding (an encoder pass at
    2048 takes ~15 s here; the decoder does not care where the embedding came from)."""
    height, width = GEOMETRY[size]
    image = np.full((height, width, 3), size % 251, np.uint8)
    grid = size // 16
    embedding = torch.randn(1, 256, grid, grid, generator=torch.Generator().manual_seed(size))
    return segmenter.embed(image, size, encoder=lambda *_: embedding)


@pytest.fixture(scope="module")
def site(tmp_path_factory, segmenter):
    """The static page, ORT, decoder.js, and per S the model and the embedding, served."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text(PAGE)
    (root / "decoder.js").symlink_to(WEB / "decoder.js")
    (root / "vendor").symlink_to(WEB / "vendor" / "onnxruntime-web")
    embeddings = {}
    for size in GEOMETRY:
        (root / f"model-{size}.onnx").symlink_to(exported_decoder(segmenter.sam, size))
        embeddings[size] = embedded(segmenter, size)
        (root / f"embedding-{size}.bin").write_bytes(embedding_payload(embeddings[size].embedding))
        (root / f"embedding-{size}-other.bin").write_bytes(embedding_payload(-embeddings[size].embedding))  # "the other side"
    with serve([sys.executable, "-c", STATIC_SERVER, "{port}", str(root)], log_dir=root / "logs") as server:
        yield server.url, embeddings


@pytest.fixture(scope="module")
def browser():
    with launch_chromium() as chromium:
        yield chromium


def open_decoder(browser, url: str, embedding: ImageEmbedding):
    """A page with `window.decoder` ready for `embedding`; fails on a page error or a request
    that did not succeed (e.g. an ORT file the vendored set lacks)."""
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"{request.url}: {request.failure}"))
    page.on("response", lambda response: response.status >= 400 and errors.append(f"{response.url}: {response.status}"))
    page.goto(url + "/index.html")
    seconds = page.evaluate(LOAD, [embedding.size, list(embedding.input_size), list(embedding.original_size)]) / 1000
    assert not errors, errors
    print(f"\nS={embedding.size}: ORT, model and embedding loaded, session warmed up in {seconds:.1f} s")
    return page


def prompts(height: int, width: int, earlier_low_res: np.ndarray) -> dict[str, dict]:
    """Clicks in original pixels, as the pages send them."""
    return {
        "point": {"points": [[0.45 * width, 0.55 * height]], "labels": [1]},
        "points": {"points": [[0.3 * width, 0.3 * height], [0.7 * width, 0.6 * height]], "labels": [1, 0]},
        "box": {"box": [0.1 * width, 0.2 * height, 0.6 * width, 0.9 * height]},
        "box+point": {"points": [[0.35 * width, 0.5 * height]], "labels": [1], "box": [0.1 * width, 0.2 * height, 0.6 * width, 0.9 * height]},
        "edge point": {"points": [[width - 0.2, height + 30.0]], "labels": [1]},  # clipped to the last pixel
        "mask+point": {"points": [[0.45 * width, 0.55 * height]], "labels": [1], "maskInput": earlier_low_res},
        "single": {"points": [[0.6 * width, 0.4 * height]], "labels": [1], "multimask": False},
    }


@pytest.mark.parametrize("size", [1024, 2048])
def test_browser_masks_match_the_server(site, browser, segmenter, size: int) -> None:
    url, embeddings = site
    embedding = embeddings[size]
    height, width = embedding.original_size
    page = open_decoder(browser, url, embedding)
    _, _, earlier = segmenter.predict_with(embedding, np.array([[0.3 * width, 0.3 * height]]), np.array([1]))
    zoomed_out = (height // 3, width // 3)
    window = {"x": width // 4, "y": height // 5, "width": width // 3, "height": height // 4}  # 1:1, part of the image
    decode_ms, draw_ms, agreements = [], [], []
    views = [[None, width, height], [None, zoomed_out[1], zoomed_out[0]], [window, window["width"], window["height"]]]
    # both sides decode at once on one shared session: the runs queue and each gets its own answer
    both = page.evaluate(TWO_SIDES, [[0.45 * width, 0.55 * height], size])
    assert both["sameAsAlone"] and not both["sameAsOther"]
    for name, prompt in prompts(height, width, earlier[0]).items():
        if size not in SIZES_WITH[name]:
            continue
        sent = {**prompt, "maskInput": base64.b64encode(prompt["maskInput"].astype("<f4").tobytes()).decode()} if "maskInput" in prompt else prompt
        result = page.evaluate(DECODE_AND_DRAW, [sent, views])
        masks, scores, low_res = segmenter.predict_with(
            embedding,
            np.array(prompt["points"]) if "points" in prompt else None,
            np.array(prompt["labels"]) if "labels" in prompt else None,
            np.array(prompt["box"]) if "box" in prompt else None,
            prompt["maskInput"][None] if "maskInput" in prompt else None,
            multimask_output=prompt.get("multimask", True),
        )
        assert len(result["masks"]) == len(masks), name
        decode_ms.append(result["decodeMs"])
        draw_ms.append(result["drawMs"])
        np.testing.assert_allclose(result["scores"], scores, atol=5e-3, err_msg=name)  # fp16 embedding
        ranked = np.sort(scores)[::-1]
        if len(scores) == 1 or ranked[0] - ranked[1] > 5e-3:  # a clear best: the same one
            assert result["best"] == int(scores.argmax()), name
        side = size // 4
        browser_low_res = np.frombuffer(base64.b64decode(result["lowRes"]), "<f4").reshape(-1, side, side).copy()
        # the float16 embedding moves the logits by ~1.3e-4 of their range; a point scaled 0.2 % off, by 1e-3 and more
        error = float(np.abs(browser_low_res - low_res).max() / np.ptp(low_res))
        assert error < 5e-4, f"S={size} {name}: browser logits {error:.2g} of their range from the server's"
        small = masks_from_logits(torch.from_numpy(low_res), embedding.input_size, zoomed_out, 0.0).numpy()
        for index, (full, reduced, part) in enumerate(result["masks"]):
            drawn = bits_to_mask(full, height, width)
            agreement = float((drawn == masks[index]).mean())
            agreements.append(agreement)
            assert agreement >= AGREEMENT, f"S={size} {name} candidate {index}: {agreement:.5f} of pixels agree"
            # the browser draws its own logits exactly as logits_to_image would
            own = masks_from_logits(torch.from_numpy(browser_low_res[index]), embedding.input_size, embedding.original_size, 0.0).numpy()
            own_small = masks_from_logits(torch.from_numpy(browser_low_res[index]), embedding.input_size, zoomed_out, 0.0).numpy()
            # (up to a few pixels whose interpolated logit rounds across 0), and a 1:1 window is a crop of it
            assert int((drawn != own).sum()) <= ROUNDING_PIXELS, f"S={size} {name}: not logits_to_image's map"
            reduced_drawn = bits_to_mask(reduced, *zoomed_out)
            assert int((reduced_drawn != own_small).sum()) <= ROUNDING_PIXELS, f"S={size} {name}: zoomed out, not its map"
            part_drawn = bits_to_mask(part, window["height"], window["width"])
            assert np.array_equal(part_drawn, drawn[window["y"] : window["y"] + window["height"], window["x"] : window["x"] + window["width"]])
            assert float((reduced_drawn == small[index]).mean()) >= AGREEMENT, f"S={size} {name}: zoomed out"
        assert any(0.001 < mask.mean() < 0.999 for mask in masks), f"{name}: masks all or nothing test little"
    page.close()
    # seen with pytest -s: the figures for a report (this machine's load moves them a lot)
    print(f"\nS={size}: browser decode p50 {statistics.median(decode_ms):.0f} ms, "
          f"drawing {width}x{height} p50 {statistics.median(draw_ms):.0f} ms; "
          f"pixels agreeing with the server: {min(agreements):.5f} at worst")

