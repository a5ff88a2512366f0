"""Whole-slide serving costs on a generated 100,000 x 80,000 px slide: Deep Zoom tile latency
while panning at 1:1, the serving process's peak memory, and field reads at S = 1024 / 2048 /
4096.

    PYTHONPATH=. python benchmarks/slide_tiles.py [--slide PATH] [--keep] [--threads 6]

The slide is the tests' pattern (tests/slides.py: 256-px blocks, 2-px stripes), a tiled
pyramidal TIFF with 2x levels down to under 1,000 px, deflate-compressed, written tile by tile
(equal tiles are compressed once). `--slide` reuses one written before (`--keep` keeps it).

Each measurement runs in a fresh process, as a server would, so its peak RSS is its own:

- open: `open_source`, `TileMaker`, and the tiles of the first view (the whole slide fitted
  into a 1920 x 1080 viewport);
- pan at 1:1: a 1920 x 1080 viewport moves across the whole slide's width (steps of a quarter
  viewport), then down a column; at each step the viewer asks for every visible tile, `--threads`
  at a time (a browser's six connections); the per-tile time of tiles not yet cached (p50 /
  p95) and the time until each step's view is complete (p50 / p95);
- pan at 1:4: the same path two Deep Zoom levels down;
- fields: `read_field` of the field for a view at 1:1 (an S x S view), at 1:4 (a 4S x 4S view:
  a pyramid level's pixels as they are), at 1:3 (resampled from the 2x level) and of the whole
  slide (downsample 100,000 / S), each at three places (median).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

SIZE = (100_000, 80_000)
VIEWPORT = (1920, 1080)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def visible(tiles, level: int, x: int, y: int) -> list[tuple[int, int, int]]:
    """Tile addresses of `level` a VIEWPORT at level pixel (x, y) shows."""
    size = 254
    cols, rows = tiles.level_tiles[level]
    c0, r0 = max(0, x // size), max(0, y // size)
    c1, r1 = min(cols - 1, (x + VIEWPORT[0] - 1) // size), min(rows - 1, (y + VIEWPORT[1] - 1) // size)
    return [(level, c, r) for c in range(c0, c1 + 1) for r in range(r0, r1 + 1)]


def pan(path: str, threads: int, levels_down: int) -> dict:
    """Open the slide and pan a viewport across it at Deep Zoom top level - `levels_down`."""
    from basam_ui.sources import open_source
    from basam_ui.sources.tiles import TileMaker

    rss_start = peak_rss_mib()
    started = time.perf_counter()
    source = open_source(path)
    tiles = TileMaker(source)
    opened = time.perf_counter() - started
    fit = max(level for level, (w, h) in enumerate(tiles.level_dimensions) if w <= VIEWPORT[0] and h <= VIEWPORT[1])
    started = time.perf_counter()
    for address in visible(tiles, fit, 0, 0):
        tiles.tile(*address)
    first_view = time.perf_counter() - started

    level = tiles.level_count - 1 - levels_down
    width, height = tiles.level_dimensions[level]
    step = VIEWPORT[0] // 4
    path_xy = [(x, height // 2 - VIEWPORT[1] // 2) for x in range(0, width - VIEWPORT[0], step)]
    path_xy += [(width - VIEWPORT[0], y) for y in range(0, height - VIEWPORT[1], step)]
    seen: set = set()
    tile_times: list[float] = []
    view_times: list[float] = []

    def fetch(address):
        t0 = time.perf_counter()
        tiles.tile(*address)
        return address, time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for x, y in path_xy:
            wanted = visible(tiles, level, x, y)
            t0 = time.perf_counter()
            for address, seconds in pool.map(fetch, wanted):
                if address not in seen:
                    tile_times.append(seconds)
                    seen.add(address)
            view_times.append(time.perf_counter() - t0)
    return {
        "open_s": opened,
        "first_view_s": first_view,
        "first_view_level": fit,
        "level": level,
        "steps": len(path_xy),
        "tiles_made": len(tile_times),
        "tile_p50_ms": 1000 * statistics.median(tile_times),
        "tile_p95_ms": 1000 * percentile(tile_times, 95),
        "view_p50_ms": 1000 * statistics.median(view_times),
        "view_p95_ms": 1000 * percentile(view_times, 95),
        "cache_mib": tiles.cache.nbytes / 2**20,
        "rss_start_mib": rss_start,
        "rss_peak_mib": peak_rss_mib(),
    }


def fields(path: str, sizes: list[int]) -> dict:
    """read_field times for fields at 1:1, 1:3, 1:4 and of the whole slide."""
    from basam_ui.sources import Region, open_source
    from basam_ui.sources.fields import field_for_view, read_field

    results = {}
    with open_source(path) as source:
        width, height = source.size
        for s in sizes:
            for label, view_side in (("1:1", s), ("1:3", 3 * s), ("1:4", 4 * s), ("whole", None)):
                times = []
                for k in range(3):
                    if view_side is None:
                        view = Region(0, 0, width, height)
                    else:  # three places, apart, so OpenSlide's cache of decoded tiles does not help
                        view = Region(7_000 + k * 29_000, 11_000 + k * 21_000, view_side, view_side)
                    field = field_for_view(view, s, bounds=source.size)
                    t0 = time.perf_counter()
                    pixels = read_field(source, field)
                    times.append(time.perf_counter() - t0)
                results[(s, label)] = (statistics.median(times), field.downsample, pixels.shape[1], pixels.shape[0])
    return {"fields": results, "rss_peak_mib": peak_rss_mib()}


def in_child(function, *args):
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slide", type=Path, help="a slide written before (default: write one)")
    parser.add_argument("--keep", action="store_true", help="keep the written slide (its path is printed)")
    parser.add_argument("--threads", type=int, default=6, help="tile requests served at once")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    args = parser.parse_args()
    from slides import write_benchmark_slide

    folder = None
    path = args.slide
    if path is None:
        folder = tempfile.mkdtemp(prefix="slide-bench-")
        path = write_benchmark_slide(Path(folder) / "slide-100000x80000.tif", SIZE)
    try:
        for down, name in ((0, "1:1"), (2, "1:4")):
            r = in_child(pan, str(path), args.threads, down)
            if down == 0:
                print(f"open: {r['open_s'] * 1000:.0f} ms; first view (whole slide, Deep Zoom level "
                      f"{r['first_view_level']}): {r['first_view_s'] * 1000:.0f} ms")  # fmt: skip
            print(
                f"pan at {name} (Deep Zoom level {r['level']}, {r['steps']} steps, {r['tiles_made']} tiles made, "
                f"{args.threads} at a time): tile p50 {r['tile_p50_ms']:.1f} ms, p95 {r['tile_p95_ms']:.1f} ms; "
                f"view complete p50 {r['view_p50_ms']:.0f} ms, p95 {r['view_p95_ms']:.0f} ms; "
                f"tile cache {r['cache_mib']:.0f} MiB; peak RSS {r['rss_peak_mib']:.0f} MiB "
                f"(after imports {r['rss_start_mib']:.0f} MiB)"
            )
        r = in_child(fields, str(path), args.sizes)
        print("field reads (median of 3 places):")
        for (s, label), (seconds, downsample, w, h) in r["fields"].items():
            print(f"  S={s:5d} {label:>5}: {w}x{h} at downsample {downsample:.2f}: {seconds * 1000:.0f} ms")
        print(f"  peak RSS {r['rss_peak_mib']:.0f} MiB")
    finally:
        if folder is not None and not args.keep:
            path.unlink()
            Path(folder).rmdir()
        elif folder is not None:
            print(f"kept {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
