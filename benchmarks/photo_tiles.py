"""Where a photo should be shown in tiles rather than as one full-resolution PNG: for photos
of 12 to 96 megapixels, the cost of today's full-resolution copy (the server writes a
lossless PNG after opening the image; the browser loads and decodes it whole when the
annotator zooms in past the display copy, and keeps it decoded) against the tiles' (the server
decodes the photo and builds its pyramid once, then makes each tile on request).

    PYTHONPATH=. python benchmarks/photo_tiles.py [--sizes 12 24 48 96]

The photos are one of the test photographs scaled up, with a little noise (a camera's), saved
as JPEG quality 92: they compress in PNG about as photographs do. Per size: the JPEG's decode
(`load_image`), the PNG's write (`render.save_png_atomically`, what the page does) and its
size, Chromium's time to fetch, decode and draw it from a local HTTP server (the canvas's
path: `new Image()`, `decode()`, the first `drawImage`), the decoded bitmap it then holds
(W x H x 4 bytes); and for tiles, the
`TileMaker`'s set-up (decode + pyramid) and the tiles of a 1920 x 1080 view at 1:1.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def make_photo(megapixels: float, path: Path) -> tuple[int, int]:
    import cv2
    import numpy as np
    from PIL import Image

    base = np.asarray(Image.open(REPO / "tests" / "data" / "corgi-2048x1365.jpg").convert("RGB"))
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    big = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).normal(0, 3, big.shape)
    Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8)).save(path, quality=92)
    return width, height


def browser_load(url: str) -> dict:
    from browser import launch_chromium

    with launch_chromium() as chromium:
        page = chromium.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(url.rsplit("/", 1)[0] + "/")
        return page.evaluate(
            """async url => {
                const t0 = performance.now(), img = new Image();
                img.src = url; await img.decode();
                const loaded = performance.now();
                const c = document.createElement('canvas'); c.width = 1920; c.height = 1080;
                const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0); ctx.getImageData(0, 0, 1, 1);
                return {load_decode_ms: loaded - t0, first_draw_ms: performance.now() - loaded};
            }""",
            url,
        )


def measure(megapixels: float, folder: Path, port: int) -> dict:
    from basam_ui.image_io import load_image
    from basam_ui.sources import open_source
    from basam_ui.sources.tiles import TileMaker
    from basam_ui.web.common import render

    jpeg = folder / f"photo-{megapixels:g}.jpg"
    width, height = make_photo(megapixels, jpeg)
    started = time.perf_counter()
    image = load_image(jpeg)
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    png = render.save_png_atomically(image, folder / f"full-{megapixels:g}.png")
    write_s = time.perf_counter() - started
    browser = browser_load(f"http://127.0.0.1:{port}/{png.name}")
    del image
    started = time.perf_counter()
    source = open_source(jpeg)
    maker = TileMaker(source)
    setup_s = time.perf_counter() - started
    top = maker.level_count - 1
    columns, rows = maker.level_tiles[top]
    started = time.perf_counter()
    count = 0
    for row in range(min(rows, 5)):
        for col in range(min(columns, 8)):
            maker.tile(top, col, row)
            count += 1
    view_s = time.perf_counter() - started
    maker.close()
    source.close()
    return {
        "mp": width * height / 1e6, "size": f"{width}x{height}", "jpeg_decode_s": decode_s, "png_write_s": write_s,
        "png_mb": png.stat().st_size / 1e6, **browser, "decoded_mb": width * height * 4 / 1e6,
        "tiles_setup_s": setup_s, "view_tiles": count, "view_tiles_s": view_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[12, 24, 48, 96], help="megapixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="photo-tiles-") as tmp:
        folder = Path(tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print("| photo | JPEG decode | PNG write | PNG | browser: fetch, decode, first draw | decoded bitmap | "
              "tiles: set-up | tiles of a 1:1 view |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for mp in args.sizes:
            r = measure(mp, folder, server.server_address[1])
            print(f"| {r['mp']:.0f} MP ({r['size']}) | {r['jpeg_decode_s']:.2f} s | {r['png_write_s']:.2f} s | "
                  f"{r['png_mb']:.0f} MB | {(r['load_decode_ms'] + r['first_draw_ms']) / 1000:.2f} s | "
                  f"{r['decoded_mb']:.0f} MB | {r['tiles_setup_s']:.2f} s | {r['view_tiles']} tiles in "
                  f"{r['view_tiles_s']:.2f} s |", flush=True)
        server.shutdown()


if __name__ == "__main__":
    main()
