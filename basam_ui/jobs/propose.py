"""`basam-ui propose DIR`: automatic mask proposals for every image of a project, stored in it
(`Project.store_proposals`), so the annotate page shows them without computing them.

A job is one image file with every (size, setting) asked for; `ProposeJob(segmenter)` embeds it
(through the disk cache the page reads) and runs `proposals.propose` for each, skipping the
sets the project already holds for that file and those settings (a re-run resumes). Jobs run
here with a progress bar (points decoded, masks kept), or on Ray workers with the pattern of
`precompute` (`distributed.run_on_ray`); the driver stores each image's sets as they arrive,
so Ctrl-C leaves every finished set stored.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

from ..basam.config import BASAMConfig
from ..vocabulary import Resolution, gb_to_bytes, parse_resolution
from .precompute import problem_lines, settings_for

if TYPE_CHECKING:
    from ..proposals import ProposalSet, ProposalSettings, RunProgress
    from ..segmenter import Segmenter


@dataclass
class ProposeOutcome:
    """What happened to one image: the sets computed now, how many were stored already, which
    failed (and why), or why the file was skipped."""

    path: str
    image_id: int
    sha256: str
    sets: list["ProposalSet"] = field(default_factory=list)
    stored: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: Optional[str] = None


@dataclass(frozen=True)
class ProposeJob:
    """Proposals of one image at every size with every setting (picklable: Ray runs it too)."""

    path: str
    image_id: int
    sha256: str
    sizes: tuple[Resolution, ...]
    settings: tuple[tuple[str, BASAMConfig], ...]
    proposal_settings: "ProposalSettings"
    stored_keys: frozenset[str] = frozenset()

    def __call__(
        self,
        segmenter: "Segmenter",
        on_step: Optional[Callable[["RunProgress"], None]] = None,
        cancelled: Optional[Callable[[], bool]] = None,
    ) -> ProposeOutcome:
        from ..image_io import load_image
        from ..proposals import propose, record_for, segmenter_decoder, settings_key
        from ..segmenter import EncoderOutOfMemory

        outcome = ProposeOutcome(self.path, self.image_id, self.sha256)
        try:
            image = load_image(self.path)
        except (ValueError, OSError) as exc:  # ImageReadError / ImageTooLargeError are ValueErrors
            outcome.skipped = str(exc)
            return outcome
        decode = segmenter_decoder(segmenter)
        for size in self.sizes:
            for name, config in self.settings:
                try:
                    s = segmenter.resolve_size(image.shape[:2], size)
                    record = record_for(segmenter.model.identity, s, config, segmenter.encoder_precision,
                                        self.proposal_settings)  # fmt: skip
                    if settings_key(record) in self.stored_keys:
                        outcome.stored += 1
                        continue
                    embedding = segmenter.embed(image, s, config)
                    outcome.sets.append(propose(embedding, decode, self.proposal_settings, on_step=on_step,
                                                cancelled=cancelled))  # fmt: skip
                except (EncoderOutOfMemory, ValueError) as exc:
                    outcome.failed.append(f"{name} at {size}: {exc}")
        return outcome

    def lost(self, reason: str) -> ProposeOutcome:
        """The outcome when the job could not run at all (e.g. its workers died)."""
        failed = [f"{name} at {size}: {reason}" for size in self.sizes for name, _ in self.settings]
        return ProposeOutcome(self.path, self.image_id, self.sha256, failed=failed)


@dataclass
class ProposeSummary:
    """Counts of a run: images, sets computed and stored now, masks in them, sets already stored,
    files skipped (unreadable), (size, setting) items failed."""

    images: int = 0
    sets: int = 0
    masks: int = 0
    stored: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        return (f"{self.images} images: {self.sets} proposal sets computed ({self.masks} masks), {self.stored} "
                f"already stored, {self.skipped} skipped (unreadable), {self.failed} failed; {self.seconds:.1f} s")


def project_jobs(project, sizes: Sequence[Resolution], settings: Sequence[tuple[str, BASAMConfig]],
                 proposal_settings: "ProposalSettings") -> tuple[list[ProposeJob], list[str]]:  # fmt: skip
    """One job per image of the project whose file is there and readable (its size and hash
    recorded now when they were not), with the keys of the sets stored for that file. Returns
    (jobs, "path: why" of the images left out)."""
    jobs, left_out = [], []
    for image in project.images():
        if image.missing:
            left_out.append(f"{image.path}: the file is missing")
            continue
        image, _ = project.open_image(image.id)  # size and hash from the file as it is now
        sha = image.current_sha256 or image.sha256
        if image.missing or image.unreadable or sha is None:
            left_out.append(f"{image.path}: {image.unreadable or 'the file is missing'}")
            continue
        keys = frozenset(s.key for s in project.proposal_sets(image.id) if s.sha256 == sha)
        jobs.append(ProposeJob(str(project.file_path(image)), image.id, sha, tuple(sizes), tuple(settings),
                               proposal_settings, keys))  # fmt: skip
    return jobs, left_out


def run_and_store(project, jobs: Sequence[ProposeJob], outcomes: Iterable[ProposeOutcome], bar=None) -> ProposeSummary:
    """Store each outcome's sets in the project as it arrives, counting; `bar` (tqdm) advances per image."""
    summary = ProposeSummary(images=len(jobs))
    started = time.perf_counter()
    try:
        for outcome in outcomes:
            for proposal_set in outcome.sets:
                project.store_proposals(outcome.image_id, outcome.sha256, proposal_set)
                summary.sets += 1
                summary.masks += len(proposal_set.proposals)
            summary.stored += outcome.stored
            summary.failed += len(outcome.failed)
            summary.skipped += outcome.skipped is not None
            lines = problem_lines(outcome)
            summary.problems += lines
            if bar is not None:
                for line in lines:
                    bar.write(line, file=sys.stderr)
                bar.set_postfix(sets=summary.sets, masks=summary.masks, refresh=False)
                bar.update(1)
    finally:
        summary.seconds = time.perf_counter() - started
    return summary


def local_outcomes(jobs: Sequence[ProposeJob], segmenter: "Segmenter", bar=None) -> Iterable[ProposeOutcome]:
    """Run the jobs here, one after the other, showing each run's points on `bar`."""
    def step(progress) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{progress.points_done}/{progress.points_total} points, {progress.phase}")

    for job in jobs:
        if bar is not None:
            bar.set_description(Path(job.path).name[:30])
        yield job(segmenter, on_step=step)


def proposal_settings_from_args(args: argparse.Namespace) -> "ProposalSettings":
    from ..proposals import ProposalSettings

    return ProposalSettings(points_per_side=args.points_per_side, pred_iou_thresh=args.pred_iou_thresh,
                            stability_score_thresh=args.stability_score_thresh)  # fmt: skip


def main(args: argparse.Namespace) -> int:
    """`basam-ui propose`: open the project, list the images, load the model (here or on Ray
    workers), compute and store; Ctrl-C keeps what is finished."""
    from tqdm import tqdm

    from ..cache import EmbeddingCache, default_project_cache_dir
    from ..models import CheckpointError, ModelSpec
    from ..project import Project, ProjectError
    from ..segmenter import Segmenter

    try:
        sizes = [parse_resolution(args.size)]
        settings = settings_for(args.settings, args.beta)
        proposal_settings = proposal_settings_from_args(args)
        project = Project.open(args.dir, args.db)
    except (ProjectError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with project:
        cache_dir = Path(args.cache_dir) if args.cache_dir else default_project_cache_dir(project.root)
        jobs, left_out = project_jobs(project, sizes, settings, proposal_settings)
        for line in left_out:
            print(f"skipped {line}", file=sys.stderr)
        print(f"{len(jobs)} images x {len(settings)} settings at S = {args.size}, {proposal_settings.points_per_side}^2 "
              f"points each -> {project.db_path}", file=sys.stderr)  # fmt: skip
        spec = ModelSpec.from_args(args)
        disk_bytes = gb_to_bytes(args.cache_disk_gb)
        summary = None
        bar = tqdm(total=len(jobs), desc="propose", unit="image", file=sys.stderr)
        try:
            if args.ray is not None:
                from .distributed import RayUnavailable, run_on_ray

                try:
                    with run_on_ray(spec, cache_dir, disk_bytes, address=args.ray or None, workers=args.workers) as pool:
                        summary = run_and_store(project, jobs, pool.map(jobs), bar)
                except RayUnavailable as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
            else:
                segmenter = Segmenter.from_spec(spec, EmbeddingCache(0, cache_dir, disk_bytes=disk_bytes))
                summary = run_and_store(project, jobs, local_outcomes(jobs, segmenter, bar), bar)
        except (CheckpointError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            bar.close()
            stored = sum(1 for _ in project.proposal_sets())
            print(f"\ninterrupted: every finished set is stored ({stored} in the project); run the same command "
                  "again to go on", file=sys.stderr)  # fmt: skip
            return 130
        finally:
            bar.close()
    print(summary.text(), file=sys.stderr)
    return 1 if summary.failed else 0
