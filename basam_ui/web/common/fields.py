"""Items larger than one picture on the canvas: slides, annotated in fields, and photos too
large for one full-resolution copy, shown in tiles. No Gradio here.

A slide (a source read by region: `ImageSource.regions`) opens as a thumbnail, its Deep Zoom
tiles and no decoded image: the model encodes a *field* (`sources.fields.Field`), the
level-0 rectangle the annotator saw when asking for it, read at the downsample that makes its
long side at most S. The browser asks for a field with a number (`field_rev`) and the view's
rectangle (`field_view`) in the canvas value: on the first prompt, on `G`, and on a prompt
outside the current field (fields.js); the server makes the field from that rectangle and
the page's S (`place`), and keeps it while the number stays. Prompts stay in level-0 pixels
on the canvas and in what is stored; the model gets them in field pixels (`field_prompts`),
and the masks come back at the field's resolution with the field's rectangle, where the canvas
draws them. A field's embedding is cached under the slide's fingerprint and the field, not a
hash of its pixels (`model_input`), so a field met again is not even read.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ...prompts import Prompts
from ...sources.fields import Field, field_for_view, read_field, to_field
from ...vocabulary import NATIVE
from .session import DISPLAY_MAX_SIDE, AppError, FieldItem, Session, Settings, parse_size

# Photos with more pixels than this are shown in tiles instead of one full-resolution PNG:
# above it the PNG takes over 2 s to write and load and 64 MB of the browser's memory, while
# the tiles' pyramid is made in under half a second (benchmarks/photo_tiles.py: 24 MP, PNG
# written in 1.85 s and loaded in 1.28 s, 96 MB decoded; tiles set up in 0.49 s; README)
PHOTO_TILE_PIXELS = 16_000_000
FIELD_KEY_SCHEME = "basam-ui field 1"  # part of a field's cache key: a change of how fields are read changes it


def tiled(width: int, height: int, regions: bool) -> bool:
    """Whether an item of this size is shown in tiles: a slide always, a photo over
    PHOTO_TILE_PIXELS."""
    return regions or width * height > PHOTO_TILE_PIXELS


def open_slide(engine: Any, path: str, tiles_url: str) -> Session:
    """A new Session for the slide at `path` (opened here; its own path, never the browser's):
    the thumbnail for the canvas's display copy, the tiles' geometry at `tiles_url`, the slide's
    identity and no field yet. Raises AppError when it can't be read."""
    from ...sources import ImageReadError, open_source
    from . import render
    from .tiles import tiles_value

    shown = Path(path).name
    try:
        with open_source(path, max_pixels=engine.max_pixels) as source:
            width, height = source.size
            scale = min(1.0, DISPLAY_MAX_SIDE / max(width, height))
            thumbnail = source.read(None, scale)
            item = FieldItem(str(path), source.fingerprint(), (width, height), source.pixel_size)
    except (ImageReadError, ValueError) as exc:
        raise AppError(str(exc).replace(str(path), shown)) from None
    except OSError as exc:
        raise AppError(f"could not read {shown}: {exc.strerror or exc}") from None
    folder = engine.new_folder()
    copy = render.save_jpeg(thumbnail, folder / "display.jpg")
    canvas_image = {"url": f"gradio_api/file={copy}", "width": width, "height": height,
                    "tiles": tiles_value((width, height), tiles_url), "fields": True}  # fmt: skip
    return Session(folder=folder, image_path=str(path), image_name=shown, display=thumbnail, canvas_image=canvas_image,
                   fields=item)  # fmt: skip


def max_side(settings: Settings, max_size: int) -> int:
    """A field's longest side in its own pixels: S (the page's size), or --max-size for
    "native"."""
    size = parse_size(settings.size, max_size)
    return max_size if size == NATIVE else int(size)


def requested_view(canvas: Optional[Mapping[str, Any]]) -> tuple[Optional[int], Optional[tuple[float, ...]]]:
    """(field_rev, field_view as x, y, width, height) of a canvas value, (None, None) when it
    asks for no field; AppError when they are malformed."""
    if not canvas or canvas.get("field_rev") is None:
        return None, None
    rev, view = canvas.get("field_rev"), canvas.get("field_view") or {}
    try:
        numbers = tuple(float(view[k]) for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError):
        raise AppError("the field sent by the page is malformed") from None
    if isinstance(rev, bool) or not isinstance(rev, int) or not all(map(math.isfinite, numbers)) or min(numbers[2:]) <= 0:
        raise AppError("the field sent by the page is malformed")
    return rev, numbers


def place(session: Session, canvas: Optional[Mapping[str, Any]], settings: Settings, max_size: int) -> Session:
    """The session with the field its prompts belong to: the one the canvas asks for (a new
    `field_rev`: made from its `field_view`), else the current field's rectangle (a prompt
    that names no field before any: the whole slide), at the downsample the page's S gives. A
    field other than the current one drops the results (its embedding is another). Without a
    canvas (a settings change) and no field yet, there is still none. Sessions without fields
    come back as they are."""
    if session.fields is None or (canvas is None and session.field is None):
        return session
    from ...sources import Region

    rev, view = requested_view(canvas)
    if rev is not None and (rev != session.field_rev or session.field is None):
        rectangle, field_rev = Region(*view), rev
    elif session.field is not None:
        rectangle, field_rev = session.field.region, session.field_rev
    else:
        rectangle, field_rev = Region(0, 0, *session.fields.size), session.field_rev
    try:
        field = field_for_view(rectangle, max_side(settings, max_size), session.fields.size)
    except ValueError:
        raise AppError("the view shows none of the slide: pan back to it, then click") from None
    if field == session.field:
        return replace(session, field_rev=field_rev)
    return replace(session, field=field, field_rev=field_rev, sam=None, basam=None)


def model_input(session: Session) -> tuple[Any, Optional[str], Optional[tuple[int, int]]]:
    """What the encoder takes for the session: (the image, None, None) for a decoded image;
    for a slide, (a function reading the field's pixels, the field's cache key, the field's
    (H, W)): the pixels are read only when the embedding is not cached."""
    if session.fields is None:
        return session.image, None, None
    item, field = session.fields, session.field
    if field is None:
        raise AppError("no field yet: click the slide")
    width, height = field.size
    return (lambda: read_slide_field(item.path, field)), field_key(item, field), (height, width)


def read_slide_field(path: str, field: Field) -> np.ndarray:
    """The field's pixels, read from the slide's file (opened for the read)."""
    from ...sources import open_source

    with open_source(path) as source:
        return read_field(source, field)


def field_key(item: FieldItem, field: Field) -> str:
    """A field's identity for the embedding cache: the slide's fingerprint (size, header and
    file ends: `SlideSource.fingerprint`), the field's rectangle and downsample, and how
    fields are read."""
    return f"{FIELD_KEY_SCHEME}|{item.fingerprint}|{field.x},{field.y},{field.width},{field.height}|{field.downsample!r}"


def field_prompts(prompts: Prompts, field: Optional[Field]) -> Prompts:
    """Prompts in level-0 pixels -> in the field's pixels (the model's); as they are without a
    field."""
    if field is None or prompts.empty:
        return prompts
    points = tuple((*to_field(field, [(x, y)])[0].tolist(), label) for x, y, label in prompts.points)
    boxes = tuple(tuple(to_field(field, [b[:2], b[2:]]).ravel().tolist()) for b in prompts.boxes)
    return Prompts(points=points, boxes=boxes, mask_input=prompts.mask_input)


def field_strokes(strokes: list[dict], field: Optional[Field]) -> list[dict]:
    """Brush strokes in level-0 pixels -> in the field's (the brush paints at the field's
    resolution: a stroke's width shrinks by the downsample, to one field pixel at least)."""
    if field is None:
        return strokes
    return [{**s, "size": max(1.0, s["size"] / field.downsample),
             "points": [tuple(p) for p in to_field(field, s["points"]).tolist()]} for s in strokes]  # fmt: skip


def canvas_field(session: Session) -> dict:
    """The canvas value's field entries for the session's field ({} without one), so that a
    fresh value (after a commit) keeps it: the browser asks for its next field as field_rev + 1."""
    if session.field is None:
        return {}
    view = {k: getattr(session.field, k) for k in ("x", "y", "width", "height")}
    return {"field_rev": session.field_rev, "field_view": view}


def field_rectangle(field: Optional[Field]) -> Optional[dict]:
    """The canvas's `masks.field`: where the masks lie in level-0 pixels, and their downsample."""
    return None if field is None else field.as_dict()


def tile_url(key: str, version: str) -> str:
    """The canvas's tile url prefix for an item (relative to the page's root): its Deep Zoom
    tiles are `<prefix>/<level>/<col>_<row>.jpeg`, beside `<prefix>/../tiles.dzi`."""
    from .tiles import ROUTE

    return f"{ROUTE.lstrip('/')}/{key}/{version[:16] or '0'}/tiles_files"

