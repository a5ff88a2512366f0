"""Click latency of the compare page with 1, 2, 4, ... annotators at once, measured in the
browser: from the pointer event on the canvas to both masks drawn on it.

Starts the app in this process (vit_t with seeded random weights: timings do not depend on
the weights) once per decode mode (--decode: "auto", the page decodes clicks in the browser
once the decoder is exported; "server", every click decoded on the server), and drives it in
headless Chromium (Playwright): each client is its own browser context (its own session,
cookies and page, so its own Web Workers), and the clients click at staggered moments, as
annotators do: client k clicks every --period seconds, k x period / N after client 0. Every
client clears its prompts after three points, so a click decodes one to three points. The
page records each click (performance.now() at the pointer event and when both masks are
drawn); the server counts its decodes (`engine.decodes`), which must stay at zero for the
clicks the browser decoded.

    python benchmarks/click_latency.py --image tests/data/corgi-2048x1365.jpg --sizes 1024 2048 --clients 1 2 4

Prints one table row per (decode mode, S, clients): p50 / p95 of the click -> masks drawn
time, the decoders' p50 (the browser's two workers, or the server's two threads), drawing
(masks in -> drawn), which decoder ran, and the server's decodes during those clicks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ROOT = "document.querySelector('#canvas .bc-root')"
TIMEOUT_MS = 900_000  # an encode at 2048 on a busy 2-core CPU


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=str(REPO / "tests" / "data" / "corgi-2048x1365.jpg"), help="image to upload")
    parser.add_argument("--sizes", nargs="+", default=["1024", "2048"], help="inference sizes S (default: 1024 2048)")
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 2, 4], help="annotators at once (default: 1 2 4)")
    parser.add_argument("--clicks", type=int, default=12, help="clicks timed per client (default: 12)")
    parser.add_argument("--period", type=float, default=1.5, help="seconds between one client's clicks (default: 1.5)")
    parser.add_argument("--decode", nargs="+", default=["auto"], choices=["auto", "server"],
                        help="where clicks are decoded, one run each (default: auto)")
    parser.add_argument("--precision", default="auto", help="the server's precision (default: auto)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
                        help="torch threads in the server (default: $OMP_NUM_THREADS, else torch's default)")
    parser.add_argument("--decoder-dir", help="keep the exported decoders here (default: a temporary folder)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    parser.add_argument("--screenshot", help="save a screenshot of client 0's page after the last run here")
    args = parser.parse_args(argv)

    import tempfile

    import torch
    from playwright.sync_api import sync_playwright

    from basam_ui.models import random_sam
    from basam_ui.web.common.engine import AppEngine
    from basam_ui.web.compare.page import build_app
    from basam_ui.web.compare.serve import launch_options

    if args.threads:
        torch.set_num_threads(args.threads)
    sam = random_sam("vit_t", seed=0, device="cpu")
    decoders = Path(args.decoder_dir or tempfile.mkdtemp(prefix="click-latency-decoders-"))
    print(f"# {Path(args.image).name}, vit_t random weights, precision {args.precision}, torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs; each client clicks every {args.period:g} s, "
          f"staggered; {args.clicks} clicks per client")
    print("| decode | S | clients | clicks | click -> masks drawn p50 / p95 (ms) | decoders p50 (ms) | drawing p50 (ms) "
          "| decoded by | server decodes | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        for mode in args.decode:
            engine = AppEngine({"vit_t": lambda: sam}, random_weights=True, precision=args.precision, decode=mode,
                               decoder_dir=decoders)  # fmt: skip
            demo = build_app(engine)
            demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options(engine))
            try:
                for clients in args.clients:
                    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(clients)]
                    pages = [open_page(context.new_page(), demo.local_url, args.image) for context in contexts]
                    for size in args.sizes:
                        for page in pages:
                            set_size(page, size)
                        if mode != "server":
                            export = engine.browser.export("vit_t", int(size))
                            export.wait()
                            for page in pages:
                                page.wait_for_function(f"() => {ROOT}.bc.decoder().here", timeout=TIMEOUT_MS)
                        before = engine.decodes
                        load = os.getloadavg()[0]
                        rows = staggered_clicks(pages, args.clicks, args.period)
                        print(row(mode, size, clients, rows, engine.decodes - before, load), flush=True)
                    if args.screenshot and clients == args.clients[-1] and mode == args.decode[-1]:
                        pages[0].screenshot(path=args.screenshot, full_page=True)
                    for context in contexts:
                        context.close()
            finally:
                demo.close()
                engine.close()
        browser.close()
    return 0


def open_page(page, url: str, image: str):
    page.goto(url)
    page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
    page.set_input_files("#upload input[type=file]", image)
    page.wait_for_function(f"() => {ROOT} && {ROOT}.dataset.ready === '1'", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('click the image')", timeout=TIMEOUT_MS)
    return page


def set_size(page, size: str) -> None:
    """Choose S in the page and wait until both sides are encoded at it."""
    if f"S={size})" not in page.inner_text("#status"):
        page.click("#size input")
        page.click(f"#size li[aria-label='{size}']")
    page.wait_for_function("s => document.querySelector('#status').innerText.includes('S=' + s + ')')", arg=size,
                           timeout=TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('#status').innerText.includes('encoding')", timeout=TIMEOUT_MS)


def staggered_clicks(pages, clicks: int, period: float) -> list[dict]:
    """Each page clicks `clicks` times, every `period` s, page k offset by k x period / N; a
    page clears its prompts (Esc, no decode) after three points. The pages' latency records
    of these clicks, once all are drawn."""
    boxes = [page.eval_on_selector("#canvas canvas.bc-canvas",
                                   "c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height] }")
             for page in pages]  # fmt: skip
    starts = [page.evaluate(f"() => {ROOT}.bc.latency().length") for page in pages]
    for page in pages:  # start from no prompts
        page.keyboard.press("Escape")
    time.sleep(1.0)
    starts = [page.evaluate(f"() => {ROOT}.bc.latency().length") for page in pages]
    schedule = sorted((round_ * period + k * period / len(pages), k, round_) for k in range(len(pages)) for round_ in range(clicks))
    began = time.perf_counter()
    for at, k, round_ in schedule:
        wait = began + at - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        page, box = pages[k], boxes[k]
        if round_ and round_ % 3 == 0:
            page.keyboard.press("Escape")
        x = box[0] + box[2] * (0.3 + 0.4 * ((round_ * 7 + k * 3) % 10) / 10)
        y = box[1] + box[3] * (0.3 + 0.4 * ((round_ * 3 + k * 7) % 10) / 10)
        page.mouse.click(x, y)
    rows = []
    for page, start in zip(pages, starts):
        page.wait_for_function(f"n => {ROOT}.bc.latency().length >= n", arg=start + clicks, timeout=TIMEOUT_MS)
        rows += page.evaluate(f"() => {ROOT}.bc.latency()")[start:]
    return rows


def row(mode: str, size: str, clients: int, rows: list[dict], server_decodes: int, load: float) -> str:
    totals = [r["total"] for r in rows]
    decoders = [max(r.get("decode_sam") or 0, r.get("decode_basam") or 0) for r in rows]
    drawing = [r["drawing"] for r in rows if r.get("drawing") is not None]
    browser = sum(r.get("decoder") == "browser" for r in rows)
    by = f"browser {browser}" + (f", server {len(rows) - browser}" if browser < len(rows) else "")
    return (f"| {mode} | {size} | {clients} | {len(rows)} | {statistics.median(totals):.0f} / {percentile(totals, 0.95):.0f} "
            f"| {statistics.median(decoders):.0f} | {statistics.median(drawing):.0f} | {by} | {server_decodes} | {load:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
