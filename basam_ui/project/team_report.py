"""The team's figures: how often reviewers accept objects (per annotator, class, committed side
and S), how proposals fare per predicted-IoU band, how far two annotators of the same image
agree (mean IoU of matched objects, per class), and the time per object by how it was made
(clicked, accepted proposal, imported). `team_figures` (JSON-ready) and `team_markdown`."""

from __future__ import annotations

import statistics
from typing import Iterable, Optional, Sequence

import numpy as np

from ..vocabulary import OBJECT_SOURCES, PROPOSAL_SCORE_BANDS, SIDE_LABELS
from .objects import ObjectRecord

NO_SIDE = "none"  # the side key of imported objects (no model made them)


def acceptance(rows: Iterable[dict], by: str) -> dict:
    """{group: {"accepted", "rejected", "rate"}} of decided objects grouped by `by` (a key of
    `ReviewStore.review_rows`; a side of None counts as NO_SIDE); rate = accepted / decided."""
    out: dict = {}
    for row in rows:
        group = row[by] if row[by] is not None else (NO_SIDE if by == "side" else "")
        counts = out.setdefault(group, {"accepted": 0, "rejected": 0})
        counts[row["review"]] += 1
    for counts in out.values():
        counts["rate"] = counts["accepted"] / (counts["accepted"] + counts["rejected"])
    return dict(sorted(out.items(), key=lambda item: str(item[0])))


def score_bands(decisions: Iterable[tuple[float, str]], edges: Sequence[float] = PROPOSAL_SCORE_BANDS) -> list[dict]:
    """Proposals per predicted-IoU band: [{"band": "0.88–0.92", "low", "high", "accepted",
    "rejected", "pending", "acceptance"}] from below the first edge to 1 (the top band includes
    1.0); acceptance = accepted / decided (None when none was decided)."""
    bounds = [0.0, *edges, 1.0]
    bands = [{"band": f"{lo:.2f}–{hi:.2f}", "low": lo, "high": hi, "accepted": 0, "rejected": 0, "pending": 0}
             for lo, hi in zip(bounds, bounds[1:])]  # fmt: skip
    for iou, status in decisions:
        k = min(len(bands) - 1, max(0, int(np.searchsorted(edges, iou, side="right"))))
        bands[k][status] += 1
    for band in bands:
        decided = band["accepted"] + band["rejected"]
        band["acceptance"] = band["accepted"] / decided if decided else None
    return [band for band in bands if band["accepted"] + band["rejected"] + band["pending"]]


def match_objects(a: Sequence[ObjectRecord], b: Sequence[ObjectRecord]) -> list[tuple[ObjectRecord, ObjectRecord, float]]:
    """Pairs of the same class between two annotators' objects of one image, matched greedily by
    IoU (highest first; each object in at most one pair; pairs that do not overlap are left out)."""
    candidates = []
    masks: dict[int, np.ndarray] = {}
    for x in a:
        for y in b:
            if x.label != y.label or not _boxes_meet(x.bbox, y.bbox):
                continue
            mx, my = (masks.setdefault(o.id, o.mask()) for o in (x, y))
            inter = int(np.logical_and(mx, my).sum())
            if inter:
                candidates.append((inter / int(np.logical_or(mx, my).sum()), x, y))
    pairs, used = [], set()
    for iou, x, y in sorted(candidates, key=lambda c: (-c[0], c[1].id, c[2].id)):
        if x.id not in used and y.id not in used:
            used.update((x.id, y.id))
            pairs.append((x, y, iou))
    return pairs


def _boxes_meet(p: list, q: list) -> bool:
    return p[0] < q[0] + q[2] and q[0] < p[0] + p[2] and p[1] < q[1] + q[3] and q[1] < p[1] + p[3]


def agreement(project) -> dict:
    """Between the two annotators of each double image: {"images", "per_class": {class: {"pairs",
    "mean_iou", "unmatched"}}, "mean_iou", "pairs", "unmatched"} (unmatched: objects of either
    annotator without a partner)."""
    per_class: dict[str, dict] = {}
    images = project.double_images()
    for image_id, (first, second) in images:
        objects = project.objects(image_id)
        a = [o for o in objects if o.provenance.annotator == first]
        b = [o for o in objects if o.provenance.annotator == second]
        pairs = match_objects(a, b)
        paired = {o.id for x, y, _ in pairs for o in (x, y)}
        for x, _, iou in pairs:
            per_class.setdefault(x.label, {"ious": [], "unmatched": 0})["ious"].append(iou)
        for o in a + b:
            if o.id not in paired:
                per_class.setdefault(o.label, {"ious": [], "unmatched": 0})["unmatched"] += 1
    ious = [v for c in per_class.values() for v in c["ious"]]
    return {
        "images": len(images),
        "per_class": {name: {"pairs": len(c["ious"]), "mean_iou": statistics.fmean(c["ious"]) if c["ious"] else None,
                             "unmatched": c["unmatched"]} for name, c in sorted(per_class.items())},
        "pairs": len(ious),
        "mean_iou": statistics.fmean(ious) if ious else None,
        "unmatched": sum(c["unmatched"] for c in per_class.values()),
    }  # fmt: skip


def time_by_source(objects: Iterable[ObjectRecord]) -> dict:
    """{source: {"objects", "timed", "mean", "median"}}: seconds per object by how it was made."""
    out = {}
    objects = list(objects)
    for source in OBJECT_SOURCES:
        mine = [o for o in objects if o.provenance.source == source]
        seconds = [o.provenance.seconds for o in mine if o.provenance.seconds is not None]
        out[source] = {"objects": len(mine), "timed": len(seconds),
                       "mean": statistics.fmean(seconds) if seconds else None,
                       "median": statistics.median(seconds) if seconds else None}  # fmt: skip
    return out


def team_figures(project, objects: Optional[Sequence[ObjectRecord]] = None) -> dict:
    """The review, proposal, agreement and timing figures of a project (JSON-ready): "reviewed"
    (decisions), "acceptance" {"overall", "per_annotator", "per_class", "per_side", "per_size"},
    "proposals" (score bands), "agreement", "time_by_source" (of `objects`, default every live one)."""
    rows = project.review_rows()
    accepted = sum(r["review"] == "accepted" for r in rows)
    return {
        "reviewed": len(rows),
        "acceptance": {
            "overall": {"accepted": accepted, "rejected": len(rows) - accepted,
                        "rate": accepted / len(rows) if rows else None},
            "per_annotator": acceptance(rows, "annotator"),
            "per_class": acceptance(rows, "label"),
            "per_side": acceptance(rows, "side"),
            "per_size": acceptance([r for r in rows if r["input_size"] is not None], "input_size"),
        },
        "proposals": score_bands(project.proposal_decisions()),
        "agreement": agreement(project),
        "time_by_source": time_by_source(project.all_objects() if objects is None else objects),
    }  # fmt: skip


def team_markdown(figures: dict) -> str:
    """`team_figures` as Markdown sections (acceptance, proposals, agreement, time by source)."""
    acc = figures["acceptance"]
    lines = ["## Review", ""]
    if figures["reviewed"]:
        o = acc["overall"]
        lines += [f"Objects decided by reviewers: {figures['reviewed']} ({o['accepted']} accepted, "
                  f"{o['rejected']} rejected; acceptance {_pct(o['rate'])}).", ""]
        names = {"per_annotator": "annotator", "per_class": "class", "per_side": "committed side", "per_size": "S"}
        for key, title in names.items():
            lines += [f"| {title} | accepted | rejected | acceptance |", "|---|---:|---:|---:|"]
            for group, c in acc[key].items():
                shown = SIDE_LABELS.get(group, "imported (no side)" if group == NO_SIDE else group) if key == "per_side" else group
                lines.append(f"| {shown or '(unnamed)'} | {c['accepted']} | {c['rejected']} | {_pct(c['rate'])} |")
            lines.append("")
    else:
        lines += ["No object has been reviewed yet.", ""]
    if figures["proposals"]:
        lines += ["## Proposals by predicted IoU", "", "| predicted IoU | accepted | rejected | pending | acceptance |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {b['band']} | {b['accepted']} | {b['rejected']} | {b['pending']} | {_pct(b['acceptance'])} |"
                  for b in figures["proposals"]]
        lines.append("")
    ag = figures["agreement"]
    if ag["images"]:
        lines += ["## Agreement between two annotators", "",
                  f"{ag['images']} images annotated twice: {ag['pairs']} matched pairs, mean IoU {_num(ag['mean_iou'])}, "
                  f"{ag['unmatched']} objects without a partner.", "",
                  "| class | pairs | mean IoU | unmatched |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {c['pairs']} | {_num(c['mean_iou'])} | {c['unmatched']} |" for name, c in ag["per_class"].items()]
        lines.append("")
    lines += ["## Time per object by how it was made", "", "| made by | objects | timed | mean s | median s |",
              "|---|---:|---:|---:|---:|"]
    lines += [f"| {source} | {t['objects']} | {t['timed']} | {_num(t['mean'], 1)} | {_num(t['median'], 1)} |"
              for source, t in figures["time_by_source"].items()]
    lines.append("")
    return "\n".join(lines)


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _num(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
