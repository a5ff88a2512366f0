"""Pair images with ground-truth masks in a labelled folder, and read the masks.

Recognised layouts (give the two folders, or the dataset folder for both):

- DUTS:   DUTS-TE-Image/x.jpg   + DUTS-TE-Mask/x.png
- DIS5K:  im/x.jpg              + gt/x.png
- COD10K: Image/x.jpg           + GT_Object/x.png
- ISIC:   ISIC_x.jpg            + ISIC_x_Segmentation.png
- generally: the same stem, or the mask stem = the image stem + a known suffix
  (_Segmentation, _mask, -mask, _gt, ...), compared case-insensitively.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg")
# Sub-folders that hold the images / masks in the usual datasets, in order of preference
# (COD10K also has GT_Edge and GT_Instance next to GT_Object: those are not the masks we want).
IMAGE_SUBDIRS = ("DUTS-TE-Image", "DUTS-TR-Image", "im", "Image", "Imgs", "images")
MASK_SUBDIRS = ("DUTS-TE-Mask", "DUTS-TR-Mask", "gt", "GT_Object", "masks")
# Endings a mask's stem may carry after the image's stem (matched case-insensitively).
MASK_SUFFIXES = ("_segmentation", "_mask", "-mask", ".mask", "_gt", "-gt", "_label", "_seg", "_anno")


@dataclass(frozen=True)
class Pair:
    """One image and its ground-truth mask."""

    image: Path
    mask: Path


@dataclass(frozen=True)
class Pairing:
    """Pairs in sorted order, and the files on either side that found no partner."""

    pairs: list[Pair]
    unpaired_images: list[Path]
    unpaired_masks: list[Path]
    images_dir: Path
    masks_dir: Path


def _resolve(folder: Path, subdirs: tuple[str, ...]) -> Path:
    """`folder`, or its dataset sub-folder (e.g. DIS5K's `im`) when it has one."""
    children = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    for name in subdirs:
        if name.lower() in children:
            return children[name.lower()]
    return folder


def _masks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MASK_EXTENSIONS)


def _images(folder: Path) -> list[Path]:
    """The files some image source reads (by extension, else by their first bytes)."""
    from ..sources import looks_like_image

    return sorted(p for p in folder.iterdir() if p.is_file() and looks_like_image(p))


def _mask_base(stem: str) -> Optional[str]:
    """The image stem a suffixed mask stem belongs to ('ISIC_1_Segmentation' -> 'isic_1')."""
    low = stem.lower()
    for suffix in MASK_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return low[: -len(suffix)]
    return None


def pair_folder(images_dir: str | os.PathLike, masks_dir: str | os.PathLike) -> Pairing:
    """Pair every image in `images_dir` with its mask in `masks_dir` by file stem.

    A mask named exactly like the image wins over a suffixed one. When both folders are the
    same, files whose stem carries a mask suffix are the masks. Raises ValueError when a
    folder does not exist.
    """
    roots = []
    for label, folder in (("images", images_dir), ("masks", masks_dir)):
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{label} folder {folder} does not exist or is not a folder")
        roots.append(folder)
    images_root = _resolve(roots[0], IMAGE_SUBDIRS)
    masks_root = _resolve(roots[1], MASK_SUBDIRS)

    masks = _masks(masks_root)
    images = _images(images_root)
    if images_root.resolve() == masks_root.resolve():
        # one folder holding both (e.g. ISIC_x.jpg next to ISIC_x_Segmentation.png)
        masks = [p for p in masks if _mask_base(p.stem) is not None]
        images = [p for p in images if p not in set(masks)]

    exact: dict[str, Path] = {}
    suffixed: dict[str, Path] = {}
    for mask in masks:  # sorted, so the first of several candidates is deterministic
        exact.setdefault(mask.stem.lower(), mask)
        base = _mask_base(mask.stem)
        if base is not None:
            suffixed.setdefault(base, mask)

    pairs, unpaired_images, used = [], [], set()
    for image in images:
        mask = exact.get(image.stem.lower()) or suffixed.get(image.stem.lower())
        if mask is None:
            unpaired_images.append(image)
        else:
            pairs.append(Pair(image, mask))
            used.add(mask)
    unpaired_masks = [m for m in masks if m not in used]
    return Pairing(pairs, unpaired_images, unpaired_masks, images_root, masks_root)


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """A ground-truth mask file as an H x W bool array (True = object).

    8-bit masks are binarised at 128 (value >= 128 is the object); masks holding only 0
    and 1 are taken as they are; 16-bit masks are binarised at half their range; colour
    masks are converted to grey first. Raises ValueError naming the file when it cannot be read.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "1":
                return np.asarray(im, dtype=bool)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im)
                threshold = 32768 if arr.max(initial=0) > 255 else 128
            else:
                arr = np.asarray(im.convert("L"))
                threshold = 128
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read mask {path}: {exc}") from None
    if arr.max(initial=0) == 1:
        return arr == 1
    return arr >= threshold
