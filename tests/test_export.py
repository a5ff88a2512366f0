"""Mask exports: PNG with metadata, COCO RLE and polygons, each read back and compared."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import basam_ui
from basam_ui.export import (
    export_mask,
    export_metadata,
    mask_png_bytes,
    mask_to_coco_rle,
    mask_to_png,
    mask_to_polygons,
    read_png_metadata,
    save_json,
)

# pycocotools' decode trips a numpy 2 deprecation inside its own code; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHA = "9F3C" + "0123456789abcdef" * 3 + "ABCDEFABCDEF"  # 64 hex digits


def metadata() -> dict:
    return export_metadata(
        model_type="vit_b",
        checkpoint_sha256=SHA,
        size=2048,
        nsf=True,
        bmam=True,
        beta=0.1,
        prompts={"points": np.array([[120.5, 80.0], [10, 20]]), "labels": np.array([1, 0]), "box": [5, 6, 300, 200]},
    )


def donut_and_blob(height: int = 120, width: int = 160) -> np.ndarray:
    """A ring (disc with a round hole) and a separate filled ellipse."""
    yy, xx = np.mgrid[:height, :width]
    r = np.hypot(xx - 50, yy - 60)
    ring = (r <= 40) & (r >= 18)
    blob = ((xx - 125) / 25.0) ** 2 + ((yy - 45) / 35.0) ** 2 <= 1
    return ring | blob


def rasterise(polygons: dict, redraw_hole_outlines: bool = True) -> np.ndarray:
    """Polygons back to a mask: outer rings filled with 1, then holes with 0, then (optionally)
    the hole outlines drawn with 1, since a hole's points are object pixels."""
    height, width = polygons["size"]
    canvas = np.zeros((height, width), np.uint8)
    for polygon in polygons["polygons"]:
        cv2.fillPoly(canvas, [np.array(polygon["outer"], np.int32)], 1)
        for hole in polygon["holes"]:
            cv2.fillPoly(canvas, [np.array(hole, np.int32)], 0)
            if redraw_hole_outlines:
                cv2.polylines(canvas, [np.array(hole, np.int32)], True, 1)
    return canvas.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_metadata_fields() -> None:
    md = metadata()
    assert md["basam_ui_version"] == basam_ui.__version__
    assert md["model_type"] == "vit_b"
    assert md["checkpoint_sha256"] == SHA[:16].lower() and len(md["checkpoint_sha256"]) == 16
    assert (md["input_size"], md["nsf"], md["bmam"], md["beta"]) == (2048, True, True, 0.1)
    assert md["prompts"] == {"points": [[120.5, 80.0], [10.0, 20.0]], "labels": [1, 0], "box": [5.0, 6.0, 300.0, 200.0]}
    assert json.loads(json.dumps(md)) == md  # plain JSON types only (numpy inputs converted)


def test_metadata_random_weights_and_no_prompts() -> None:
    md = export_metadata("vit_t", None, 1024, False, False, 0.0, {"points": [], "labels": [], "box": None})
    assert md["checkpoint_sha256"] is None
    assert md["prompts"] == {"points": [], "labels": [], "box": None}
    assert md["precision"] is None  # not given: unknown
    assert export_metadata("vit_t", None, 1024, False, False, 0.0, None, precision="bf16")["precision"] == "bf16"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"prompts": {"points": [[1, 2], [3, 4]], "labels": [1]}}, "one label per point"),
        ({"prompts": {"points": [[1, 2]], "labels": [2]}}, "0 .background. or 1"),
        ({"prompts": {"box": [1, 2, 3]}}, "box"),
        ({"checkpoint_sha256": "not-hex-at-all-xyz"}, "hex"),
        ({"size": 0}, "size"),
        ({"beta": -1.0}, "beta"),
        ({"model_type": ""}, "model_type"),
    ],
)
def test_metadata_rejects_bad_input(kwargs: dict, match: str) -> None:
    args = dict(model_type="vit_b", checkpoint_sha256=SHA, size=1024, nsf=True, bmam=True, beta=0.1, prompts={})
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        export_metadata(**args)


def test_png_is_8bit_gray_0_255_with_metadata(tmp_path: Path) -> None:
    mask = donut_and_blob()
    md = metadata()
    path = mask_to_png(mask, tmp_path / "mask.png", md)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "L"
        assert image.size == (mask.shape[1], mask.shape[0])
        pixels = np.asarray(image)
    assert set(np.unique(pixels).tolist()) == {0, 255}
    np.testing.assert_array_equal(pixels == 255, mask)
    assert read_png_metadata(path) == md
    assert path.read_bytes() == mask_png_bytes(mask, md)


def test_read_png_metadata_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("L", (4, 4)).save(path)
    with pytest.raises(ValueError, match="no 'basam-ui' metadata"):
        read_png_metadata(path)


def test_coco_rle_decodes_to_the_same_mask(tmp_path: Path) -> None:
    mask = donut_and_blob()
    md = metadata()
    rle = mask_to_coco_rle(mask, md)
    assert rle["size"] == [120, 160] and isinstance(rle["counts"], str)
    assert rle["area"] == int(mask.sum())
    ys, xs = np.nonzero(mask)
    assert rle["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert rle["metadata"] == md

    loaded = json.loads(save_json(rle, tmp_path / "mask.rle.json").read_text())
    decoded = mask_utils.decode({"size": loaded["size"], "counts": loaded["counts"].encode()})
    assert decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded.astype(bool), mask)
    np.testing.assert_array_equal(mask_utils.decode(loaded).astype(bool), mask)  # str counts read as is


def test_polygons_keep_holes_and_rasterise_back(tmp_path: Path) -> None:
    mask = donut_and_blob()
    md = metadata()
    polygons = mask_to_polygons(mask, md)
    assert polygons["size"] == [120, 160] and polygons["metadata"] == md
    assert len(polygons["polygons"]) == 2
    holes = sorted(len(p["holes"]) for p in polygons["polygons"])
    assert holes == [0, 1]  # the ring keeps its hole, the blob has none

    loaded = json.loads(save_json(polygons, tmp_path / "mask.polygons.json").read_text())
    assert iou(rasterise(loaded, redraw_hole_outlines=False), mask) >= 0.98
    np.testing.assert_array_equal(rasterise(loaded), mask)  # with hole outlines redrawn it is exact

    # without subtracting holes the ring would be filled: the holes are real
    filled = np.zeros(mask.shape, np.uint8)
    for polygon in loaded["polygons"]:
        cv2.fillPoly(filled, [np.array(polygon["outer"], np.int32)], 1)
    assert iou(filled.astype(bool), mask) < 0.9


def test_polygons_drop_degenerate_contours() -> None:
    mask = np.zeros((30, 30), bool)
    mask[2, 2] = True  # single pixel
    mask[10, 5:20] = True  # 1-px line: a 2-point contour
    mask[20:26, 20:27] = True  # a real rectangle
    polygons = mask_to_polygons(mask, {})["polygons"]
    assert len(polygons) == 1
    assert all(len(p["outer"]) >= 3 for p in polygons)
    assert sorted(map(tuple, polygons[0]["outer"])) == [(20, 20), (20, 25), (26, 20), (26, 25)]


def test_empty_mask_exports(tmp_path: Path) -> None:
    mask = np.zeros((37, 53), bool)
    md = metadata()
    paths = export_mask(mask, tmp_path / "out", "empty", md)
    assert [p.name for p in paths] == ["empty.png", "empty.rle.json", "empty.polygons.json"]

    png = np.asarray(Image.open(paths[0]))
    assert png.shape == (37, 53) and not png.any()
    rle = json.loads(paths[1].read_text())
    assert rle["area"] == 0
    decoded = mask_utils.decode(rle)
    assert decoded.shape == (37, 53) and not decoded.any()
    polygons = json.loads(paths[2].read_text())
    assert polygons["polygons"] == [] and polygons["size"] == [37, 53]


def test_export_mask_writes_all_formats(tmp_path: Path) -> None:
    mask = donut_and_blob()
    md = metadata()
    paths = export_mask(mask, tmp_path, "corgi_mask", md)
    assert [p.name for p in paths] == ["corgi_mask.png", "corgi_mask.rle.json", "corgi_mask.polygons.json"]
    assert all(p.parent == tmp_path and p.is_file() for p in paths)
    assert read_png_metadata(paths[0]) == md
    assert json.loads(paths[1].read_text())["metadata"] == md
    assert json.loads(paths[2].read_text())["metadata"] == md
    np.testing.assert_array_equal(mask_utils.decode(json.loads(paths[1].read_text())).astype(bool), mask)

    only_rle = export_mask(mask, tmp_path / "sub", "m", md, formats=("rle",))
    assert [p.name for p in only_rle] == ["m.rle.json"]


def test_export_mask_rejects_bad_arguments(tmp_path: Path) -> None:
    mask = np.ones((4, 4), bool)
    with pytest.raises(ValueError, match="unknown export format"):
        export_mask(mask, tmp_path, "m", {}, formats=("png", "svg"))
    with pytest.raises(ValueError, match="plain file name"):
        export_mask(mask, tmp_path, "../escape", {})
    with pytest.raises(ValueError, match="HxW"):
        mask_to_coco_rle(np.ones((2, 3, 3), bool), {})
    assert list(tmp_path.iterdir()) == []


def test_integer_masks_are_accepted() -> None:
    mask = donut_and_blob()
    rle_bool = mask_to_coco_rle(mask, {})
    rle_u8 = mask_to_coco_rle(mask.astype(np.uint8) * 255, {})
    assert rle_bool["counts"] == rle_u8["counts"]
