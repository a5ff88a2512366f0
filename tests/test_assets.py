"""The committed example images in assets/ match what assets/make_assets.py generates."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from PIL import Image

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MAX_FILE_BYTES = 2 * 1024 * 1024


def load_make_assets() -> ModuleType:
    """assets/make_assets.py as a module (assets/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_assets", ASSETS / "make_assets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_assets = load_make_assets()
NAMES = sorted(make_assets.GENERATORS)


def read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All assets generated afresh into a temporary folder."""
    out_dir = tmp_path_factory.mktemp("assets")
    for name in NAMES:
        make_assets.write_asset(name, out_dir)
    return out_dir


def test_there_are_a_camouflage_and_a_lesion_example() -> None:
    assert {"camouflage", "lesion"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_files_exist_and_are_small(name: str) -> None:
    for path in (ASSETS / f"{name}.jpg", ASSETS / f"{name}_mask.png"):
        assert path.is_file(), f"{path} missing: run python assets/make_assets.py"
        assert path.stat().st_size < MAX_FILE_BYTES, f"{path} is {path.stat().st_size} bytes"


@pytest.mark.parametrize("name", NAMES)
def test_image_is_large_rgb_jpeg_and_mask_matches_it(name: str) -> None:
    with Image.open(ASSETS / f"{name}.jpg") as image, Image.open(ASSETS / f"{name}_mask.png") as mask:
        assert image.format == "JPEG" and image.mode == "RGB"
        assert max(image.size) >= 2048, f"{name}.jpg is only {image.size}"
        assert mask.format == "PNG" and mask.mode == "L"
        assert mask.size == image.size


@pytest.mark.parametrize("name", NAMES)
def test_mask_is_binary_non_empty_and_not_full(name: str) -> None:
    mask = read(ASSETS / f"{name}_mask.png")
    assert set(np.unique(mask).tolist()) == {0, 255}
    fraction = float((mask == 255).mean())
    assert 0.01 < fraction < 0.6, f"object covers {fraction:.3f} of {name}"


@pytest.mark.parametrize("name", NAMES)
def test_regenerated_mask_is_identical(name: str, regenerated: Path) -> None:
    committed = read(ASSETS / f"{name}_mask.png")
    fresh = read(regenerated / f"{name}_mask.png")
    assert fresh.shape == committed.shape
    assert np.array_equal(fresh, committed), f"{int((fresh != committed).sum())} mask pixels differ"


@pytest.mark.parametrize("name", NAMES)
def test_regenerated_image_is_close(name: str, regenerated: Path) -> None:
    # JPEG codecs may round differently across versions, so "close", not "identical"
    committed = read(ASSETS / f"{name}.jpg").astype(np.int16)
    fresh = read(regenerated / f"{name}.jpg").astype(np.int16)
    assert fresh.shape == committed.shape
    assert float(np.abs(fresh - committed).mean()) < 2.0


def colour_inside_and_around(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean RGB on the object and in an 80 px ring around it."""
    image = read(ASSETS / f"{name}.jpg").astype(np.float64)
    mask = read(ASSETS / f"{name}_mask.png") == 255
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((161, 161), np.uint8)).astype(bool) & ~mask
    return image[mask].mean(axis=0), image[ring].mean(axis=0)


def test_camouflaged_object_has_nearly_the_background_colour() -> None:
    inside, around = colour_inside_and_around("camouflage")
    distance = float(np.linalg.norm(inside - around))
    assert distance < 25.0, f"camouflaged object stands out: mean colour distance {distance:.1f}"


def test_lesion_is_darker_than_the_skin_around_it() -> None:
    inside, around = colour_inside_and_around("lesion")
    assert inside.sum() < 0.75 * around.sum(), f"lesion {inside} vs skin {around}"
