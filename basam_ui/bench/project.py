"""`basam-ui bench project`: opening a folder of many images, committing and exporting objects.

Everything happens in a temporary folder. Image files are hard links to one synthetic JPEG
(scanning and opening a project reads no pixels, so the content does not matter for the
opening figures; exports hash each exported file as they check for changes)."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..project import Project, Provenance
from ..project.export import export_project
from ..vocabulary import DATASET_FORMATS
from ..project.scan import scan_folder


def synthetic_jpeg(path: Path, width: int, height: int) -> Path:
    """A smooth colour JPEG of the given size."""
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], axis=2)
    Image.fromarray(rgb.astype(np.uint8)).save(path, quality=90)
    return path


def random_blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A bool mask: a filled star-shaped polygon of 64 vertices, a few hundred pixels across."""
    import cv2

    cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radius = rng.uniform(0.05, 0.15) * min(height, width) * rng.uniform(0.7, 1.0, angles.size)
    points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1).round().astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def make_folder(root: Path, count: int, image: Path, per_folder: int = 500) -> None:
    """`count` hard links to `image` in sub-folders of `per_folder`, plus a few non-image files."""
    for i in range(count):
        folder = root / f"part{i // per_folder:03d}"
        folder.mkdir(exist_ok=True)
        os.link(image, folder / f"img{i:05d}.jpg")
    (root / "README.txt").write_text("not an image\n")


def time_open(root: Path) -> dict[str, float]:
    """Seconds to scan the folder, open (create or reopen) the project, and read the first
    page's data (image list with counts, progress, classes, claims, next to do)."""
    t0 = time.perf_counter()
    scan_folder(root)
    t1 = time.perf_counter()
    project = Project.open(root)
    t2 = time.perf_counter()
    project.images(), project.progress(), project.labels(), project.claimed_by_others("bench")
    first = project.next_todo("bench", "bench")
    t3 = time.perf_counter()
    project.open_image(first.id, "bench", "bench")
    t4 = time.perf_counter()
    project.close()
    return {"scan": t1 - t0, "open": t2 - t1, "page data": t3 - t2, "open first image": t4 - t3, "total": t4 - t0}


def run_project_bench(args: argparse.Namespace) -> int:
    """Print the opening and export figures."""
    with tempfile.TemporaryDirectory(prefix="basam-ui-bench-") as tmp:
        tmp = Path(tmp)
        width, height = args.size, args.size * 3 // 4
        jpeg = synthetic_jpeg(tmp / "source.jpg", width, height)

        big = tmp / "big"
        big.mkdir()
        make_folder(big, args.files, jpeg)
        print(f"opening a project of {args.files} image files (seconds; the open includes 'Project.open' = "
              "scan + database):")
        for label in ("first open (creates the database)", "second open (database exists)"):
            t = time_open(big)
            print(f"  {label}: scan {t['scan']:.3f}, Project.open {t['open']:.3f}, first page data "
                  f"{t['page data']:.3f}, open first image (hash + header) {t['open first image']:.3f}; "
                  f"total {t['total']:.3f}")

        small = tmp / "export"
        small.mkdir()
        make_folder(small, args.images, jpeg, per_folder=args.images)
        rng = np.random.default_rng(0)
        commits = []
        with Project.open(small, labels=["a", "b", "c"]) as project:
            for image in project.images():
                project.open_image(image.id)
                for k in range(args.objects):
                    mask = random_blob(rng, height, width)
                    provenance = Provenance(
                        side="basam" if k % 3 else "sam", model_type="vit_t", checkpoint_sha256=None,
                        input_size=2048, nsf=True, bmam=True, beta=0.1,
                        prompts={"points": [[width / 2, height / 2]], "labels": [1]}, annotator="bench",
                    )
                    t0 = time.perf_counter()
                    project.commit_object(image.id, mask, "abc"[k % 3], provenance)
                    commits.append(time.perf_counter() - t0)
                project.set_status(image.id, "done")
            print(f"commit of one {width}x{height} object (RLE encode + transaction with fsync): "
                  f"median {statistics.median(commits) * 1000:.1f} ms, p95 "
                  f"{np.percentile(commits, 95) * 1000:.1f} ms over {len(commits)}")
            print(f"export of {args.images} images x {args.objects} objects at {width}x{height} (seconds):")
            for fmt in DATASET_FORMATS:
                options = [{}] if fmt != "coco" else [{}, {"polygons": True}]
                for extra in options:
                    t0 = time.perf_counter()
                    result = export_project(project, tmp / f"out-{fmt}-{len(extra)}", fmt, **extra)
                    seconds = time.perf_counter() - t0
                    name = fmt + (" --polygons" if extra else "")
                    print(f"  {name:15s} {seconds:7.2f}  ({result.objects} objects, "
                          f"{seconds / max(result.images, 1) * 1000:.0f} ms per image)")
    return 0
