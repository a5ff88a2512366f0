"""Patches: what the PNG and YOLO exports make of a slide. A slide's level 0 is far too large
for one label map or one training image, so each field that has objects becomes a patch:
the field's pixels (read at the field's downsample, as the model saw them) with the objects
that lie there drawn at the field's resolution. These are what a segmentation model trains on.

A patch is an export entry like an image's, (image record, objects, flags), whose record has
an id of its own (negative: it is no image of the project) and, as its path, the patch's name
under the slide's (`<slide>/x<X>_y<Y>_w<W>_h<H>_d<D>.png`, the field's level-0 rectangle and
downsample) and whose objects are the slide's objects redrawn
in the field's pixels (`fields.mask_in_field`: an object made in that field keeps its own
mask exactly; one made in another field is rasterised there), bottom layer first.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..sources.fields import Field
from . import fields
from .objects import ObjectRecord, encode_mask
from .records import ImageRecord

Entry = tuple  # (ImageRecord, [ObjectRecord], flags dict)
FieldReader = Callable[[ImageRecord, Field], Optional[np.ndarray]]  # the field's pixels, or None


def patch_name(stem: str, field: Field) -> str:
    """`<stem>/x<X>_y<Y>_w<W>_h<H>_d<D>`: where a field's patch goes (no extension)."""
    return f"{stem}/x{field.x}_y{field.y}_w{field.width}_h{field.height}_d{field.downsample:g}"


def local_object(obj: ObjectRecord, field: Field) -> Optional[ObjectRecord]:
    """The object as drawn in the field's pixels (a record whose mask is the field's size and
    has no field of its own), or None when nothing of it falls on a field pixel's centre."""
    mask = fields.mask_in_field(obj, field)
    if not mask.any():
        return None
    rle = encode_mask(mask)
    return replace(obj, height=rle["size"][0], width=rle["size"][1], counts=rle["counts"], area=rle["area"],
                   bbox=rle["bbox"], field=None)  # fmt: skip


def expand(entries: Sequence[Entry], names: dict[int, str]) -> tuple[list[Entry], dict[int, str], list[tuple]]:
    """Entries with each slide (an image whose objects were made in fields) replaced by its
    patches, one per field with objects; other images stay as they are.

    Arguments:
      entries: (image record, its objects, flags) per image.
      names: image id -> output name without extension.

    Returns:
      (the entries, their output names (id -> name without extension, patches under negative
      ids), the patches made: (patch id, the slide's image record, its field) each).
    """
    out, out_names, made = [], {}, []
    for image, objects, flags in entries:
        placed = [obj for obj in objects if obj.field is not None]
        if not placed:
            out.append((image, objects, flags))
            out_names[image.id] = names[image.id]
            continue
        for field in fields.fields_of(placed):
            local = [found for obj in fields.in_field(placed, field) if (found := local_object(obj, field)) is not None]
            name = patch_name(names[image.id], field)
            width, height = field.size
            patch_id = -(len(made) + 1)
            record = replace(image, id=patch_id, path=f"{name}.png", width=width, height=height, frame=0, frames=1,
                             object_count=len(local))  # fmt: skip
            out.append((record, local, {**flags, "width": width, "height": height, "plain_file": True}))
            out_names[patch_id] = name
            made.append((patch_id, image, field))
    return out, out_names, made


def write_images(out: Path, made: Sequence[tuple], names: dict[int, str], read: FieldReader) -> list[int]:
    """Write each patch's field pixels as OUT/images/<name>.png. Returns the patch ids whose
    slide could not be read (missing or unreadable: their labels are written all the same)."""
    import cv2

    failed = []
    for patch_id, image, field in made:
        pixels = read(image, field)
        if pixels is None:
            failed.append(patch_id)
            continue
        target = out / "images" / f"{names[patch_id]}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), np.ascontiguousarray(pixels[..., ::-1])):
            raise OSError(f"{target}: could not write the PNG")
    return failed
