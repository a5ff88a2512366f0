"""Generate the app's example images and their ground-truth masks (synthetic, seeded).

    python assets/make_assets.py            # writes into assets/ (next to this file)
    python assets/make_assets.py OUT_DIR    # writes into OUT_DIR

Each example is an RGB JPEG (quality 90) plus a mask PNG (mode L, 0 = background,
255 = object). Only numpy, OpenCV and Pillow are used and every random draw comes from
a seeded numpy Generator, so the masks come out bit-identical on every run; the JPEGs
can differ by codec rounding between library versions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

JPEG_QUALITY = 90
MAX_FILE_BYTES = 2 * 1024 * 1024
SUBPIXEL_BITS = 3  # polygon vertices are rasterised at 1/8 px


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """(H, W) float32 noise in about [-1, 1], smooth over `cell` pixels (bicubic upsampling)."""
    coarse = rng.uniform(-1.0, 1.0, size=(height // cell + 3, width // cell + 3)).astype(np.float32)
    big = cv2.resize(coarse, ((width // cell + 3) * cell, (height // cell + 3) * cell), interpolation=cv2.INTER_CUBIC)
    return big[cell : cell + height, cell : cell + width]


def blob_polygon(
    rng: np.random.Generator,
    center: tuple[float, float],
    radii: tuple[float, float],
    angle: float,
    harmonics: int,
    roughness: float,
    n_vertices: int = 720,
) -> np.ndarray:
    """Closed irregular contour: an ellipse whose radius is modulated by random harmonics.

    Returns (n_vertices, 2) float64 x, y image coordinates.
    """
    theta = np.linspace(0.0, 2.0 * np.pi, n_vertices, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, harmonics + 2):
        amplitude = roughness * rng.uniform(0.3, 1.0) / k
        radius += amplitude * np.cos(k * theta + rng.uniform(0.0, 2.0 * np.pi))
    x, y = radii[0] * radius * np.cos(theta), radii[1] * radius * np.sin(theta)
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    return np.stack([center[0] + cos_a * x - sin_a * y, center[1] + sin_a * x + cos_a * y], axis=1)


def fill_polygon(height: int, width: int, polygon: np.ndarray) -> np.ndarray:
    """(H, W) uint8 mask, 255 inside `polygon` ((N, 2) x, y), rasterised without anti-aliasing."""
    mask = np.zeros((height, width), np.uint8)
    points = np.round(polygon * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [points], 255, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return mask


def draw_leaves(
    rng: np.random.Generator,
    canvas: np.ndarray,
    count: int,
    palette: np.ndarray,
    length: tuple[float, float],
    color_jitter: float,
) -> None:
    """Draw `count` random leaf shapes (ellipse + darker midrib) onto the float RGB canvas in place."""
    height, width = canvas.shape[:2]
    for _ in range(count):
        cx, cy = rng.uniform(-40, width + 40), rng.uniform(-40, height + 40)
        long_axis = rng.uniform(*length)
        short_axis = long_axis * rng.uniform(0.28, 0.5)
        angle = rng.uniform(0.0, 180.0)
        base = palette[rng.integers(len(palette))]
        color = np.clip(base * rng.uniform(0.8, 1.12) + rng.normal(0.0, color_jitter, 3), 0, 255)
        center = (int(round(cx)), int(round(cy)))
        axes = (int(round(long_axis)), int(round(short_axis)))
        cv2.ellipse(canvas, center, axes, angle, 0, 360, color.tolist(), -1, cv2.LINE_AA)
        # midrib: a thin darker line along the long axis
        dx, dy = np.cos(np.radians(angle)) * long_axis * 0.9, np.sin(np.radians(angle)) * long_axis * 0.9
        rib = (color * 0.72).tolist()
        cv2.line(canvas, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), rib, 1, cv2.LINE_AA)


def camouflage_scene(seed: int = 20240611, width: int = 2560, height: int = 1920) -> tuple[np.ndarray, np.ndarray]:
    """Leaf-litter background with a leaf-textured, slightly yellower flat animal hidden in it.

    Returns (image (H, W, 3) uint8 RGB, mask (H, W) uint8 0/255).
    """
    rng = np.random.default_rng(seed)
    litter = np.array([[110, 98, 58], [92, 100, 50], [128, 110, 70], [78, 84, 42], [140, 120, 80], [102, 86, 52]],
                      np.float32)
    background = np.zeros((height, width, 3), np.float32)
    background[:] = (40, 42, 26)  # dark gaps between leaves
    draw_leaves(rng, background, count=9000, palette=litter, length=(22, 70), color_jitter=4.0)

    # the animal: same kind of texture, smaller "scales", palette shifted a little to yellow/olive
    body = blob_polygon(rng, center=(width * 0.56, height * 0.47), radii=(width * 0.15, height * 0.12),
                        angle=np.radians(-18.0), harmonics=4, roughness=0.22)
    mask = fill_polygon(height, width, body)
    skin_palette = litter * np.array([1.04, 1.03, 0.9], np.float32) + np.array([6, 5, 0], np.float32)
    skin = np.zeros_like(background)
    skin[:] = (40, 42, 26)
    # ~1.6x as many leaves as the background, to cover the same share of the area
    draw_leaves(rng, skin, count=14000, palette=skin_palette, length=(18, 55), color_jitter=4.0)

    # soft contact shadow just outside the outline gives the boundary a faint, real edge
    shadow = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 9.0)
    shadow = np.roll(shadow, (10, 8), axis=(0, 1))
    image = background * (1.0 - 0.15 * shadow[..., None])
    inside = mask.astype(np.float32)[..., None] / 255.0
    image = image * (1.0 - inside) + skin * inside

    # light from the upper left, plus film grain
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 1.08 - 0.22 * (xx / width + yy / height) / 2.0 + 0.08 * smooth_noise(rng, height, width, 160)
    image = image * light[..., None] + rng.normal(0.0, 2.5, image.shape).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 0.7)
    return np.clip(image, 0, 255).round().astype(np.uint8), mask


def dermoscopy_lesion(seed: int = 7301, width: int = 2400, height: int = 1800) -> tuple[np.ndarray, np.ndarray]:
    """Dermoscopy-like image: skin in a round dermoscope field, a brown irregular lesion with a
    fuzzy border and darker blotches, and dark hairs across everything.

    Returns (image (H, W, 3) uint8 RGB, mask (H, W) uint8 0/255 = the lesion outline).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    skin = np.empty((height, width, 3), np.float32)
    skin[:] = (222, 170, 150)
    skin += smooth_noise(rng, height, width, 220)[..., None] * np.array([10, 12, 12], np.float32)
    skin += smooth_noise(rng, height, width, 24)[..., None] * np.array([5, 6, 6], np.float32)
    # faint redness (vessels) in patches
    skin += np.clip(smooth_noise(rng, height, width, 90), 0, 1)[..., None] * np.array([8, -10, -6], np.float32)

    outline = blob_polygon(rng, center=(width * 0.5, height * 0.52), radii=(width * 0.2, height * 0.22),
                           angle=np.radians(25.0), harmonics=8, roughness=0.28)
    mask = fill_polygon(height, width, outline)
    # fuzzy border: alpha is the blurred outline, so its 0.5 level follows the mask edge
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 14.0) * 0.92
    # lesion colour: light brown rim to dark brown centre, with blotches and a faint network
    depth = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 120.0)
    depth = depth / max(float(depth.max()), 1e-6)
    light_brown, dark_brown = np.array([186, 128, 94], np.float32), np.array([104, 62, 44], np.float32)
    lesion = light_brown + (dark_brown - light_brown) * np.clip(depth * 1.3, 0, 1)[..., None]
    blotch = np.clip(smooth_noise(rng, height, width, 70) * 1.6, 0, 1)
    lesion = lesion * (1.0 - 0.3 * blotch[..., None])
    network = np.abs(np.sin(xx / 9.0 + 2.0 * smooth_noise(rng, height, width, 40))
                     * np.sin(yy / 9.0 + 2.0 * smooth_noise(rng, height, width, 40)))
    lesion = lesion * (0.9 + 0.1 * network[..., None])
    image = skin * (1.0 - alpha[..., None]) + lesion * alpha[..., None]

    # hairs: dark, thin, gently curved strokes
    for _ in range(30):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        direction = rng.uniform(0.0, 2.0 * np.pi)
        curvature = rng.normal(0.0, 0.0015)
        length = rng.uniform(300, 1100)
        steps = np.arange(0.0, length, 6.0)
        heading = direction + curvature * steps
        xs = x0 + np.cumsum(np.cos(heading) * 6.0)
        ys = y0 + np.cumsum(np.sin(heading) * 6.0)
        points = np.round(np.stack([xs, ys], axis=1) * 8).astype(np.int32)
        thickness = int(rng.integers(2, 5))
        color = (np.array([48, 34, 28], np.float32) * rng.uniform(0.7, 1.2)).tolist()
        cv2.polylines(image, [points], False, color, thickness, cv2.LINE_AA, shift=3)

    # dermoscope field: dark outside a large circle, slight vignetting inside
    radius = np.hypot(xx - width / 2.0, yy - height / 2.0) / (0.7 * np.hypot(width, height) / 2.0)
    field = np.clip(1.0 - np.clip(radius - 0.82, 0, None) * 6.0, 0.0, 1.0) * (1.0 - 0.12 * radius**2)
    image = image * field[..., None] + rng.normal(0.0, 2.0, image.shape).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 0.8)
    return np.clip(image, 0, 255).round().astype(np.uint8), mask


# name -> generator; files are NAME.jpg and NAME_mask.png
GENERATORS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "camouflage": camouflage_scene,
    "lesion": dermoscopy_lesion,
}


def write_asset(name: str, out_dir: Path) -> tuple[Path, Path]:
    """Generate one example into out_dir; returns (image path, mask path). Raises ValueError
    if a file would exceed MAX_FILE_BYTES."""
    image, mask = GENERATORS[name]()
    out_dir.mkdir(parents=True, exist_ok=True)
    image_path, mask_path = out_dir / f"{name}.jpg", out_dir / f"{name}_mask.png"
    Image.fromarray(image, "RGB").save(image_path, "JPEG", quality=JPEG_QUALITY, optimize=True)
    Image.fromarray(mask, "L").save(mask_path, "PNG", optimize=True)
    for path in (image_path, mask_path):
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"{path} is {path.stat().st_size} bytes, over the {MAX_FILE_BYTES} byte limit")
    return image_path, mask_path


def main(argv: list[str]) -> None:
    out_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent
    for name in GENERATORS:
        for path in write_asset(name, out_dir):
            with Image.open(path) as im:
                print(f"{path}  {im.size[0]}x{im.size[1]} {im.mode}  {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
