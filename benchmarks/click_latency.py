"""Click latency of the compare page, measured in the browser: from the pointer event on the
canvas to both masks drawn on it, with where the time goes.

Starts the app in this process (vit_t with seeded random weights: timings do not depend on
the weights), drives it in headless Chromium (Playwright) and prints p50/p95 per inference
size. The browser stamps the click and the drawing (performance.now()); the server returns
its own start/end times and decode/packing times with the masks (same machine, same clock).

    python benchmarks/click_latency.py --image tests/data/corgi-2048x1365.jpg --sizes 1024 2048

Columns: total (pointer event -> masks drawn), to server (event -> the server's handler
starts: Gradio's queue and transport), server (the handler: decoding both sides at once,
packing the masks, status), decode SAM / BA-SAM (each side's decoder, run concurrently), server_other (server minus
the slower decoder: the server's work besides decoding), prepare (packing both masks into one PNG), transfer (handler end -> masks in the browser),
drawing (PNG decode and compositing in the browser).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

COLUMNS = ("total", "to_server", "server", "decode_sam", "decode_basam", "server_other", "prepare", "transfer", "drawing")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="image to upload")
    parser.add_argument("--sizes", nargs="+", default=["1024", "2048"], help="inference sizes S (default: 1024 2048)")
    parser.add_argument("--clicks", type=int, default=20, help="clicks timed per size (default: 20)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
                        help="torch threads in the server (default: $OMP_NUM_THREADS, else torch's default)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    parser.add_argument("--screenshot", help="save a screenshot of the page after the last click here")
    args = parser.parse_args(argv)

    import torch
    from playwright.sync_api import sync_playwright

    from basam_ui.models import random_sam
    from basam_ui.web.compare_page import build_app
    from basam_ui.web.engine import AppEngine
    from basam_ui.web.server import launch_options

    if args.threads:
        torch.set_num_threads(args.threads)
    sam = random_sam("vit_t", seed=0, device="cpu")
    engine = AppEngine({"vit_t": lambda: sam}, random_weights=True)
    demo = build_app(engine)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options(engine))
    url = demo.local_url
    print(f"# {Path(args.image).name}, vit_t random weights, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs; app at {url}")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
            page.set_input_files("#upload input[type=file]", args.image)
            page.wait_for_function(
                "() => { const r = document.querySelector('#canvas .bc-root'); return r && r.dataset.ready === '1' }",
                timeout=120_000)
            print("| S | clicks | " + " | ".join(f"{c} p50 / p95 (ms)" for c in COLUMNS) + " |")
            print("|---:|---:|" + "---:|" * len(COLUMNS))
            for size in args.sizes:
                if size != "1024":
                    page.click("#size input")
                    page.click(f"#size li[aria-label='{size}']")
                page.wait_for_function(
                    "s => document.querySelector('#status').innerText.includes('S=' + s + ')')", arg=size, timeout=600_000)
                page.wait_for_function(
                    "() => !document.querySelector('#status').innerText.includes('encoding')", timeout=600_000)
                rows = click_series(page, args.clicks + 2)[2:]  # two warm-up clicks
                summary = " | ".join(
                    f"{statistics.median([r[c] for r in rows]):.0f} / {percentile([r[c] for r in rows], 0.95):.0f}"
                    for c in COLUMNS
                )
                print(f"| {size} | {len(rows)} | {summary} |", flush=True)
            if args.screenshot:
                page.screenshot(path=args.screenshot, full_page=True)
            browser.close()
    finally:
        demo.close()
        engine.close()
    return 0


def click_series(page, n: int) -> list[dict]:
    """Click n spots of the canvas one after the other (each waits for its masks); the
    browser's latency records, one per click. Each click after the first follows an undo
    (Z) of the one before, so every timed click decodes one point."""
    box = page.eval_on_selector("#canvas canvas.bc-canvas", "c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height] }")
    start = page.evaluate("() => document.querySelector('#canvas .bc-root').bc.latency().length")
    for k in range(n):
        drawn = page.evaluate("() => document.querySelector('#canvas .bc-root').bc.state().drawn")
        x = box[0] + box[2] * (0.35 + 0.3 * ((k * 7) % 10) / 10)
        y = box[1] + box[3] * (0.35 + 0.3 * ((k * 3) % 10) / 10)
        if k:
            page.keyboard.press("z")  # undo the last click (a prompt change too, not timed)
            page.wait_for_function("d => document.querySelector('#canvas .bc-root').bc.state().drawn > d", arg=drawn, timeout=120_000)
            drawn += 1
        page.mouse.click(x, y)
        page.wait_for_function(
            "n => document.querySelector('#canvas .bc-root').bc.latency().length >= n", arg=start + k + 1, timeout=120_000)
        time.sleep(0.05)
    rows = page.evaluate("() => document.querySelector('#canvas .bc-root').bc.latency()")[start:]
    for row in rows:  # the server's work besides the decoders (which run at the same time)
        row["server_other"] = row["server"] - max(row["decode_sam"], row["decode_basam"])
    return rows


if __name__ == "__main__":
    sys.exit(main())
