"""Reading an image for segmentation: a photo (PNG, JPEG, TIFF, BMP, WebP, GIF), or any other
kind an image source reads (`basam_ui.sources`), as an H×W×3 uint8 RGB array."""

from __future__ import annotations

import numpy as np

from .sources import DEFAULT_MAX_PIXELS, ImageReadError, ImageTooLargeError, open_source
from .sources.base import Source
from .sources.photo import SUPPORTED_FORMATS

__all__ = ["DEFAULT_MAX_PIXELS", "ImageReadError", "ImageTooLargeError", "SUPPORTED_FORMATS", "Source", "load_image"]


def load_image(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image to H×W×3 uint8 RGB, as it is meant to be seen.

    Arguments:
      source: a path, the file's bytes, or a binary file object.
      max_pixels: refuse a photo with more pixels than this (checked from its header,
        before anything is decoded).

    Returns:
      The image, H×W×3 uint8 RGB. For photos, EXIF orientation is applied; grayscale,
      palette and CMYK images become RGB; transparent pixels are composited on white;
      16-bit and float images are stretched from their own min..max to 0..255.

    Raises ImageTooLargeError over `max_pixels`, ImageReadError for anything that is not a
    readable image; a missing file raises FileNotFoundError as usual.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    with open_source(source, max_pixels=max_pixels) as opened:
        return opened.read()
