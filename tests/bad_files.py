"""A project folder of the files a real folder of scans holds besides good images: every way a
file can fail to read, odd names, and edge-case images that must still work. Made by the tests
(small: the whole folder is under 1 MB)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HTML_NAME = "<img src=x onerror=alert(1)>.jpg"
NON_UTF8_NAME = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes, not valid UTF-8

# name -> why it can't be read (a word the reason contains), for the files that can't
UNREADABLE = {
    "broken.jpg": "",  # JPEG magic, then garbage
    "empty.jpg": "",  # zero bytes
    "text.png": "",  # a text file with an image extension
    "bomb.png": "pixels",  # a header claiming 20000 x 20000 (400 MP), no data
    "folder.jpg": "folder",  # a directory named like an image
    "dangling.jpg": "link",  # a symbolic link to a file that does not exist
    "cut.jpg": "",  # a real JPEG cut short: the header reads, the pixels don't
}
READABLE = ("good-1.png", "good-2.jpg", "tiny.png", "grey16.png", "rotated.jpg", HTML_NAME, NON_UTF8_NAME)


def photo(height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """A smooth image with a disc and a square: something for the model to segment."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 190, np.uint8)
    cv2.circle(image, (width // 3, height // 2), min(height, width) // 4, tuple(int(v) for v in rng.integers(0, 120, 3)), -1)
    cv2.rectangle(image, (2 * width // 3, height // 4), (width - 20, 3 * height // 4), (150, 40, 40), -1)
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit RGB), with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def make_bad_folder(root: Path) -> Path:
    """Write the folder (see UNREADABLE and READABLE); returns root."""
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo(seed=1)).save(root / "good-1.png")
    Image.fromarray(photo(seed=2)).save(root / "good-2.jpg", quality=95)
    jpeg = io.BytesIO()
    Image.fromarray(photo(480, 640, seed=3)).save(jpeg, "JPEG", quality=95)
    (root / "cut.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) * 2 // 3])
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("this is not an image\n")
    (root / "bomb.png").write_bytes(png_header_only(20_000, 20_000))
    (root / "folder.jpg").mkdir()
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    Image.fromarray(np.array([[[10, 200, 30]]], np.uint8)).save(root / "tiny.png")
    grey = (np.linspace(0, 1, 240 * 320).reshape(240, 320) * 4095 + 500).astype(np.uint16)
    Image.fromarray(grey).save(root / "grey16.png")
    rotated = Image.fromarray(photo(200, 300, seed=4))
    exif = rotated.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    rotated.save(root / "rotated.jpg", exif=exif, quality=95)
    Image.fromarray(photo(seed=5)).save(root / HTML_NAME, "JPEG", quality=95)
    Image.fromarray(photo(seed=6)).save(os.fsencode(root / NON_UTF8_NAME), "PNG")
    return root
