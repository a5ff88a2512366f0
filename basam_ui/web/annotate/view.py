"""What the annotate page shows for a state: the image list, the progress line, the objects
list, the committed objects as one palette PNG for the canvas, the class choices and the
report. No Gradio; reads the project, changes nothing."""

from __future__ import annotations

import io
from typing import Optional

import numpy as np

from ...vocabulary import PALETTE, SIDE_LABELS, STATUS_LABELS
from ..common import events as common
from ..common import render
from ..common.text import literal
from .events import AnnotateState

OPEN_MARK = "▶ "
OBJECT_COLOURS = PALETTE  # objects' colours, by list position
LIST_LIMIT = 200  # rows of the image list
MAX_DRAWN = 127  # objects drawn apart on the canvas (pixel value k + 1 inside, 128 + k + 1 on the edge)
FILL_ALPHA, EDGE_ALPHA = 90, 255


def class_choices(labels: list[str]) -> list[str]:
    """Radio choices "1 · lesion", ... (keys 1-9 pick the first nine)."""
    return [f"{k} · {name}" if k <= 9 else name for k, name in enumerate(labels, start=1)]


def class_choice(labels: list[str], name: str) -> Optional[str]:
    choices = class_choices(labels)
    return choices[labels.index(name)] if name in labels else (choices[0] if choices else None)


def image_rows(project, state: AnnotateState, limit: int = LIST_LIMIT) -> list[list]:
    """Rows [image, status, objects] of the image list; flags for missing and changed files,
    images open in another session, and the one open here (▶). A project of more than
    `limit` images lists the `limit` around the open one (a page stays quick at 5,000)."""
    others = project.claimed_by_others(state.holder or None)
    images = project.images()
    if len(images) > limit:
        here = next((k for k, image in enumerate(images) if image.id == state.image_id), 0)
        first = min(max(0, here - limit // 2), len(images) - limit)
        images = images[first : first + limit]
    rows = []
    for image in images:
        status = STATUS_LABELS.get(image.status, image.status)
        if image.missing:
            status += " · missing"
        elif image.unreadable:
            status += " · unreadable"
        if image.changed:
            status += " · changed!"
        if image.id in others:
            status += f" · open by {others[image.id] or 'another session'}"
        if image.pixel_size is not None and image.width is not None:  # its full size and pixel size, when known
            status += f" · {image.width}×{image.height} at {image.pixel_size[0]:g} µm/px"
        name = (OPEN_MARK if image.id == state.image_id else "") + image.display_name
        rows.append([name, status, image.object_count])
    return rows


def progress_text(project) -> str:
    """'**3 / 10 done** · 1 skipped · 2 in progress · 14 objects' (+ missing / changed)."""
    p = project.progress()
    parts = [f"**{p.done + p.reviewed} / {p.total} done**", f"{p.skipped} skipped", f"{p.in_progress} in progress",
             f"{p.objects} objects"]
    if p.reviewed or p.needs_work:
        parts[1:1] = [f"{p.reviewed} reviewed", f"{p.needs_work} need work"]
    if p.missing:
        parts.append(f"⚠️ {p.missing} missing")
    if p.unreadable:
        parts.append(f"⚠️ {p.unreadable} unreadable")
    if p.changed:
        parts.append(f"⚠️ {p.changed} changed since annotated")
    return " · ".join(parts)


def object_choices(records) -> list[tuple[str, int]]:
    """Objects list entries: ('#1 lesion · BA-SAM · brushed · ann', object id), bottom layer
    first; how it was made when not clicked (proposal, imported) and a reviewer's decision
    ('✓ accepted', '✗ rejected: why') follow."""
    return [
        (f"#{k} {r.label} · {SIDE_LABELS.get(r.provenance.side, 'imported')}{' · brushed' if r.provenance.brushed else ''}"
         f"{' · proposal' if r.provenance.source == 'proposal' else ''}"
         f"{' · ' + r.provenance.annotator if r.provenance.annotator else ''}"
         f"{' · ✓ accepted' if r.review == 'accepted' else ''}"
         f"{' · ✗ rejected: ' + (r.review_reason or '') if r.review == 'rejected' else ''}", r.id)
        for k, r in enumerate(records, start=1)
    ]


def objects_layer(state: AnnotateState, records) -> Optional[dict]:
    """The canvas's `objects` prop: the image's committed objects as palette PNGs, "pieces",
    each drawn on its rectangle of the image ({"png", "x", "y", "width", "height"} in level-0
    pixels): one at the original size for an image's objects, one per field for a slide's
    (at the field's resolution). Pixel k + 1 is inside object k of the list, 128 + k + 1 on
    its outline, later objects on top; the palette carries each object's colour and
    transparency. With the items' classes, colours and level-0 boxes; None without an image."""
    from ...project import fields as placed

    session = state.session
    if session.canvas_image is None or not session.has_image:
        return None
    w, h = session.image_size
    items = [
        {"id": r.id, "n": k + 1, "label": r.label, "bbox": placed.bbox(r), "selected": r.id == state.selected, "review": r.review,
         "colour": "#%02x%02x%02x" % OBJECT_COLOURS[k % len(OBJECT_COLOURS)]}
        for k, r in enumerate(records)
    ]
    pieces = []
    for field in [None, *placed.fields_of(records)]:
        numbered = [(k, r) for k, r in enumerate(records) if r.field == field]
        rectangle = {"x": 0, "y": 0, "width": w, "height": h} if field is None else {
            "x": field.x, "y": field.y, "width": field.width, "height": field.height}  # fmt: skip
        size = (h, w) if field is None else field.size[::-1]
        png = pack_objects(numbered, *size) if numbered else None
        if png:
            pieces.append({"png": render.data_url(png), **rectangle})
    return {"url": session.canvas_image["url"], "pieces": pieces, "items": items}


def pack_objects(numbered, height: int, width: int) -> Optional[bytes]:
    """Objects (bottom first, each with its number k in the list: its colour) -> an 8-bit
    palette PNG with transparency (see `objects_layer`); None when no object has this size (a
    changed file)."""
    import cv2
    from PIL import Image

    values = np.zeros((height, width), np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    drawn = False
    for k, record in numbered:
        if k >= MAX_DRAWN or (record.height, record.width) != (height, width):
            continue
        x0, y0, crop = record.cropped_mask()
        inside = np.pad(crop.astype(np.uint8), 1)
        edge = (inside & ~cv2.erode(inside, cross, borderType=cv2.BORDER_CONSTANT, borderValue=0))[1:-1, 1:-1]
        region = values[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]
        region[crop] = k + 1
        region[edge.astype(bool)] = 128 + k + 1
        drawn = True
    if not drawn:
        return None
    palette, alpha = [0, 0, 0], [0]
    for v in range(1, 256):
        k = (v & 127) - 1
        colour = OBJECT_COLOURS[k % len(OBJECT_COLOURS)] if k >= 0 else (0, 0, 0)
        palette += list(colour)
        alpha.append(0 if k < 0 else EDGE_ALPHA if v & 128 else FILL_ALPHA)
    image = Image.fromarray(values, "P")
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=bytes(alpha), compress_level=1)
    return buffer.getvalue()


def status_text(project, state: AnnotateState) -> str:
    """The line under the canvas: the image, its status and the current mask's figures."""
    session = state.session
    if state.image_id is None:
        return "No image open."
    image = project.image(state.image_id)
    if not session.has_image:  # missing or unreadable: the name, its status and why
        return (f"**{literal(image.display_name)}** · {STATUS_LABELS.get(image.status, image.status)}  \n"
                f"{literal(state.note)}")
    w, h = session.image_size
    about = f" at {image.pixel_size[0]:g} µm/px" if image.pixel_size else ""
    lines = [f"**{literal(image.display_name)}** ({w}×{h}{about}) · {STATUS_LABELS.get(image.status, image.status)} · "
             f"{image.object_count} object{'s' if image.object_count != 1 else ''}"
             + (f" · Enter replaces object {state.reopened}" if state.reopened else "")]
    if state.note:
        lines.append(literal(state.note))
    if session.fields is not None:
        lines.append(field_text(session))
    if session.sam is not None and session.basam is not None:
        lines.append(common.status_text(session))
    return "  \n".join(lines)


def field_text(session) -> str:
    """A slide's field line: where it is and at which resolution the model sees it."""
    field = session.field
    if field is None:
        return "No field yet: click the image to start a field at the current view (or press G)."
    width, height = field.size
    finer = "; zoom in and press G for a finer field" if field.downsample > 1 else ""
    return (f"Field: {field.width}×{field.height} level-0 px at ({field.x}, {field.y}), read at 1:{field.downsample:.3g} "
            f"({width}×{height} px for the model{finer})")
