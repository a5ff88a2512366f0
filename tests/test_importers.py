"""Import parsers (basam_ui.project.imports): our own exports read back (COCO RLE exactly, PNG
label maps exactly for the visible pixels, YOLO polygons to IoU >= 0.95 with holes filled),
LabelMe files of every area shape, image matching, malformed files and missing images."""

from __future__ import annotations

import base64
import io
import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw
from project_util import blob, make_images, provenance

from basam_ui.project import Project
from basam_ui.project.export import export_project
from basam_ui.project.imports import AnnotationFileError, ImageMatcher, parse_annotations
from basam_ui.project.labelmap import label_maps

LABELS = ["lesion", "skin", "hair"]


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """Four images with three objects each (one with a hole; overlapping), plus on the first
    image a small object entirely under a later one; all images done."""
    root = make_images(tmp_path_factory.mktemp("data"))
    project = Project.open(root, labels=LABELS)
    for k, image in enumerate(project.images()):
        image, _ = project.open_image(image.id)
        for j in range(3):
            mask = blob(image.height, image.width, seed=10 * k + j, holes=(j == 0))
            project.commit_object(image.id, mask, LABELS[(k + j) % 3], provenance())
            if k == 0 and j == 0:  # hidden: a later object covers it entirely
                hidden = np.zeros_like(mask)
                hidden[2:5, 2:5] = True
                project.commit_object(image.id, hidden, "hair", provenance())
        if k == 0:
            cover = np.zeros((image.height, image.width), bool)
            cover[0:8, 0:8] = True
            project.commit_object(image.id, cover, "skin", provenance())
        project.set_status(image.id, "done")
    yield project
    project.close()


def sizes_of(project) -> dict:
    return {im.path: (im.height, im.width) for im in project.images()}


def by_image(parsed) -> dict:
    out: dict = {}
    for obj in parsed.objects:
        out.setdefault(obj.image, []).append(obj)
    return out


def test_coco_rle_round_trip_is_exact(annotated, tmp_path):
    export_project(annotated, tmp_path, "coco")
    parsed = parse_annotations("coco", tmp_path, sizes_of(annotated))
    assert parsed.classes == LABELS and not parsed.unmatched and not parsed.skipped
    found = by_image(parsed)
    for image in annotated.images():
        objects = annotated.objects(image.id)
        imported = found[image.path]
        assert [o.label for o in imported] == [o.label for o in objects]  # bottom layer first
        assert [o.rle for o in imported] == [o.rle() for o in objects]  # the same RLE strings
        assert [o.attributes["id"] for o in imported] == [o.id for o in objects]
        assert all(o.attributes["attributes"]["side"] == "basam" for o in imported)
        assert np.array_equal(imported[0].mask(), objects[0].mask())


def test_coco_polygons_are_rasterised(annotated, tmp_path):
    export_project(annotated, tmp_path, "coco", polygons=True)
    parsed = parse_annotations("coco", tmp_path / "annotations.json", sizes_of(annotated))
    found = by_image(parsed)
    for image in annotated.images():
        for imported, committed in zip(found[image.path], annotated.objects(image.id)):
            # our polygons run through the boundary pixels' centres, so COCO's rasteriser loses
            # about half a pixel all round: a large share of a small blob's area
            if committed.area >= 200:
                assert iou(imported.mask(), fill_holes(committed.mask())) >= 0.85


def test_png_label_maps_round_trip_the_visible_pixels(annotated, tmp_path):
    export_project(annotated, tmp_path, "png")
    sizes = sizes_of(annotated)
    parsed = parse_annotations("png", tmp_path, sizes)
    assert parsed.classes == LABELS and not parsed.unmatched
    found = by_image(parsed)
    hidden = 0
    for image in annotated.images():
        objects = annotated.objects(image.id)
        _, instance = label_maps(objects, image.height, image.width, {n: i + 1 for i, n in enumerate(LABELS)})
        visible = [(o, instance == n) for n, o in enumerate(objects, start=1) if (instance == n).any()]
        hidden += len(objects) - len(visible)
        imported = found[image.path]
        assert [o.label for o in imported] == [o.label for o, _ in visible]
        for got, (committed, expected) in zip(imported, visible):
            assert np.array_equal(got.mask(), expected)
            assert got.attributes["object_id"] == committed.id
    assert hidden >= 1 and len(parsed.skipped) == hidden  # the covered object, at least
    assert all("hidden under later objects" in reason for _, reason in parsed.skipped)
    # without instances.json: objects by instance number, classes from the semantic map
    (tmp_path / "instances.json").unlink()
    again = parse_annotations("png", tmp_path, sizes)
    assert [(o.image, o.label) for o in again.objects] == [(o.image, o.label) for o in parsed.objects]
    assert all(np.array_equal(a.mask(), b.mask()) for a, b in zip(again.objects, parsed.objects))
    # semantic maps alone: one object per class and image
    shutil.rmtree(tmp_path / "instance")
    semantic = parse_annotations("png", tmp_path, sizes)
    image = annotated.images()[0]
    per_class = {o.label: o.mask() for o in semantic.objects if o.image == image.path}
    maps, _ = label_maps(annotated.objects(image.id), image.height, image.width, {n: i + 1 for i, n in enumerate(LABELS)})
    for name, mask in per_class.items():
        assert np.array_equal(mask, maps == LABELS.index(name) + 1)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_yolo_polygons_round_trip_with_holes_filled(annotated, tmp_path):
    export_project(annotated, tmp_path, "yolo")
    parsed = parse_annotations("yolo", tmp_path, sizes_of(annotated))
    assert parsed.classes == LABELS and not parsed.unmatched
    found = by_image(parsed)
    for image in annotated.images():
        objects = annotated.objects(image.id)
        pieces: dict[int, np.ndarray] = {}
        for piece in found[image.path]:  # an object in several pieces is several lines: regroup
            mask = piece.mask()
            owner = max(range(len(objects)), key=lambda i: (objects[i].mask() & mask).sum() if objects[i].label == piece.label else -1)
            pieces[owner] = pieces.get(owner, np.zeros_like(mask)) | mask
        for i, committed in enumerate(objects):
            filled = fill_holes(committed.mask())
            filled[committed.mask() & ~fill_holes(committed.mask())] = True
            assert iou(pieces[i], filled) >= 0.95, (image.path, i)
    # the hole is filled, not kept
    first = annotated.images()[0]
    holed = annotated.objects(first.id)[0].mask()
    assert (fill_holes(holed) & ~holed).any()


def test_yolo_boxes_classes_yaml_and_sizes(tmp_path):
    labels = tmp_path / "labels" / "train"
    labels.mkdir(parents=True)
    (tmp_path / "data.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    (labels / "x.txt").write_text("1 0.5 0.5 0.5 0.25\n\n0 0.1 0.1 0.3 0.1 0.2 0.3\n")
    parsed = parse_annotations("yolo", tmp_path, {"images/train/x.jpg": (40, 80)})
    box, triangle = parsed.objects
    assert (box.label, box.attributes, triangle.label) == ("dog", {"yolo": "box"}, "cat")
    ys, xs = np.nonzero(box.mask())
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (20, 60, 15, 25)  # a 40 x 10 box's pixels
    assert box.origin == "labels/train/x.txt: line 1" and triangle.origin == "labels/train/x.txt: line 3"
    with pytest.raises(ValueError, match="its size is needed"):
        parse_annotations("yolo", tmp_path, {"images/train/x.jpg": None})


def labelme_file(folder, image_path="../images/photo.png", height=60, width=80, shapes=None) -> dict:
    piece = np.zeros((5, 7), np.uint8)
    piece[1:4, 2:6] = 255
    buffer = io.BytesIO()
    Image.fromarray(piece).save(buffer, format="PNG")
    shapes = shapes if shapes is not None else [
        {"label": "cell", "points": [[10, 10], [30, 12], [20, 30]], "shape_type": "polygon", "group_id": None,
         "description": "first", "flags": {}},
        {"label": "box", "points": [[50, 40], [40, 30]], "shape_type": "rectangle", "group_id": None, "flags": {}},
        {"label": "nucleus", "points": [[60, 15], [60, 20]], "shape_type": "circle", "group_id": 3, "flags": {}},
        {"label": "nucleus", "points": [[70, 45], [72, 50], [66, 52]], "shape_type": "polygon", "group_id": 3},
        {"label": "stain", "points": [[3, 40], [9, 44]], "shape_type": "mask",
         "mask": base64.b64encode(buffer.getvalue()).decode(), "score": 0.9},
        {"label": "edge", "points": [[0, 0], [10, 10]], "shape_type": "line"},
        {"label": "dot", "points": [[5, 5]], "shape_type": "point"},
    ]  # fmt: skip
    data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
            "imageHeight": height, "imageWidth": width}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "photo.json").write_text(json.dumps(data))
    return data


def test_labelme_shapes(tmp_path):
    root = tmp_path / "project"
    labelme_file(root / "json")
    parsed = parse_annotations("labelme", root / "json", {"images/photo.png": (60, 80), "other.png": None}, project_root=root)
    assert [o.label for o in parsed.objects] == ["cell", "box", "nucleus", "stain"]
    assert [reason for _, reason in parsed.skipped] == ["a line shape is not an area", "a point shape is not an area"]
    cell, box, nucleus, stain = (o.mask() for o in parsed.objects)
    expected = Image.new("L", (80, 60), 0)
    ImageDraw.Draw(expected).polygon([(10, 10), (30, 12), (20, 30)], outline=1, fill=1)
    assert np.array_equal(cell, np.asarray(expected, bool))  # drawn as labelme draws it
    rectangle = np.zeros((60, 80), bool)
    rectangle[30:41, 40:51] = True  # corners given in either order, both included
    assert np.array_equal(box, rectangle)
    yy, xx = np.mgrid[:60, :80]
    disc = np.hypot(xx - 60, yy - 15) <= 5
    assert (nucleus & disc).sum() >= 0.9 * disc.sum() and nucleus[48, 69]  # circle and polygon of group 3: one object
    assert parsed.objects[2].attributes["shapes"] == ["circle", "polygon"]
    placed = np.zeros((60, 80), bool)
    placed[41:44, 5:9] = True  # the PNG's set pixels, its top-left at (3, 40)
    assert np.array_equal(stain, placed)
    assert parsed.objects[3].attributes["score"] == 0.9 and parsed.objects[0].attributes["description"] == "first"
    assert {o.image for o in parsed.objects} == {"images/photo.png"}
    # outside the project folder, imagePath is matched by name
    labelme_file(tmp_path / "elsewhere", image_path="C:\\scans\\photo.png")
    elsewhere = parse_annotations("labelme", tmp_path / "elsewhere" / "photo.json", {"images/photo.png": None})
    assert len(elsewhere.objects) == 4 and not elsewhere.unmatched


def test_missing_images_are_listed_and_skipped(annotated, tmp_path):
    export_project(annotated, tmp_path / "coco", "coco")
    export_project(annotated, tmp_path / "yolo", "yolo")
    sizes = sizes_of(annotated)
    gone = annotated.images()[0].path
    kept = {p: s for p, s in sizes.items() if p != gone}
    for fmt in ("coco", "yolo"):
        parsed = parse_annotations(fmt, tmp_path / fmt, kept)
        assert {o.image for o in parsed.objects} == set(kept)
        (unmatched,) = parsed.unmatched
        assert gone.startswith(unmatched.name) and unmatched.annotations >= 4 and "not an image" in unmatched.reason
    labelme_file(tmp_path / "lm", image_path="unknown.png")
    parsed = parse_annotations("labelme", tmp_path / "lm", sizes)
    assert not parsed.objects and parsed.unmatched[0].name == "unknown.png" and parsed.unmatched[0].annotations == 7


def test_image_matching():
    matcher = ImageMatcher(["a/x.jpg", "b/x.jpg", "a/y.png", "deep/er/z.tif", "w.jpg", "w.png"])
    assert matcher.match("a/x.jpg") == ("a/x.jpg", "")
    assert matcher.match("/data/set/a/x.jpg") == ("a/x.jpg", "")
    assert matcher.match(".\\a\\y.png") == ("a/y.png", "")
    assert matcher.match("z.tif") == ("deep/er/z.tif", "")
    assert matcher.match("x.jpg")[0] is None and "ambiguous" in matcher.match("x.jpg")[1]
    assert matcher.match("c/y.png")[0] is None  # another folder is another image
    assert matcher.match("a/y", stems=True) == ("a/y.png", "")
    assert matcher.match("w", stems=True)[0] is None  # w.jpg or w.png
    assert matcher.match("w.png", stems=True) == ("w.png", "")


def coco_with(annotation: dict, **image) -> dict:
    return {"images": [{"id": 1, "file_name": "p.png", "height": 4, "width": 5, **image}],
            "annotations": [{"id": 12, "image_id": 1, "category_id": 1, **annotation}],
            "categories": [{"id": 1, "name": "thing"}]}  # fmt: skip


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "annotations.json: line 1 column 2: not valid JSON"),
        ('{"images": []}', "annotations.json: not a COCO file: no 'annotations' list"),
        (coco_with({"segmentation": "nope"}), "annotations.json: annotation 12: segmentation is neither RLE nor polygons"),
        (coco_with({"segmentation": [[1, 2, 3]]}), "annotation 12: polygon 0 is not a list of at least 3 x, y pairs"),
        (coco_with({"segmentation": {"size": [4, 5], "counts": "0"}}), "annotation 12: the RLE runs cover 0 pixels, not 4 x 5"),
        (coco_with({"segmentation": {"size": [4, 5], "counts": "a~"}}), "annotation 12: the RLE counts do not decode"),
        (coco_with({"segmentation": {"size": [3, 5], "counts": [15]}}), "annotation 12: the RLE's size [3, 5] is not the image's [4, 5]"),
        (coco_with({"segmentation": {"size": [4, 5], "counts": [3, 4]}}), "annotation 12: the RLE counts add up to 7, not 4 x 5 pixels"),
        (coco_with({"segmentation": [[0, 0, 3, 0, 3, 3]], "category_id": 7}), "annotation 12: category_id 7 is not in categories"),
        (coco_with({"segmentation": [[0, 0, 3, 0, 3, 3]]}, height=0), "annotations.json: image 1: needs a positive integer height and width"),
        (coco_with({"segmentation": [[0, 0, 3, 0, 3, 3]]}, height=6), "annotation 12: the mask is 5x6 (W x H) but the project's image p.png is 5x4"),
    ],
)
def test_malformed_coco_files_say_where(tmp_path, content, message):
    path = tmp_path / "annotations.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(AnnotationFileError) as caught:
        parse_annotations("coco", path, {"p.png": (4, 5)})
    assert message in str(caught.value)


def test_a_valid_coco_file_of_each_segmentation_kind(tmp_path):
    from pycocotools import mask as mask_utils

    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 1:4] = 1
    compressed = mask_utils.encode(np.asfortranarray(mask))["counts"].decode()
    uncompressed = [5, 2, 2, 2, 2, 2, 5]  # column-major runs of the same mask
    data = coco_with({"segmentation": {"size": [4, 5], "counts": compressed}})
    data["annotations"] += [
        {"id": 13, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": {"size": [4, 5], "counts": uncompressed}},
        {"id": 14, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 3, 1, 3, 2, 1, 2]], "score": 0.5},
    ]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    parsed = parse_annotations("coco", path, {"images/p.png": None})
    rle_mask, crowd_mask, polygon = (o.mask() for o in parsed.objects)
    assert np.array_equal(rle_mask, mask.astype(bool)) and np.array_equal(crowd_mask, mask.astype(bool))
    assert polygon.sum() == 2 and polygon[1, 1:3].all()  # x in [1, 3], y in [1, 2]: COCO's pixel x covers [x, x + 1)
    assert parsed.objects[2].attributes == {"id": 14, "score": 0.5} and parsed.objects[1].attributes["iscrowd"] == 1


def files(**contents):
    """A function writing files into a folder: labels__p_txt="..." writes labels/p.txt."""

    def write(folder):
        for name, text in contents.items():
            path = folder / ".".join(name.replace("__", "/").rsplit("_", 1))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    return write


@pytest.mark.parametrize(
    "fmt, write, message",
    [
        ("yolo", files(labels__p_txt="0 0.1 0.2 0.3\n"),
         "labels/p.txt: line 1: expected x y pairs of at least 3 points (or a box: cx cy w h), got 3 numbers"),
        ("yolo", files(classes_txt="a\n", p_txt="0 .1 .1 .2 .1 .2 .2\n3 .1 .1 .2 .1 .2 .2\n"),
         "p.txt: line 2: class 3 is not in the class list (1 classes)"),
        ("yolo", files(p_txt="x 1 2 3 4 5 6\n"), "p.txt: line 1: expected a class number followed by numbers"),
        ("png", files(semantic__p_png=""), "no classes.txt"),
        ("png", files(classes_txt="0 background\n1 a\n", instances_json='{"p.png": [{"number": 1}]}'),
         "instances.json: p.png: object 0: needs a number and a class"),
        ("png", files(classes_txt="0 background\n1 a\n", semantic__p_png="not a png"), "semantic/p.png: not a readable PNG"),
        ("labelme", files(p_json='{"shapes": [], "imagePath": "p.png"}'),
         "p.json: needs a positive integer imageHeight and imageWidth"),
        ("labelme", lambda d: labelme_file(d, "p.png", 4, 5, [{"label": "a", "points": [[1, 1], [2, 2]], "shape_type": "polygon"}]),
         "photo.json: shape 0: a polygon needs at least 3 [x, y] points"),
        ("labelme", lambda d: labelme_file(d, "p.png", 4, 5, [{"label": "a", "points": [[0, 0], [1, 1]], "shape_type": "mask", "mask": "???"}]),
         "photo.json: shape 0: its mask is not a base64 PNG"),
    ],
)  # fmt: skip
def test_malformed_files_of_the_other_formats_say_where(tmp_path, fmt, write, message):
    write(tmp_path)
    with pytest.raises(AnnotationFileError) as caught:
        parse_annotations(fmt, tmp_path, {"p.png": (4, 5)})
    assert message in str(caught.value)


def test_unknown_format_and_missing_source(tmp_path):
    with pytest.raises(ValueError, match="unknown import format"):
        parse_annotations("voc", tmp_path, {})
    with pytest.raises(FileNotFoundError):
        parse_annotations("coco", tmp_path / "nothing", {})
    with pytest.raises(FileNotFoundError, match="no annotations.json"):
        parse_annotations("coco", tmp_path, {})
