"""One mask as a file: PNG, COCO RLE or polygons, each carrying how the mask was made, and the
mask <-> RLE / polygon codecs the project store uses too.

Every file holds the same metadata dict (see `export_metadata`): the PNG as a tEXt chunk
under the keyword "basam-ui", the JSON formats under the key "metadata". Also importable as
`basam_ui.export` (its name before the project's dataset exports came).
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from . import __version__
from .prompts import normalise_record
from .vocabulary import MASK_FORMAT_SUFFIXES, MASK_FORMATS

PNG_TEXT_KEY = "basam-ui"
EXPORT_FORMATS = MASK_FORMATS

__all__ = [
    "EXPORT_FORMATS", "PNG_TEXT_KEY", "export_mask", "export_metadata", "mask_png_bytes", "mask_to_coco_rle",
    "mask_to_png", "mask_to_polygons", "read_png_metadata", "save_json",
]  # fmt: skip

PathLike = Union[str, os.PathLike]


def export_metadata(
    model_type: str,
    checkpoint_sha256: Optional[str],
    size: int,
    nsf: bool,
    bmam: bool,
    beta: float,
    prompts: Optional[Mapping[str, Any]],
    precision: Optional[str] = None,
) -> dict:
    """How a mask was made, as a JSON-ready dict.

    `size` is the encoder input size S; `checkpoint_sha256` the checkpoint's SHA-256 hex digest
    (kept to its first 16 characters; None for random weights); `prompts` holds "points"
    ([[x, y], ...]), "labels" ([1, 0, ...], 1 = foreground) and "box" ([x0, y0, x1, y1] or None),
    in original-image pixels; `precision` the image encoder's ("fp32", "bf16", "fp16"; the
    embedding's `.precision`), None when unknown. Returns {"basam_ui_version", "model_type",
    "checkpoint_sha256", "input_size", "nsf", "bmam", "beta", "precision", "prompts"}.
    """
    if not isinstance(model_type, str) or not model_type:
        raise ValueError(f"model_type must be a non-empty string, got {model_type!r}")
    sha_prefix = None
    if checkpoint_sha256 is not None:
        sha_prefix = str(checkpoint_sha256).lower()[:16]
        if len(sha_prefix) < 16 or any(c not in "0123456789abcdef" for c in sha_prefix):
            raise ValueError(f"checkpoint_sha256 must be a hex SHA-256 digest, got {checkpoint_sha256!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    beta = float(beta)
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return {
        "basam_ui_version": __version__,
        "model_type": model_type,
        "checkpoint_sha256": sha_prefix,
        "input_size": int(size),
        "nsf": bool(nsf),
        "bmam": bool(bmam),
        "beta": beta,
        "precision": None if precision is None else str(precision),
        "prompts": normalise_record(prompts),
    }


def _as_mask(mask: np.ndarray) -> np.ndarray:
    """A 2-D bool array (nonzero = inside), or a ValueError saying what is wrong."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must be a non-empty HxW array, got shape {mask.shape}")
    return mask if mask.dtype == bool else mask != 0


def mask_png_bytes(mask: np.ndarray, metadata: Mapping[str, Any]) -> bytes:
    """The mask as an 8-bit grayscale PNG (0 outside, 255 inside) with `metadata` as JSON in a
    tEXt chunk keyed "basam-ui"."""
    from PIL import Image, PngImagePlugin

    mask = _as_mask(mask)
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_TEXT_KEY, _dumps(metadata))  # ASCII JSON, so a plain tEXt chunk is enough
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def mask_to_png(mask: np.ndarray, path: PathLike, metadata: Mapping[str, Any]) -> Path:
    """Write `mask_png_bytes(mask, metadata)` to `path`; returns the path."""
    path = Path(path)
    path.write_bytes(mask_png_bytes(mask, metadata))
    return path


def read_png_metadata(path: PathLike) -> dict:
    """The metadata dict stored in a mask PNG written by `mask_to_png`."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # text chunks after the pixel data are read with it
        text = getattr(image, "text", {}).get(PNG_TEXT_KEY)
    if text is None:
        raise ValueError(f"{path}: no {PNG_TEXT_KEY!r} metadata in this PNG")
    return json.loads(text)


def mask_to_coco_rle(mask: np.ndarray, metadata: Mapping[str, Any]) -> dict:
    """COCO run-length encoding: {"size": [H, W], "counts": str, "area": int,
    "bbox": [x, y, w, h], "metadata": ...}. pycocotools.mask.decode reads it back as is."""
    from pycocotools import mask as mask_utils

    mask = _as_mask(mask)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))  # column-major, as COCO counts run
    return {
        "size": [int(n) for n in rle["size"]],
        "counts": rle["counts"].decode("ascii"),
        "area": int(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "metadata": dict(metadata),
    }


def mask_to_polygons(mask: np.ndarray, metadata: Mapping[str, Any]) -> dict:
    """Outlines of the mask: {"size": [H, W], "polygons": [{"outer": [[x, y], ...],
    "holes": [[[x, y], ...], ...]}, ...], "metadata": ...}.

    Points are integer pixel coordinates (x right, y down) of boundary pixels, as
    cv2.findContours traces them; a hole's points are the object pixels around it. To
    rasterise: fill each outer ring with 1, then each hole with 0, then draw the hole
    outlines with 1. Contours of fewer than 3 points (single pixels, 1-px lines) are dropped.
    """
    import cv2

    mask = _as_mask(mask)
    # RETR_CCOMP: two levels, outer boundaries and the holes inside each (an island inside a
    # hole is another outer boundary)
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    if hierarchy is not None:
        links = hierarchy[0]  # per contour: next, previous, first child, parent
        for i, contour in enumerate(contours):
            if links[i][3] != -1 or len(contour) < 3:
                continue
            holes = []
            child = links[i][2]
            while child != -1:
                if len(contours[child]) >= 3:
                    holes.append(contours[child].reshape(-1, 2).tolist())
                child = links[child][0]
            polygons.append({"outer": contour.reshape(-1, 2).tolist(), "holes": holes})
    return {"size": [int(n) for n in mask.shape], "polygons": polygons, "metadata": dict(metadata)}


def save_json(obj: Any, path: PathLike) -> Path:
    """Write `obj` as compact JSON (numpy scalars and arrays allowed); returns the path."""
    path = Path(path)
    path.write_text(_dumps(obj), encoding="utf-8")
    return path


def export_mask(
    mask: np.ndarray,
    out_dir: PathLike,
    stem: str,
    metadata: Mapping[str, Any],
    formats: Sequence[str] = EXPORT_FORMATS,
) -> list[Path]:
    """Write the mask in each of `formats` ("png", "rle", "polygons") into `out_dir` (created
    if needed) as <stem>.png, <stem>.rle.json, <stem>.polygons.json; returns the paths."""
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {list(EXPORT_FORMATS)}")
    if not stem or Path(stem).name != stem or stem in (".", ".."):
        raise ValueError(f"stem must be a plain file name without folders, got {stem!r}")
    mask = _as_mask(mask)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in dict.fromkeys(formats):  # each once, in the order given
        path = out_dir / f"{stem}{MASK_FORMAT_SUFFIXES[fmt]}"
        if fmt == "png":
            paths.append(mask_to_png(mask, path, metadata))
        elif fmt == "rle":
            paths.append(save_json(mask_to_coco_rle(mask, metadata), path))
        else:
            paths.append(save_json(mask_to_polygons(mask, metadata), path))
    return paths


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
