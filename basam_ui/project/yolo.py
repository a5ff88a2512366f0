"""YOLO segmentation labels: one line per polygon, "class x1 y1 x2 y2 ..." with coordinates
divided by the image's width and height (the boundary pixels' coordinates, as Ultralytics'
own mask converter writes them). An object in several pieces gives several lines; holes are
not representable and are filled. Lines follow the layer order (later objects on top)."""

from __future__ import annotations

from typing import Mapping, Sequence

from .objects import ObjectRecord


def yolo_lines(objects: Sequence[ObjectRecord], height: int, width: int, class_index: Mapping[str, int]) -> list[str]:
    """The label lines of one image; `class_index` maps class names to 0-based indices."""
    lines = []
    for obj in objects:
        for polygon in obj.outlines():
            coords = " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in polygon["outer"])
            lines.append(f"{class_index[obj.label]} {coords}")
    return lines
