"""Exports round-trip: COCO decodes to the committed masks, label maps hold the right class and
object per pixel, YOLO polygons rasterise back to the masks, the report's figures add up."""

from __future__ import annotations

import json
import statistics

import cv2
import numpy as np
import pytest
from PIL import Image
from project_util import blob, make_images, provenance

from basam_ui.project import Project
from basam_ui.project.export import export_project, export_zip
from basam_ui.project.report import project_figures, report_figures


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """A project of four images: three done with objects (overlapping, with a hole, several
    classes, both sides), one to do with an object; returns (project, {image id: [masks]})."""
    root = make_images(tmp_path_factory.mktemp("data"))
    project = Project.open(root, labels=["lesion", "skin", "hair"])
    masks = {}
    for k, image in enumerate(project.images()):
        image, _ = project.open_image(image.id)
        for j in range(3):
            mask = blob(image.height, image.width, seed=10 * k + j, holes=(j == 0))
            project.commit_object(
                image.id, mask, ["lesion", "skin", "hair"][(k + j) % 3],
                provenance(side="sam" if j == 1 else "basam", input_size=1024 if k % 2 else 2048,
                           iou_sam_basam=0.5 + 0.1 * j, brush_edits=j, seconds=2.0 + k + j,
                           prompts={"points": [[1, 2]] * (j + 1), "labels": [1] * (j + 1),
                                    "box": [0, 0, 9, 9] if j == 2 else None}),
            )
            masks.setdefault(image.id, []).append(mask)
        if k < 3:
            project.set_status(image.id, "done")
    yield project, masks
    project.close()


def test_coco_round_trip(annotated, tmp_path):
    from pycocotools.coco import COCO

    project, masks = annotated
    result = export_project(project, tmp_path, "coco")
    coco = COCO(str(tmp_path / "annotations.json"))
    done = [im for im in project.images() if im.status == "done"]
    assert sorted(coco.getImgIds()) == sorted(im.id for im in done) and result.objects == 9
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["lesion", "skin", "hair"]
    for image in done:
        info = coco.loadImgs(image.id)[0]
        assert (info["file_name"], info["height"], info["width"]) == (image.path, image.height, image.width)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image.id))
        assert len(anns) == 3
        for ann, committed in zip(anns, masks[image.id]):  # bottom layer first
            assert np.array_equal(coco.annToMask(ann).astype(bool), committed)
            assert ann["area"] == committed.sum()
            assert ann["attributes"]["model_type"] == "vit_t" and ann["attributes"]["prompts"]["labels"]
            assert coco.loadCats(ann["category_id"])[0]["name"] == project.object(ann["id"]).label
    assert (tmp_path / "report.md").is_file()


def test_coco_all_and_polygons(annotated, tmp_path):
    from pycocotools.coco import COCO

    project, masks = annotated
    export_project(project, tmp_path, "coco", all_images=True, polygons=True)
    coco = COCO(str(tmp_path / "annotations.json"))
    assert len(coco.getImgIds()) == 4
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert isinstance(ann["segmentation"], list)
        mask = coco.annToMask(ann).astype(bool)
        committed = masks[ann["image_id"]][[o.id for o in project.objects(ann["image_id"])].index(ann["id"])]
        # small masks: the outline through boundary pixel centres loses half of each edge pixel
        assert (mask & committed).sum() / (mask | committed).sum() >= 0.8


def test_coco_polygons_of_a_large_mask():
    from pycocotools import mask as mask_utils

    from basam_ui.project.coco import _segmentation
    from basam_ui.project.objects import ObjectRecord, encode_mask

    mask = blob(600, 800, seed=3)
    rle = encode_mask(mask)
    obj = ObjectRecord(1, 1, "x", 1, 1, 600, 800, rle["counts"], rle["area"], rle["bbox"], provenance(), 0.0, None)
    rings = _segmentation(obj, polygons=True)
    drawn = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(rings, 600, 800))).astype(bool)
    assert (drawn & mask).sum() / (drawn | mask).sum() >= 0.97


def test_png_label_maps(annotated, tmp_path):
    project, masks = annotated
    export_project(project, tmp_path, "png")
    classes = (tmp_path / "classes.txt").read_text().split("\n")
    assert classes[:4] == ["0 background", "1 lesion", "2 skin", "3 hair"]
    instances = json.loads((tmp_path / "instances.json").read_text())
    for image in (im for im in project.images() if im.status == "done"):
        stem = image.path.rsplit(".", 1)[0]
        semantic = np.array(Image.open(tmp_path / "semantic" / f"{stem}.png"))
        instance = cv2.imread(str(tmp_path / "instance" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert semantic.dtype == np.uint8 and instance.dtype == np.uint16
        assert semantic.shape == instance.shape == (image.height, image.width)
        expected_class = np.zeros(semantic.shape, np.uint8)
        expected_id = np.zeros(semantic.shape, np.uint16)
        for number, obj in enumerate(project.objects(image.id), start=1):  # later objects on top
            expected_class[masks[image.id][number - 1]] = ["lesion", "skin", "hair"].index(obj.label) + 1
            expected_id[masks[image.id][number - 1]] = number
            assert instances[image.path][number - 1]["object_id"] == obj.id
        assert np.array_equal(semantic, expected_class) and np.array_equal(instance, expected_id)
        assert len(np.unique(instance)) > 2


def test_yolo_polygons_rasterise_back(annotated, tmp_path):
    project, masks = annotated
    export_project(project, tmp_path, "yolo")
    assert (tmp_path / "classes.txt").read_text().split() == ["lesion", "skin", "hair"]
    for image in (im for im in project.images() if im.status == "done"):
        lines = (tmp_path / "labels" / f"{image.path.rsplit('.', 1)[0]}.txt").read_text().splitlines()
        drawn = {}
        for line in lines:
            values = line.split()
            points = np.array(values[1:], float).reshape(-1, 2) * [image.width, image.height]
            canvas = drawn.setdefault(int(values[0]), np.zeros((image.height, image.width), np.uint8))
            cv2.fillPoly(canvas, [points.round().astype(np.int32)], 1)
        for cls, canvas in drawn.items():
            objs = [m for m, o in zip(masks[image.id], project.objects(image.id))
                    if ["lesion", "skin", "hair"].index(o.label) == cls]
            union = np.any(objs, axis=0)
            iou = (union & canvas.astype(bool)).sum() / (union | canvas.astype(bool)).sum()
            assert iou >= 0.95, (image.path, cls, iou)


def test_report_figures_recomputed(annotated, tmp_path):
    project, masks = annotated
    result = export_project(project, tmp_path, "yolo", all_images=True)
    objects = project.all_objects()
    figures = result.figures
    assert figures == project_figures(project)  # with the team's figures (tests/test_review_store.py)
    assert {k: v for k, v in figures.items() if k != "team"} == report_figures(objects, project.labels(), project.progress())
    assert figures["objects"] == 12
    assert figures["per_class"] == {n: sum(o.label == n for o in objects) for n in ("lesion", "skin", "hair")}
    assert figures["committed"]["sam"] == 4 and figures["committed"]["basam"] == 8
    assert figures["by_size"] == {1024: {"basam": 4, "sam": 2}, 2048: {"basam": 4, "sam": 2}}
    assert figures["mean_iou_sam_basam"] == pytest.approx(0.6)
    assert figures["prompts_per_object"] == pytest.approx((1 + 2 + 4) / 3)  # the third has a box
    assert figures["brush_edits_per_object"] == pytest.approx(1.0)
    assert figures["brushed_share"] == pytest.approx(2 / 3)
    assert figures["seconds_per_object"]["mean"] == pytest.approx(statistics.fmean(
        2.0 + k + j for k in range(4) for j in range(3)))
    assert figures["images"]["done"] == 3 and figures["images"]["total"] == 4
    text = (tmp_path / "report.md").read_text()
    assert "| lesion | 4 |" in text and "BA-SAM 8, SAM 4" in text and "| 1024 | 4 | 2 | 67% |" in text


def test_zip_holds_the_coco_file(annotated, tmp_path):
    import zipfile

    project, _ = annotated
    path, result = export_zip(project, tmp_path / "dataset.zip", "coco")
    with zipfile.ZipFile(path) as archive:
        assert {"annotations.json", "report.md"} <= set(archive.namelist())
        assert len(json.loads(archive.read("annotations.json"))["annotations"]) == result.objects == 9


def test_outlines_in_the_box_match_the_whole_image():
    from basam_ui.export import mask_to_polygons
    from basam_ui.project.objects import ObjectRecord, encode_mask

    for seed, (h, w) in enumerate([(60, 80), (31, 47)]):
        mask = blob(h, w, seed, holes=True)
        mask[:, 0] = mask[-1, :] = True  # touching the image's edges too
        rle = encode_mask(mask)
        obj = ObjectRecord(1, 1, "x", 1, 1, h, w, rle["counts"], rle["area"], rle["bbox"], provenance(), 0.0, None)
        assert obj.outlines() == mask_to_polygons(mask, {})["polygons"]
        x0, y0, crop = obj.cropped_mask()
        assert crop.sum() == mask.sum() and np.array_equal(mask[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]], crop)


def _label_iou(label_file, width: int, height: int, union: np.ndarray) -> float:
    canvas = np.zeros((height, width), np.uint8)
    for line in label_file.read_text().splitlines():
        points = np.array(line.split()[1:], float).reshape(-1, 2) * [width, height]
        cv2.fillPoly(canvas, [points.round().astype(np.int32)], 1)
    return (union & canvas.astype(bool)).sum() / (union | canvas.astype(bool)).sum()


def test_yolo_export_is_an_ultralytics_dataset(annotated, tmp_path):
    """data.yaml in Ultralytics' layout (no `path`: resolved from the YAML's folder), images/
    linking to the originals, and each image's labels where Ultralytics looks for them."""
    import yaml

    project, masks = annotated
    export_project(project, tmp_path, "yolo")
    config = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert config == {"train": "images", "val": "images", "names": {0: "lesion", 1: "skin", 2: "hair"}}
    images = sorted(p for p in (tmp_path / "images").rglob("*") if not p.is_dir())
    done = {im.path: im for im in project.images() if im.status == "done"}
    assert sorted(str(p.relative_to(tmp_path / "images")) for p in images) == sorted(done)
    for path in images:
        assert path.is_symlink() and path.resolve() == project.file_path(done[str(path.relative_to(tmp_path / "images"))]).resolve()
        # Ultralytics' img2label_paths: /images/ -> /labels/, the extension -> .txt
        label = tmp_path / "labels" / path.relative_to(tmp_path / "images").with_suffix(".txt")
        assert label.is_file(), label
        image = done[str(path.relative_to(tmp_path / "images"))]
        assert _label_iou(label, image.width, image.height, np.any(masks[image.id], axis=0)) >= 0.95


def test_yolo_val_split_and_copies(annotated, tmp_path):
    import yaml

    project, _ = annotated
    export_project(project, tmp_path / "a", "yolo", val_fraction=0.34, seed=3, copy_images=True, all_images=True)
    export_project(project, tmp_path / "b", "yolo", val_fraction=0.34, seed=3, all_images=True)
    config = yaml.safe_load((tmp_path / "a" / "data.yaml").read_text())
    assert (config["train"], config["val"]) == ("train.txt", "val.txt") and "path" not in config
    train = (tmp_path / "a" / "train.txt").read_text().split()
    val = (tmp_path / "a" / "val.txt").read_text().split()
    assert len(val) == 1 and len(train) == 3 and not set(train) & set(val)
    assert all((tmp_path / "a" / line).is_file() and not (tmp_path / "a" / line).is_symlink() for line in train + val)
    assert val == (tmp_path / "b" / "val.txt").read_text().split()  # the same seed, the same split
    with pytest.raises(ValueError, match="fraction"):
        export_project(project, tmp_path / "c", "yolo", val_fraction=1.5)


def test_the_pages_yolo_zip_holds_copies_of_the_images(annotated, tmp_path):
    import zipfile

    project, _ = annotated
    path, _ = export_zip(project, tmp_path / "dataset.zip", "yolo")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        images = [n for n in names if n.startswith("images/") and not n.endswith("/")]
        assert "data.yaml" in names and len(images) == 3
        for name in images:
            info = archive.getinfo(name)
            assert (info.external_attr >> 16) & 0o170000 != 0o120000  # not a link
            original = project.file_path(project.image_by_path(name.removeprefix("images/")))
            assert archive.read(name) == original.read_bytes()


def test_coco_copy_images_writes_them_under_their_file_names(annotated, tmp_path):
    project, _ = annotated
    export_project(project, tmp_path, "coco", copy_images=True)
    dataset = json.loads((tmp_path / "annotations.json").read_text())
    for image in dataset["images"]:
        copy = tmp_path / "images" / image["file_name"]
        assert copy.is_file() and not copy.is_symlink()
