"""`basam-ui export DIR --format F --out OUT`: a project's objects written as a dataset
(`project.export.export_project`), with a warning line per kind of image left out (missing,
changed since annotated, unreadable, without a DICOM SEG)."""

from __future__ import annotations

import argparse
import sys


def main(args: argparse.Namespace) -> int:
    """Run the export; returns the exit status (1 with the reason when it failed)."""
    from ..project import Project, ProjectError
    from ..project.records import display_path
    from ..project.export import export_project

    try:
        with Project.open(args.dir, args.db, create=False, readonly=True, scan=False) as project:
            result = export_project(project, args.out, args.format, all_images=args.all, polygons=args.polygons,
                                    copy_images=args.copy_images, val_fraction=args.val, seed=args.seed,
                                    keep_uids=args.keep_uids, seg_labels=args.seg_labels,
                                    include_rejected=args.include_rejected, include_proposals=args.include_proposals,
                                    reviewed_only=args.reviewed_only)  # fmt: skip
    except (ProjectError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for kind, paths in (("missing", result.missing), ("changed since annotated", result.changed),
                        ("unreadable", result.unreadable), ("without a DICOM SEG (see skipped.txt)", result.skipped)):
        if paths:
            print(f"warning: {len(paths)} image file(s) {kind}: {', '.join(map(display_path, paths[:5]))}"
                  + (" ..." if len(paths) > 5 else ""), file=sys.stderr)
    print(f"{result.format}: {result.objects} objects of {result.images} images -> {result.out}")
    return 0
