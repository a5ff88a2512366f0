"""PNG label maps at the image's size: semantic (8-bit class index, 0 = background) and
instance (16-bit object number, 0 = background). Objects are painted bottom layer first, so
where they overlap the later object wins."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np

from .objects import ObjectRecord

PathLike = Union[str, os.PathLike]


def label_maps(
    objects: Sequence[ObjectRecord], height: int, width: int, class_index: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(semantic, instance) H×W maps: uint8 class index (1..255) and uint16 object number
    (1..n, objects in the order given) of the topmost object over each pixel, else 0."""
    if class_index and max(class_index.values()) > 255:
        raise ValueError("an 8-bit semantic map holds at most 255 classes")
    if len(objects) > 65535:
        raise ValueError("a 16-bit instance map holds at most 65535 objects")
    semantic = np.zeros((height, width), np.uint8)
    instance = np.zeros((height, width), np.uint16)
    for number, obj in enumerate(objects, start=1):
        x0, y0, crop = obj.cropped_mask()
        box = np.s_[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]
        semantic[box][crop] = class_index[obj.label]
        instance[box][crop] = number
    return semantic, instance


def write_png(array: np.ndarray, path: PathLike) -> Path:
    """Write an 8- or 16-bit single-channel array as a PNG (folders made); returns the path."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), array):
        raise OSError(f"{path}: could not write the PNG")
    return path
