"""What a window change costs in the pages: a full-size mammogram (16-bit MONOCHROME1, made by
tests/dicoms.py) opened as the pages open it, then switched to its second window — the file
read again under that window with a new display copy (`window_events.reread`), then both
sides encoded (`events.compute`, random-weight vit_t) — and switched back (a cache hit).

    PYTHONPATH=.:tests python benchmarks/window_change.py [--rows 4096] [--cols 3328] [--sizes 1024 2048]

Prints the wall time of each step per S.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import dicoms  # noqa: E402
from basam_ui.models import random_sam  # noqa: E402
from basam_ui.web.common import events, window_events  # noqa: E402
from basam_ui.web.common.engine import AppEngine  # noqa: E402
from basam_ui.web.common.session import Settings  # noqa: E402


def timed(step):
    started = time.perf_counter()
    value = step()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=3328)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024])
    args = parser.parse_args()
    sam = random_sam("vit_t", seed=0, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        path = str(dicoms.mammogram(Path(folder), rows=args.rows, cols=args.cols).path)
        print(f"mammogram {args.cols} x {args.rows}, 16-bit MONOCHROME1; random vit_t on the CPU")
        print("| S | open (read, window, display copy) | encode both sides | new window: read again | encode both sides | "
              "back to the first window: read | cache hit |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            engine = AppEngine({"vit_t": lambda: sam}, max_size=max(args.sizes), work_dir=Path(folder) / f"work{size}")
            settings = Settings("vit_t", size)
            session, opened = timed(lambda: events.upload_image(engine, path))
            session, encoded = timed(lambda: events.compute(engine, session, settings))
            first, second = (key for _, key in session.windows[:2])
            harder, reread = timed(lambda: window_events.reread(engine, session, window=second))
            harder, reencoded = timed(lambda: events.compute(engine, harder, settings))
            back, back_read = timed(lambda: window_events.reread(engine, harder, window=first))
            back, hit = timed(lambda: events.compute(engine, back, settings))
            assert harder.sam.source == "computed" and back.sam.source == "memory"
            print(f"| {size} | {opened:.2f} s | {encoded:.2f} s | {reread:.2f} s | {reencoded:.2f} s | {back_read:.2f} s | "
                  f"{hit:.2f} s |")
            for thread in threading.enumerate():  # the pages' full-resolution copies, written in the background
                if thread.name == "full-copy":
                    thread.join()
            engine.close()


if __name__ == "__main__":
    main()
