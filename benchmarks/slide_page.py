"""A whole-slide image in the real annotate page: `basam-ui annotate` (random vit_t) on a folder
holding a generated 100,000 x 80,000 px slide, driven in headless Chromium.

    PYTHONPATH=. python benchmarks/slide_page.py [--slide PATH] [--keep] [--sizes 1024 2048 4096]
        [--clicks 10] [--openseadragon openseadragon.min.js]

Measured:
- open: from navigating to the page until the slide is shown whole (the thumbnail, then every
  tile of the fitted view drawn);
- pan at 1:1: `0`, then middle-button drags of half the canvas's width, left to right across
  the slide's whole width through its middle; per tile, the time from its request to its
  decoded image (tiles.js), p50 / p95, and per step, the time until the view is complete;
- the server's memory: resident set before the pan, after it, and its peak (VmHWM, which
  includes loading the model);
- click -> mask in a field: at S = 1024, a click at 1:1 (the field: the view) and its masks
  drawn, first with the field's encode (both sides), then `--clicks` more clicks in the same
  field (decode only; the canvas's own latency record);
- field encodes: in this process, the field of a 1:1 view of S x 3S/4 level-0 px read
  (`read_field`) and encoded once (vit_t, BA-SAM's setting, the page's precision) at each S;
- with `--openseadragon FILE`: the same pan, on another row, in an OpenSeadragon viewer of the
  canvas's size (its canvas drawer, no animation) opened in the same page on the same tile
  route, for the viewer choice (README).

The slide is the tests' pattern (tests/slides.py), levels down to under 1,000 px, written in
seconds (`--slide` reuses one, `--keep` keeps it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

SIZE = (100_000, 80_000)
VIEWPORT = {"width": 1920, "height": 1080}
TIMEOUT_MS = 600_000


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def memory_mib(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def write(folder: Path) -> Path:
    from slides import write_benchmark_slide

    return write_benchmark_slide(folder / "slide-100000x80000.tif", SIZE)


def js(page, expression: str):
    return page.evaluate(f"() => {{ const root = document.querySelector('#canvas .bc-root'); return {expression}; }}")


def wait_tiles(page) -> None:
    page.wait_for_function("() => document.querySelector('#canvas .bc-root').dataset.tilesPending === '0'",
                           timeout=TIMEOUT_MS)  # fmt: skip


def pan_canvas(page) -> dict:
    """Drag the canvas at 1:1 across the slide's width; per-tile and per-step times."""
    box = page.locator("#canvas canvas").bounding_box()
    y = box["y"] + box["height"] / 2
    step = box["width"] / 2
    steps = int((SIZE[0] - box["width"]) / step) + 1
    while js(page, "root.bc.state()")["tx"] < 0:  # to the left edge, in the middle row (1:1 centred it)
        shift = min(box["width"] - 20, -js(page, "root.bc.state()")["tx"])
        page.mouse.move(box["x"] + 10, y)
        page.mouse.down(button="middle")
        page.mouse.move(box["x"] + 10 + shift, y, steps=2)
        page.mouse.up(button="middle")
    wait_tiles(page)
    before = len(js(page, "root.bc.tiles().latency"))
    page.evaluate(WATCH_REQUESTS)
    views = []
    for _ in range(steps):
        page.mouse.move(box["x"] + box["width"] * 0.75, y)
        started = time.perf_counter()
        page.mouse.down(button="middle")
        page.mouse.move(box["x"] + box["width"] * 0.75 - step, y, steps=2)
        page.mouse.up(button="middle")
        wait_tiles(page)
        views.append(time.perf_counter() - started)
    tiles = js(page, "root.bc.tiles().latency")[before:]
    requests = page.evaluate("() => window.tileRequests")
    return {"steps": steps, "tiles": tiles, "requests": requests, "views": views}


# the tile requests' own durations (Resource Timing: request start to response end), the same
# measure for both viewers
WATCH_REQUESTS = """() => { window.tileRequests = [];
  new PerformanceObserver(list => { for (const e of list.getEntries())
    if (e.name.includes('tiles_files')) window.tileRequests.push(e.duration); }).observe({type: 'resource'}); }"""


OSD_PAN = """async ([dzi, steps, width, height]) => {
  const host = document.createElement('div');  // the canvas's size, over the page
  host.style.cssText = `position:fixed;left:0;top:0;width:${width}px;height:${height}px;z-index:9999;background:#222`;
  document.body.appendChild(host);
  const viewer = OpenSeadragon({element: host, tileSources: dzi, drawer: 'canvas', showNavigationControl: false,
                                animationTime: 0, immediateRender: true, maxZoomPixelRatio: 1});
  await new Promise(r => viewer.addOnceHandler('open', r));
  const item = () => viewer.world.getItemAt(0);
  const settle = async () => {  // OpenSeadragon updates on animation frames: wait until it drew it all
    for (;;) {
      await new Promise(r => requestAnimationFrame(r));
      if (item().getFullyLoaded() && !viewer.world.needsDraw()) return;
    }
  };
  const vp = viewer.viewport, W = item().source.width;
  // 1:1 at the left edge, a quarter down the slide
  vp.zoomTo(vp.imageToViewportZoom(1), null, true);
  const w = vp.getBounds().width;
  vp.panTo(new OpenSeadragon.Point(w / 2, item().source.height / W / 4), true);
  await settle();
  window.tileRequests = [];
  const views = [];
  for (let k = 0; k < steps; k++) {
    const t0 = performance.now();
    vp.panBy(new OpenSeadragon.Point(w / 2, 0), true);
    await settle();
    views.push(performance.now() - t0);
  }
  return {tiles: window.tileRequests.slice(), views};
}"""


def pan_openseadragon(page, script: Path, dzi: str, steps: int, box: dict) -> dict:
    page.add_script_tag(path=str(script))
    started = time.perf_counter()
    result = page.evaluate(OSD_PAN, [dzi, steps, box["width"], box["height"]])
    result["seconds"] = time.perf_counter() - started
    return result


def clicks(page, count: int) -> dict:
    """At 1:1, a click (the field's encode), then `count` clicks in the same field."""
    box = page.locator("#canvas canvas").bounding_box()
    started = time.perf_counter()
    page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => !!document.querySelector('#canvas .bc-root').bc.state().masks", timeout=TIMEOUT_MS)
    first = time.perf_counter() - started
    for k in range(count):
        drawn = js(page, "root.bc.state().drawn")
        page.mouse.click(box["x"] + box["width"] * (0.3 + 0.04 * k), box["y"] + box["height"] * (0.3 + 0.03 * k))
        page.wait_for_function(f"() => document.querySelector('#canvas .bc-root').bc.state().drawn > {drawn}",
                               timeout=TIMEOUT_MS)  # fmt: skip
    latencies = [entry["total"] for entry in js(page, "root.bc.latency()")][-count:]
    return {"first_s": first, "latency_ms": latencies}


def field_encodes(path: Path, sizes: list[int]) -> list[tuple]:
    from basam_ui.basam.config import BASAMConfig
    from basam_ui.models import random_sam
    from basam_ui.segmenter import Segmenter
    from basam_ui.sources import Region, open_source
    from basam_ui.sources.fields import field_for_view, read_field

    segmenter = Segmenter(random_sam("vit_t", seed=0, device="cpu"), cache_bytes=0)
    rows = []
    with open_source(path) as source:
        for s in sizes:
            field = field_for_view(Region(31_000, 23_000, s, 3 * s // 4), s, bounds=source.size)
            started = time.perf_counter()
            pixels = read_field(source, field)
            read_s = time.perf_counter() - started
            started = time.perf_counter()
            segmenter.encode_uncached(pixels, s, BASAMConfig(nsf=True, bmam=True, beta=0.1))
            rows.append((s, pixels.shape[1], pixels.shape[0], read_s, time.perf_counter() - started,
                         segmenter.encoder_precision))  # fmt: skip
            print(f"  field S={s}: read {read_s * 1000:.0f} ms, encode {rows[-1][4]:.1f} s ({rows[-1][5]})", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slide", type=Path, help="a slide written before (default: write one)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--openseadragon", type=Path, help="openseadragon.min.js, to pan in it too")
    args = parser.parse_args()
    from browser import launch_chromium, serve

    folder = Path(tempfile.mkdtemp(prefix="slide-page-"))
    path = args.slide or write(folder)
    if args.slide:  # the project is the slide's folder; keep it apart
        (folder / path.name).symlink_to(path.resolve())
        path = folder / path.name
    command = [sys.executable, "-m", "basam_ui", "annotate", str(folder), "--random-weights", "--model", "vit_t",
               "--device", "cpu", "--port", "{port}"]
    with serve(command, log_dir=folder / "log", cwd=REPO, timeout=300) as server:
        with launch_chromium() as chromium:
            page = chromium.new_page(viewport=VIEWPORT)
            started = time.perf_counter()
            page.goto(server.url)
            page.wait_for_function("() => document.querySelector('#canvas .bc-root')?.dataset.ready === '1'",
                                   timeout=TIMEOUT_MS)  # fmt: skip
            wait_tiles(page)
            opened = time.perf_counter() - started
            print(f"open: the page and the slide, fitted, every tile drawn: {opened:.2f} s", flush=True)
            page.locator("#ann-name textarea, #ann-name input").fill("bench")
            page.mouse.click(5, 5)
            page.keyboard.press("0")
            wait_tiles(page)
            before = memory_mib(server.process.pid)
            panned = pan_canvas(page)
            after = memory_mib(server.process.pid)
            tiles, views, requests = panned["tiles"], panned["views"], panned["requests"]
            print(f"pan at 1:1 across the slide ({panned['steps']} steps of half the canvas, {len(tiles)} tiles): "
                  f"tile (request to drawable) p50 {statistics.median(tiles):.0f} ms, p95 {percentile(tiles, 95):.0f} ms; "
                  f"requests alone p50 {statistics.median(requests):.0f} ms, p95 {percentile(requests, 95):.0f} ms; "
                  f"view complete p50 {statistics.median(views) * 1000:.0f} ms, p95 {percentile(views, 95) * 1000:.0f} ms "
                  "(Playwright's drag included)", flush=True)
            print(f"server memory: RSS {before['VmRSS']:.0f} MiB before the pan, {after['VmRSS']:.0f} MiB after; "
                  f"peak {after['VmHWM']:.0f} MiB (model load included)", flush=True)
            clicked = clicks(page, args.clicks)
            lat = clicked["latency_ms"]
            print(f"click -> mask at S=1024 (1:1 field): first click {clicked['first_s']:.1f} s (field read, both "
                  f"sides encoded); then p50 {statistics.median(lat):.0f} ms, p95 {percentile(lat, 95):.0f} ms "
                  f"({len(lat)} clicks)", flush=True)
            if args.openseadragon:  # another row of the slide: no tile of it is cached anywhere yet
                url = js(page, "root.bc.value().image.tiles.url").rsplit("/", 1)[0] + "/tiles.dzi"
                box = page.locator("#canvas canvas").bounding_box()
                osd = pan_openseadragon(page, args.openseadragon, url, panned["steps"], box)
                print(f"OpenSeadragon, the same pan a quarter down the slide ({len(osd['tiles'])} tiles): requests "
                      f"p50 {statistics.median(osd['tiles']):.0f} ms, p95 {percentile(osd['tiles'], 95):.0f} ms; view "
                      f"complete p50 {statistics.median(osd['views']):.0f} ms, p95 {percentile(osd['views'], 95):.0f} ms",
                      flush=True)  # fmt: skip
    print("field encodes (vit_t, BA-SAM, this process):", flush=True)
    field_encodes(path, args.sizes)
    if not args.keep and not args.slide:
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
