"""Figures about how a set of objects was made, and the same as Markdown (OUT/report.md and
the page's panel): objects per class, BA-SAM vs SAM commits overall and by input size S,
mean IoU between the two sides' masks, prompts and brush edits per object, time per object,
and areas per class (level-0 pixels, and µm² and mm² for objects on images with a pixel size:
a slide's mpp, a DICOM's pixel spacing)."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Mapping, Optional, Sequence

from ..vocabulary import SIDES
from . import fields
from .objects import ObjectRecord
from .records import Progress
from .store import Project


def report_figures(
    objects: Sequence[ObjectRecord], labels: Sequence[str], progress: Optional[Progress] = None,
    pixel_sizes: Optional[Mapping[int, Optional[tuple[float, float]]]] = None,
) -> dict:
    """A JSON-ready dict: "objects", "per_class" {class: n} (every class, in order),
    "per_annotator", "committed" {"basam", "sam", "basam_share"}, "by_size" {S: {"basam",
    "sam"}}, "mean_iou_sam_basam" (None without values) and "iou_count", "prompts_per_object",
    "brush_edits_per_object", "brushed_share", "seconds_per_object" {"mean", "median",
    "count"}, "areas" {class: {"count", "mean_px" (level-0 pixels), "mean_um2", "mean_mm2" and
    "um2_count" (objects on images whose `pixel_sizes[image id]`, µm per pixel, is known)}} for
    the classes with objects, and "images" (the progress counts) when `progress` is given."""
    n = len(objects)
    per_class = {name: 0 for name in labels}
    per_annotator: dict[str, int] = {}
    sides = dict.fromkeys(SIDES, 0)
    by_size: dict[int, dict[str, int]] = {}
    for obj in objects:
        p = obj.provenance
        per_class[obj.label] = per_class.get(obj.label, 0) + 1
        per_annotator[p.annotator] = per_annotator.get(p.annotator, 0) + 1
        if p.side is not None:  # imported objects were made by no model
            sides[p.side] += 1
            by_size.setdefault(p.input_size, dict.fromkeys(SIDES, 0))[p.side] += 1
    areas: dict[str, dict] = {}
    for obj in objects:
        found = areas.setdefault(obj.label, {"px": [], "um2": []})
        found["px"].append(fields.area(obj))
        um2 = fields.area_um2(obj, (pixel_sizes or {}).get(obj.image_id))
        if um2 is not None:
            found["um2"].append(um2)
    ious = [o.provenance.iou_sam_basam for o in objects if o.provenance.iou_sam_basam is not None]
    seconds = [o.provenance.seconds for o in objects if o.provenance.seconds is not None]
    return {
        "objects": n,
        "per_class": per_class,
        "per_annotator": dict(sorted(per_annotator.items())),
        "committed": {**sides, "basam_share": sides["basam"] / sum(sides.values()) if sum(sides.values()) else None},
        "by_size": dict(sorted(by_size.items())),
        "mean_iou_sam_basam": statistics.fmean(ious) if ious else None,
        "iou_count": len(ious),
        "prompts_per_object": statistics.fmean(o.provenance.prompt_count for o in objects) if n else None,
        "brush_edits_per_object": statistics.fmean(o.provenance.brush_edits for o in objects) if n else None,
        "brushed_share": sum(o.provenance.brushed for o in objects) / n if n else None,
        "seconds_per_object": {
            "mean": statistics.fmean(seconds) if seconds else None,
            "median": statistics.median(seconds) if seconds else None,
            "count": len(seconds),
        },
        "areas": {
            name: {"count": len(a["px"]), "mean_px": statistics.fmean(a["px"]),
                   "mean_um2": statistics.fmean(a["um2"]) if a["um2"] else None,
                   "mean_mm2": statistics.fmean(a["um2"]) / 1e6 if a["um2"] else None, "um2_count": len(a["um2"])}
            for name, a in ((n, areas[n]) for n in [*labels, *sorted(set(areas) - set(labels))] if n in areas)
        },
        **({"images": asdict(progress)} if progress is not None else {}),
    }


def project_figures(project: Project) -> dict:
    """`report_figures` of every live object of the project, with its progress and the team's
    figures (`team_report`: review, proposals, agreement, time by source) (the page's panel)."""
    from .team_report import team_figures

    objects = project.all_objects()
    pixel_sizes = {image.id: image.pixel_size for image in project.images()}
    return {**report_figures(objects, project.labels(), project.progress(), pixel_sizes),
            "team": team_figures(project, objects)}  # fmt: skip


def report_markdown(figures: dict, title: str = "Annotation report", warnings: Sequence[str] = ()) -> str:
    """`report_figures` output as a Markdown document, `warnings` listed first."""
    lines = [f"# {title}", ""]
    if warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    if "images" in figures:
        im = figures["images"]
        lines += [
            f"Images: {im['done']} done of {im['total']} ({im['in_progress']} in progress, {im['todo']} to do, "
            f"{im['skipped']} skipped; {im['missing']} missing, {im['changed']} changed, "
            f"{im.get('unreadable', 0)} unreadable)"
            + (f"; {im.get('reviewed', 0)} reviewed, {im.get('needs_work', 0)} need work." if "reviewed" in im else "."),
            "",
        ]
    c = figures["committed"]
    lines += [
        f"Objects: {figures['objects']}. Committed mask: BA-SAM {c['basam']}, SAM {c['sam']}"
        + (f" (BA-SAM {_pct(c['basam_share'])})." if c["basam_share"] is not None else "."),
        "",
        "| class | objects |",
        "|---|---:|",
        *[f"| {name} | {count} |" for name, count in figures["per_class"].items()],
        "",
        "| S | BA-SAM | SAM | BA-SAM share |",
        "|---:|---:|---:|---:|",
        *[
            f"| {size} | {s['basam']} | {s['sam']} | {_pct(s['basam'] / (s['basam'] + s['sam']))} |"
            for size, s in figures["by_size"].items()
        ],
        "",
        "| figure | value |",
        "|---|---:|",
        f"| mean IoU between SAM's and BA-SAM's masks | {_num(figures['mean_iou_sam_basam'], 3)} "
        f"(n = {figures['iou_count']}) |",
        f"| prompts per object | {_num(figures['prompts_per_object'], 2)} |",
        f"| brush edits per object | {_num(figures['brush_edits_per_object'], 2)} |",
        f"| objects brushed | {_pct(figures['brushed_share'])} |",
        f"| seconds per object (mean / median) | {_num(figures['seconds_per_object']['mean'], 1)} / "
        f"{_num(figures['seconds_per_object']['median'], 1)} (n = {figures['seconds_per_object']['count']}) |",
        "",
    ]
    if figures.get("areas"):
        lines += ["| class | objects | mean area (level-0 px) | mean area (µm²) | mean area (mm²) |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        lines += [f"| {name} | {a['count']} | {a['mean_px']:.0f} | "
                  + (f"{a['mean_um2']:.4g} | {a['mean_mm2']:.3g} (n = {a['um2_count']}) |" if a["mean_um2"] is not None
                     else "– | – |")
                  for name, a in figures["areas"].items()]  # fmt: skip
        lines.append("")
    if figures["per_annotator"]:
        lines += ["| annotator | objects |", "|---|---:|"]
        lines += [f"| {name or '(unnamed)'} | {count} |" for name, count in figures["per_annotator"].items()]
        lines.append("")
    if "team" in figures:
        from .team_report import team_markdown

        lines.append(team_markdown(figures["team"]))
    return "\n".join(lines)


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _num(value: Optional[float], digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
