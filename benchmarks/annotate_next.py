"""Next -> ready on the annotate page, with and without prefetch: the server's work from the
Next click to the new image shown with both sides' embeddings ready (open the image: claim,
hash, display copy; then encode SAM and BA-SAM, or find them in the cache).

    PYTHONPATH=. python benchmarks/annotate_next.py [--images tests/data] [--size 1024] [--think 20]

Each round opens image k, lets the "annotator" work `--think` seconds at most (with prefetch
on, the background thread encodes the next to-do image meanwhile; the round waits until it has
finished, or the think time ends), then times Next. The variants alternate per round, each
with a fresh embedding cache, so both see the same images cold. Random vit_t weights (timing
does not depend on them); the project database goes to a temporary folder.
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

from basam_ui.models import random_sam  # noqa: E402
from basam_ui.project import Project  # noqa: E402
from basam_ui.web import annotate  # noqa: E402
from basam_ui.web.engine import AppEngine  # noqa: E402
from basam_ui.web.prefetch import Prefetcher  # noqa: E402
from basam_ui.web.session import Settings  # noqa: E402


def one_round(sam, folder: Path, db: Path, prefetch: bool, size: int, think: float) -> float:
    """Open the first image, think, then time Next (to do) -> both embeddings ready."""
    engine = AppEngine({"vit_t": lambda: sam}, max_size=4096, random_weights=True)
    prefetcher = Prefetcher(engine, idle_s=0.2) if prefetch else None
    settings = Settings("vit_t", size, True, True, 0.1, False)
    try:
        with Project.open(folder, db, scan=True) as project:
            state = annotate.first_image(engine, project, annotate.start(None, "bench"))
            state = annotate.encode(engine, state, settings)
            if prefetcher:
                following = project.next_todo(state.holder, after=state.image_id, claim=False)
                resolution, configs = annotate.settings_for(engine, settings)
                prefetcher.request("vit_t", str(project.file_path(following)), resolution, configs)
            deadline = time.monotonic() + think
            while time.monotonic() < deadline and not (prefetcher and prefetcher.done):
                time.sleep(0.05)
            started = time.perf_counter()
            state = annotate.go(engine, project, state, "todo")
            state = annotate.encode(engine, state, settings)
            seconds = time.perf_counter() - started
            project.release(state.holder)
            return seconds
    finally:
        if prefetcher:
            prefetcher.stop()
        engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(REPO / "tests" / "data"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--think", type=float, default=30.0, help="seconds the annotator spends at most per image")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sam = random_sam("vit_t", seed=0)
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            for prefetch in (False, True) if k % 2 == 0 else (True, False):
                db = Path(tmp) / f"project-{k}-{prefetch}.sqlite"
                times[prefetch].append(one_round(sam, Path(args.images), db, prefetch, args.size, args.think))
                print(f"round {k + 1}, prefetch {'on ' if prefetch else 'off'}: Next -> ready {times[prefetch][-1]:.3f} s",
                      flush=True)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"S={args.size}, {args.images}: median Next -> ready without prefetch {off:.3f} s, with prefetch {on:.3f} s "
          f"(ratio {off / on:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
