"""`basam-ui precompute`: encode every (image, size, setting) of a folder into the disk cache
that the app, `annotate` and `eval` read, so they find it with no encoder pass.

A job is one image file with all its sizes and settings (the file is read and hashed once);
`ImageJob(segmenter)` does it and says what happened. `run_jobs` runs jobs here, one after
the other, with a progress bar; `basam_ui.distributed` runs the same jobs on Ray actors.
What is cached already is read back, not encoded (so a re-run resumes); unreadable files
are reported and skipped; an item that fails (e.g. out of memory) is reported, the rest go on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Protocol, Sequence

from ..basam.config import BASAMConfig
from ..vocabulary import SETTING_NAMES, check_sizes, embedding_bytes, gb_to_bytes

if TYPE_CHECKING:
    from ..segmenter import Segmenter


def settings_for(names: Sequence[str], beta: float) -> tuple[tuple[str, BASAMConfig], ...]:
    """Named settings (`vocabulary.PRESETS`): vanilla SAM, BA-SAM (NSF + BM-AM), NSF only,
    BM-AM only (slope `beta`), made by `BASAMConfig.preset` as the app and `eval` make them,
    so their cache keys are the same."""
    unknown = [n for n in names if n not in SETTING_NAMES]
    if unknown or not names:
        raise ValueError(f"settings must be among {', '.join(SETTING_NAMES)}, got {list(names)}")
    return tuple((name, BASAMConfig.preset(name, beta)) for name in dict.fromkeys(names))


def list_images(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files in the given folders, found as `annotate` finds them (recursively,
    hidden folders such as `.basam-ui` skipped; `project.scan.scan_folder`), and the given
    files; absolute, sorted per folder, without repeats. Raises ValueError for a path that
    does not exist."""
    from ..project.scan import scan_folder

    found: dict[Path, None] = {}
    for source in sources:
        path = Path(source).expanduser().resolve()
        if path.is_dir():
            found.update((path / rel, None) for rel in scan_folder(path).images)
        elif path.is_file():
            found[path] = None
        else:
            raise ValueError(f"{source} does not exist")
    return list(found)


@dataclass
class ImageOutcome:
    """What happened to one image: items encoded now, found in the cache, failed; or why the
    file was skipped."""

    path: str
    encoded: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: Optional[str] = None
    encoder_calls: int = 0


@dataclass(frozen=True)
class ImageJob:
    """Encode one image file at every size with every setting into the segmenter's cache."""

    path: str
    sizes: tuple[int, ...]
    settings: tuple[tuple[str, BASAMConfig], ...]

    def __call__(self, segmenter: "Segmenter") -> ImageOutcome:
        from ..image_io import load_image
        from ..segmenter import EncoderOutOfMemory

        outcome = ImageOutcome(self.path)
        try:
            image = load_image(self.path)
        except (ValueError, OSError) as exc:  # ImageReadError / ImageTooLargeError are ValueErrors
            outcome.skipped = str(exc)
            return outcome
        calls = segmenter.encoder_calls
        for size in self.sizes:
            for name, config in self.settings:
                try:
                    found = segmenter.embed(image, size, config)
                except (EncoderOutOfMemory, ValueError) as exc:
                    outcome.failed.append(f"{name} at {size}: {exc}")
                    continue
                if found.source == "computed":
                    outcome.encoded += 1
                else:
                    outcome.cached += 1
                del found
        outcome.encoder_calls = segmenter.encoder_calls - calls
        return outcome

    def lost(self, reason: str) -> ImageOutcome:
        """The outcome when the job could not run at all (e.g. its workers died)."""
        return ImageOutcome(self.path, failed=[f"{name} at {size}: {reason}" for size in self.sizes for name, _ in self.settings])


def make_jobs(paths: Iterable[Path], sizes: Sequence[int], settings: Sequence[tuple[str, BASAMConfig]]) -> list[ImageJob]:
    return [ImageJob(str(p), tuple(sizes), tuple(settings)) for p in paths]


@dataclass
class Summary:
    """Counts of a precompute run. Items are (image, size, setting); skipped counts files."""

    images: int = 0
    encoded: int = 0
    cached: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    lost_workers: int = 0  # Ray actors that died; their images ran again elsewhere
    problems: list[str] = field(default_factory=list)

    def add(self, outcome: ImageOutcome) -> list[str]:
        """Count `outcome`; returns its problems as lines to report."""
        self.encoded += outcome.encoded
        self.cached += outcome.cached
        self.failed += len(outcome.failed)
        self.skipped += outcome.skipped is not None
        lines = problem_lines(outcome)
        self.problems += lines
        return lines

    @property
    def images_per_second(self) -> float:
        return (self.images - self.skipped) / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        lost = f", {self.lost_workers} lost worker(s) replaced" if self.lost_workers else ""
        return (
            f"{self.images} images: {self.encoded} encoded, {self.cached} already cached, "
            f"{self.skipped} skipped (unreadable), {self.failed} failed{lost}; "
            f"{self.seconds:.1f} s ({self.images_per_second:.3f} images/s)"
        )


class JobOutcome(Protocol):
    """What `problem_lines` reads of one image's outcome (this module's `ImageOutcome`,
    `propose.ProposeOutcome`)."""

    path: str
    failed: Sequence[str]
    skipped: Optional[str]


def problem_lines(outcome: JobOutcome) -> list[str]:
    """What went wrong with one image of a job, as lines to report: a "failed PATH, why" per
    failed item, "skipped PATH: why" for an unreadable file."""
    lines = [f"failed {outcome.path}, {why}" for why in outcome.failed]
    if outcome.skipped is not None:
        lines.append(f"skipped {outcome.path}: {outcome.skipped}")
    return lines


def run_jobs(
    jobs: Sequence[ImageJob],
    segmenter: Optional["Segmenter"] = None,
    *,
    outcomes: Optional[Iterable[ImageOutcome]] = None,
    progress: bool = False,
) -> Summary:
    """Run `jobs` with `segmenter` here (or collect `outcomes` produced elsewhere, e.g. by
    Ray, in any order), with a progress bar and ETA on stderr when `progress`."""
    from tqdm import tqdm

    if outcomes is None:
        if segmenter is None:
            raise ValueError("give a segmenter or the outcomes")
        outcomes = (job(segmenter) for job in jobs)
    summary = Summary(images=len(jobs))
    started = time.perf_counter()
    with tqdm(total=len(jobs), desc="precompute", unit="image", disable=not progress, file=sys.stderr) as bar:
        for outcome in outcomes:
            for line in summary.add(outcome):
                bar.write(line, file=sys.stderr)
            bar.set_postfix(encoded=summary.encoded, cached=summary.cached, refresh=False)
            bar.update(1)
    summary.seconds = time.perf_counter() - started
    return summary


# ---------------------------------------------------------------- CLI


def cache_dir_for(sources: Sequence[str], cache_dir: Optional[str]) -> Path:
    """--cache-dir, else the project cache of the one folder given (as `annotate` uses)."""
    from ..cache import default_project_cache_dir

    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    if len(sources) == 1 and Path(sources[0]).expanduser().is_dir():
        return default_project_cache_dir(Path(sources[0]).resolve())
    raise ValueError("give --cache-dir (the default, FOLDER/.basam-ui/cache, needs a single folder of images)")


def main(args: argparse.Namespace) -> int:
    """`basam-ui precompute`: list the images, load the model (here or on Ray workers), run, summarise."""
    from ..cache import EmbeddingCache
    from ..models import CheckpointError, ModelSpec
    from ..segmenter import Segmenter

    try:
        sizes = check_sizes(args.sizes)
        settings = settings_for(args.settings, args.beta)
        paths = list_images(args.images)
        cache_dir = cache_dir_for(args.images, args.cache_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not paths:
        print(f"error: no image files in {' '.join(args.images)}", file=sys.stderr)
        return 1
    disk_bytes = gb_to_bytes(args.cache_disk_gb)
    planned = len(paths) * len(settings) * sum(embedding_bytes(s) for s in sizes)
    print(f"{len(paths)} images x {len(sizes)} sizes x {len(settings)} settings -> {cache_dir} "
          f"(up to {planned / (1 << 30):.1f} GB)", file=sys.stderr)  # fmt: skip
    if planned > disk_bytes:
        print(f"warning: that is more than --cache-disk-gb {args.cache_disk_gb:g}: the least recently used "
              "embeddings will be deleted to make room; raise --cache-disk-gb to keep them all", file=sys.stderr)  # fmt: skip
    jobs = make_jobs(paths, sizes, settings)
    spec = ModelSpec.from_args(args)
    try:
        if args.ray is not None:
            from .distributed import RayUnavailable, run_on_ray

            try:
                with run_on_ray(spec, cache_dir, disk_bytes, address=args.ray or None, workers=args.workers) as pool:
                    summary = run_jobs(jobs, outcomes=pool.map(jobs), progress=True)
                    summary.lost_workers = pool.lost
            except RayUnavailable as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        else:
            segmenter = Segmenter.from_spec(spec, EmbeddingCache(0, cache_dir, disk_bytes=disk_bytes))
            summary = run_jobs(jobs, segmenter, progress=True)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary.text(), file=sys.stderr)
    return 1 if summary.failed else 0
