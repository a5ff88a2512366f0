"""`basam-ui import DIR --format coco|yolo|png|labelme SOURCE`: another tool's (or our own
export's) annotations added to a project as objects to correct, in one transaction.

The images' sizes are read first (their headers and hashes, as opening them in the page
would record them), so that every mask is checked against its image; the source is parsed
whole (`project.imports.parse_annotations`: a malformed file stops everything and says where);
then `Project.import_objects` adds the objects, creating classes by name, leaving the images'
statuses alone. Annotations of images the project does not have are listed and skipped.
"""

from __future__ import annotations

import argparse
import sys

from ..project.records import display_path

SHOWN = 10  # unmatched images and skipped annotations listed by name


def main(args: argparse.Namespace) -> int:
    """Run the import; returns the exit status (1 with the reason when nothing was imported)."""
    from ..project import Project, ProjectError
    from ..project.imports import AnnotationFileError, parse_annotations

    try:
        project = Project.open(args.dir, args.db)
    except (ProjectError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with project:
        unsized = [image for image in project.images() if image.height is None and not image.missing]
        if unsized:
            print(f"reading the size of {len(unsized)} images…", file=sys.stderr)
        for image in unsized:
            project.open_image(image.id)
        try:
            parsed = parse_annotations(args.format, args.source, project.image_sizes(), project_root=project.root)
            result = project.import_objects(parsed, annotator=args.annotator or "")
        except AnnotationFileError as exc:
            print(f"error: {exc}. Nothing was imported.", file=sys.stderr)
            return 1
        except (ProjectError, FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}. Nothing was imported.", file=sys.stderr)
            return 1
    for item in result.unmatched[:SHOWN]:
        print(f"not in the project: {item.name} ({item.annotations} annotation(s) in {item.file}: {item.reason})",
              file=sys.stderr)  # fmt: skip
    for origin, reason in result.skipped[:SHOWN]:
        print(f"skipped {origin}: {reason}", file=sys.stderr)
    more = len(result.unmatched) - SHOWN, len(result.skipped) - SHOWN
    if max(more) > 0:
        print(f"... and {max(0, more[0])} more images not in the project, {max(0, more[1])} more skipped annotations",
              file=sys.stderr)  # fmt: skip
    added = f"; new classes: {', '.join(map(display_path, result.classes_added))}" if result.classes_added else ""
    print(f"{args.format}: {result.objects} objects imported into {result.images} images{added}; "
          f"{sum(u.annotations for u in result.unmatched)} annotations of {len(result.unmatched)} images not in the "
          f"project and {len(result.skipped)} others skipped")  # fmt: skip
    return 0
