"""YOLO segmentation datasets as Ultralytics trains on them: `labels/<name>.txt` with one line
per polygon, "class x1 y1 x2 y2 ..." with coordinates divided by the image's width and height
(the boundary pixels' coordinates, as Ultralytics' own mask converter writes them),
`images/<name>.<ext>` beside them (links to the originals, or copies), and `data.yaml`.

An object in several pieces gives several lines; holes are not representable and are filled.
Lines follow the layer order (later objects on top). Ultralytics finds an image's labels by
swapping `images` for `labels` in its path and its extension for `.txt`; `data.yaml` has no
`path` key, so it resolves `train` and `val` from the YAML's own folder.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Mapping, Optional, Sequence

from .item_files import ItemFile, place_item
from .objects import ObjectRecord


def yolo_lines(objects: Sequence[ObjectRecord], height: int, width: int, class_index: Mapping[str, int]) -> list[str]:
    """The label lines of one image; `class_index` maps class names to 0-based indices."""
    lines = []
    for obj in objects:
        for polygon in obj.outlines():
            coords = " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in polygon["outer"])
            lines.append(f"{class_index[obj.label]} {coords}")
    return lines


def write_dataset(
    out: Path,
    entries: Sequence[tuple],
    names: Mapping[int, str],
    labels: Sequence[str],
    files: Mapping[int, ItemFile],
    *,
    copy_images: bool = False,
    val_fraction: Optional[float] = None,
    seed: int = 0,
) -> list[str]:
    """Write a YOLO-seg dataset: labels, images and data.yaml.

    Arguments:
      out: the export folder.
      entries: (image record, its objects bottom layer first, flags with "width"/"height").
      names: image id -> output name without extension (`export._output_names`).
      labels: class names, in index order.
      files: image id -> its file (`item_files.ItemFile`).
      copy_images: copy the images instead of linking to them (an item whose file is not a
        plain image is always written as a PNG of its pixels; one already in its place, a slide's
        patch, stays).
      val_fraction: that share of the images (at least one, when there are two or more) goes
        to `val`, drawn with `seed`; None: `val` is the same list as `train`.
      seed: the split's seed.

    Returns:
      The image paths whose file could not be placed under images/ (missing or unreadable).
    """
    import yaml

    class_index = {name: i for i, name in enumerate(labels)}
    placed, unplaced = [], []
    for image, objects, flags in entries:
        name = names[image.id]
        label_file = out / "labels" / f"{name}.txt"
        label_file.parent.mkdir(parents=True, exist_ok=True)
        label_file.write_text("".join(f"{line}\n" for line in yolo_lines(objects, flags["height"], flags["width"], class_index)))
        written = place_item(files[image.id], out / "images" / name, copy_images)
        if written is not None:
            placed.append(written.relative_to(out).as_posix())
        else:
            unplaced.append(image.path)
    config: dict = {"train": "images", "val": "images"}
    if val_fraction is not None:
        if not 0 < val_fraction < 1:
            raise ValueError(f"--val must be a fraction between 0 and 1, got {val_fraction}")
        order = sorted(placed)
        random.Random(seed).shuffle(order)
        count = min(len(order) - 1, max(1, round(val_fraction * len(order)))) if len(order) > 1 else 0
        val = set(order[:count])
        for split, chosen in (("train", [p for p in sorted(placed) if p not in val]), ("val", sorted(val))):
            (out / f"{split}.txt").write_text("".join(f"./{p}\n" for p in chosen))
            config[split] = f"{split}.txt"
    config["names"] = dict(enumerate(labels))
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in labels))
    header = "# Ultralytics YOLO segmentation dataset written by basam-ui: yolo segment train data=data.yaml\n"
    (out / "data.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return unplaced
