"""The decoder exported to ONNX: export time and file size per S, and one click's decode time
in PyTorch (the server's path), in ONNX Runtime (Python, one thread) and in the browser
(basam_ui/web/decoder.js with the vendored ONNX Runtime Web, one thread, headless Chromium).

Random weights (timings do not depend on them) and a random embedding; each click is one
foreground point with three candidates. The browser's time is `decode()`: building the
prompts, the session run, and picking the candidates; "draw" is `maskImage` of the best
candidate at the image's size (900 x 600 at 1024, 2000 x 1500 at 2048).

    python benchmarks/onnx_decoder.py --sizes 1024 2048 --clicks 20
"""

from __future__ import annotations

import argparse
import functools
import http.server
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GEOMETRY = {1024: (600, 900), 2048: (1500, 2000)}  # (H, W) of the image drawn per S
PAGE = '<!doctype html><meta charset="utf-8"><script src="decoder.js"></script>'
CLICKS = """async ([size, inputSize, originalSize, points]) => {
  const decoder = await basamDecoder.BrowserDecoder.create({ortUrl: "vendor/ort.wasm.min.js",
    modelUrl: `model-${size}.onnx`, embedding: `embedding-${size}.bin`, size, inputSize, originalSize});
  const decode = [], draw = [];
  for (const point of points) {
    const out = await decoder.decode({points: [point], labels: [1]});
    decode.push(out.ms);
    const started = performance.now();
    decoder.maskImage(out, out.best);
    draw.push(performance.now() - started);
  }
  return {decode, draw};
}"""


def p50_p95(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {statistics.median(ordered):7.1f} ms  p95 {ordered[round(0.95 * (len(ordered) - 1))]:7.1f} ms"


def serve(root: Path) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_t", help="model type (default: vit_t; every SAM decoder has the same size)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048], help="encoder sizes S (default: 1024 2048)")
    parser.add_argument("--clicks", type=int, default=20, help="clicks timed per size (default: 20)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch
    from playwright.sync_api import sync_playwright

    from basam_ui.basam.encoder import resized_size
    from basam_ui.decoder import decode_masks
    from basam_ui.models import random_sam
    from basam_ui.onnx_decoder import embedding_payload, export_decoder, export_decoder_in_subprocess, prompt_arrays

    torch.set_num_threads(1)
    sam = random_sam(args.model, seed=0, device="cpu")
    root = Path(tempfile.mkdtemp(prefix="onnx-decoder-bench-"))
    (root / "index.html").write_text(PAGE)
    (root / "decoder.js").symlink_to(REPO / "basam_ui" / "web" / "decoder.js")
    (root / "vendor").symlink_to(REPO / "basam_ui" / "web" / "vendor" / "onnxruntime-web")
    server = serve(root)
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    rng = np.random.default_rng(0)
    print(f"{args.model}, {args.clicks} clicks per size, torch and ONNX Runtime on one thread")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
        for size in args.sizes:
            grid = size // 16
            path = root / f"model-{size}.onnx"
            started = time.perf_counter()
            export_decoder(sam, size, path)
            in_process = time.perf_counter() - started
            started = time.perf_counter()
            export_decoder_in_subprocess(sam, size, root / f"child-{size}.onnx")
            in_child = time.perf_counter() - started
            embedding = torch.randn(1, 256, grid, grid, generator=torch.Generator().manual_seed(size))
            (root / f"embedding-{size}.bin").write_bytes(embedding_payload(embedding))
            height, width = GEOMETRY.get(size, (size * 3 // 4, size))
            input_size = resized_size((height, width), size)
            points = (rng.random((args.clicks + 1, 2)) * [width, height]).tolist()
            scale = np.array([input_size[1] / width, input_size[0] / height])

            torch_ms, ort_ms = [], []
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            no_mask = np.zeros((1, 1, 4 * grid, 4 * grid), np.float32)
            for point in points:
                coords = np.array([point]) * scale
                with torch.inference_mode():
                    started = time.perf_counter()
                    decode_masks(sam, embedding, torch.as_tensor(coords, dtype=torch.float32)[None], torch.ones(1, 1), None, None, True)
                    torch_ms.append(1000 * (time.perf_counter() - started))
                feeds = dict(zip(("point_coords", "point_labels"), prompt_arrays(coords, np.ones(1), None)))
                feeds.update(image_embeddings=embedding.numpy(), mask_input=no_mask, has_mask_input=np.zeros(1, np.float32))
                started = time.perf_counter()
                session.run(None, feeds)
                ort_ms.append(1000 * (time.perf_counter() - started))
            page = browser.new_page()
            page.goto(url)
            timing = page.evaluate(CLICKS, [size, list(input_size), [height, width], points])
            page.close()
            print(f"\nS={size}: export {in_process:.1f} s in process, {in_child:.1f} s in a child process; "
                  f"{path.stat().st_size / 1e6:.2f} MB; embedding payload {(root / f'embedding-{size}.bin').stat().st_size / 2**20:.2f} MiB")
            print(f"  PyTorch decode_masks (server)      {p50_p95(torch_ms[1:])}")
            print(f"  ONNX Runtime, Python               {p50_p95(ort_ms[1:])}")
            print(f"  browser decode (ORT Web, WASM)     {p50_p95(timing['decode'][1:])}")
            print(f"  browser draw {width}x{height}          {p50_p95(timing['draw'][1:])}")
        browser.close()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
