"""Pending proposals as export entries (`basam-ui export --include-proposals`): each image's
pending proposals of its newest set for the file as it is, as objects of a class "proposal"
(appended to the classes), lying under the image's objects, with `attributes.source =
"proposal"` and their set's model, S, setting and scores."""

from __future__ import annotations

from typing import Sequence

from .objects import ObjectRecord
from .proposals import proposal_provenance
from .records import ImageRecord

PROPOSAL_CLASS = "proposal"


def with_proposals(
    project, images: Sequence[ImageRecord], by_image: dict[int, list], labels: list[str]
) -> tuple[dict[int, list], list[str], set[int]]:
    """(objects by image with the pending proposals first, the classes with "proposal" added
    when any proposal is, the ids given to the proposals: after every object's id)."""
    out = {image_id: list(objects) for image_id, objects in by_image.items()}
    next_id = 1 + max((o.id for o in project.all_objects()), default=0)
    added: set[int] = set()
    for image in images:
        current = image.current_sha256 or image.sha256
        sets = [s for s in project.proposal_sets(image.id) if s.sha256 == current]
        if not sets:
            continue
        stored = sets[-1]  # the newest
        pending = []
        for proposal in project.proposals(stored.id, "pending"):
            provenance = proposal_provenance(stored, proposal, annotator="")
            pending.append(ObjectRecord(
                id=next_id, image_id=image.id, label=PROPOSAL_CLASS, label_id=0, layer=0, height=proposal.height,
                width=proposal.width, counts=proposal.counts, area=proposal.area, bbox=proposal.bbox,
                provenance=provenance, created_at=stored.created_at, replaces=None,
            ))  # fmt: skip
            added.add(next_id)
            next_id += 1
        out[image.id] = pending + out.get(image.id, [])
    if added and PROPOSAL_CLASS not in labels:
        labels = [*labels, PROPOSAL_CLASS]
    return out, labels, added
