"""Slides in a project: objects made in fields are stored with their field (level-0 rectangle,
downsample) and their mask at the field's resolution; exports place them in level-0 pixels
(COCO polygons, QuPath GeoJSON) or cut them into patches (PNG label maps, YOLO); the report
gives areas in µm²; a project with slides opens without decoding pixels; an older project is
upgraded with its objects intact."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import shapely
import yaml
from PIL import Image
from shapely.geometry import shape

from basam_ui.project import Project
from basam_ui.project import fields as placed
from basam_ui.project import migrations
from basam_ui.project.export import export_project
from bad_files import png_header_only
from basam_ui.sources.fields import Field, level0_to_mask
from project_util import insert_schema1_object, older_database, provenance
from slides import pattern, write_slide

SLIDE_SIZE = (20_000, 16_000)
MPP = 0.25
# two fields of one slide: at 1:4 (a zoomed-out view) and at 1:1 (a close one)
COARSE = Field(4000, 2000, 4096, 3072, 4.0)
FINE = Field(12_000, 9000, 1000, 600, 1.0)


def ring(field: Field, centre: tuple[int, int], outer: int, inner: int) -> np.ndarray:
    """A ring (a disc with a hole) at the field's resolution."""
    width, height = field.size
    mask = np.zeros((height, width), np.uint8)
    cv2.circle(mask, centre, outer, 1, -1)
    cv2.circle(mask, centre, inner, 0, -1)
    return mask.astype(bool)


@pytest.fixture(scope="module")
def slide_project(tmp_path_factory):
    """A folder with a 20,000 x 16,000 slide (4 levels, 0.25 µm/px) and a photo: two objects
    on the slide, one per field (apart), and one on the photo; both images are done."""
    root = tmp_path_factory.mktemp("slides")
    write_slide(root / "slide.tif", SLIDE_SIZE, levels=4, mpp=MPP)
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(root / "photo.png")
    with Project.open(root, labels=["tumour", "stroma"]) as project:
        slide = project.image_by_path("slide.tif")
        photo = project.image_by_path("photo.png")
        project.open_image(slide.id)
        project.open_image(photo.id)
        coarse = ring(COARSE, (500, 300), 120, 40)
        fine = ring(FINE, (600, 300), 150, 0)
        first = project.commit_object(slide.id, coarse, "tumour", provenance(prompts={"points": [[6000, 3200]], "labels": [1], "box": None}), field=COARSE)
        second = project.commit_object(slide.id, fine, "stroma", provenance(prompts={"points": [[12_600, 9300]], "labels": [1], "box": None}), field=FINE)
        square = np.zeros((40, 60), bool)
        square[10:20, 5:25] = True
        project.commit_object(photo.id, square, "tumour", provenance())
        project.set_status(slide.id, "done")
        project.set_status(photo.id, "done")
    return root, {"coarse": (first.id, coarse), "fine": (second.id, fine)}


def test_a_field_object_keeps_its_field_and_mask_and_lies_in_level0(slide_project):
    root, made = slide_project
    with Project.open(root, scan=False) as project:
        slide = project.image_by_path("slide.tif")
        assert (slide.width, slide.height) == SLIDE_SIZE and slide.pixel_size == (MPP, MPP)
        coarse, fine = project.objects(slide.id)
    assert coarse.field == COARSE and fine.field == FINE
    assert np.array_equal(coarse.mask(), made["coarse"][1]) and coarse.mask().shape == (768, 1024)
    assert np.array_equal(fine.mask(), made["fine"][1]) and fine.mask().shape == (600, 1000)
    # level 0: the coarse ring's centre (500, 300) at 1:4 from (4000, 2000) -> (6002, 3202)
    outline = placed.geometry(coarse)
    assert outline.is_valid and len(outline.interiors) == 1  # the hole is kept
    assert outline.centroid.distance(shapely.Point(6002, 3202)) < 2
    assert placed.bbox(coarse) == pytest.approx([4000 + 380 * 4, 2000 + 180 * 4, 241 * 4, 241 * 4])
    assert placed.area(coarse) == coarse.area * 16 and abs(outline.area - placed.area(coarse)) < 0.02 * outline.area
    # the round trip: the level-0 outline drawn back at the field's resolution is the mask
    assert np.array_equal(level0_to_mask(COARSE, outline), made["coarse"][1])
    assert np.array_equal(level0_to_mask(FINE, placed.geometry(fine)), made["fine"][1])
    assert placed.area_um2(fine, (MPP, MPP)) == pytest.approx(fine.area * MPP * MPP)


def test_a_field_mask_must_match_its_field_and_lie_in_the_image(slide_project):
    root, _ = slide_project
    with Project.open(root, scan=False) as project:
        slide = project.image_by_path("slide.tif")
        with pytest.raises(ValueError, match="field's pixels"):
            project.commit_object(slide.id, np.ones((10, 10), bool), "tumour", provenance(), field=FINE)
        outside = Field(19_500, 0, 1000, 1000, 1.0)
        with pytest.raises(ValueError, match="does not lie in the image"):
            project.commit_object(slide.id, np.ones((1000, 1000), bool), "tumour", provenance(), field=outside)
        assert len(project.objects(slide.id)) == 2


def test_coco_gives_slide_objects_as_level0_polygons(slide_project, tmp_path):
    root, made = slide_project
    with Project.open(root, scan=False) as project:
        export_project(project, tmp_path, "coco")
    coco = json.loads((tmp_path / "annotations.json").read_text())
    images = {image["file_name"]: image for image in coco["images"]}
    assert (images["slide.tif"]["width"], images["slide.tif"]["height"]) == SLIDE_SIZE
    by_id = {a["id"]: a for a in coco["annotations"]}
    for key, field in (("coarse", COARSE), ("fine", FINE)):
        annotation = by_id[made[key][0]]
        assert annotation["attributes"]["field"] == field.as_dict()
        rings = [np.array(p).reshape(-1, 2) for p in annotation["segmentation"]]
        assert rings and all(len(r) >= 3 for r in rings)
        # the outer rings, drawn back at the field's resolution, are the committed mask with
        # its holes filled (COCO polygons have no holes)
        mask = made[key][1]
        drawn = level0_to_mask(field, shapely.MultiPolygon([shapely.Polygon(r) for r in rings]))
        outer, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        filled = cv2.drawContours(np.zeros(mask.shape, np.uint8), outer, -1, 1, thickness=-1).astype(bool)
        assert np.array_equal(drawn, filled)
        x, y, w, h = annotation["bbox"]
        xs, ys = np.concatenate([r[:, 0] for r in rings]), np.concatenate([r[:, 1] for r in rings])
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == pytest.approx((x, y, x + w, y + h))
        assert annotation["area"] == pytest.approx(mask.sum() * field.downsample**2)


def test_geojson_is_a_feature_collection_per_image_in_level0_pixels(slide_project, tmp_path):
    root, made = slide_project
    with Project.open(root, scan=False) as project:
        export_project(project, tmp_path, "geojson")
    collection = json.loads((tmp_path / "geojson" / "slide.geojson").read_text())
    assert collection["type"] == "FeatureCollection" and collection["basam_ui"]["microns_per_pixel"] == [MPP, MPP]
    features = {f["properties"]["basam_ui"]["object_id"]: f for f in collection["features"]}
    assert set(features) == {made["coarse"][0], made["fine"][0]}
    for key, field in (("coarse", COARSE), ("fine", FINE)):
        feature = features[made[key][0]]
        properties = feature["properties"]
        assert properties["objectType"] == "annotation" and properties["classification"]["name"] in ("tumour", "stroma")
        assert len(properties["classification"]["color"]) == 3
        geometry = shape(feature["geometry"])  # parses with shapely, valid, level-0 pixels
        assert geometry.is_valid and geometry.geom_type in ("Polygon", "MultiPolygon")
        assert np.array_equal(level0_to_mask(field, geometry), made[key][1])  # holes and all
        assert properties["basam_ui"]["area_um2"] == pytest.approx(made[key][1].sum() * field.downsample**2 * MPP**2)
    assert json.loads((tmp_path / "geojson" / "photo.geojson").read_text())["features"][0]["geometry"]["type"] == "Polygon"


def test_png_patches_hold_the_field_pixels_and_label_maps_equal_to_the_masks(slide_project, tmp_path):
    root, made = slide_project
    with Project.open(root, scan=False) as project:
        result = export_project(project, tmp_path, "png")
    assert result.objects == 3
    instances = json.loads((tmp_path / "instances.json").read_text())
    for key, field, index in (("coarse", COARSE, 1), ("fine", FINE, 2)):
        name = f"slide/x{field.x}_y{field.y}_w{field.width}_h{field.height}_d{field.downsample:g}"
        semantic = cv2.imread(str(tmp_path / "semantic" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        instance = cv2.imread(str(tmp_path / "instance" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(semantic, made[key][1] * np.uint8(index))
        assert np.array_equal(instance > 0, made[key][1])
        assert [entry["object_id"] for entry in instances[f"{name}.png"]] == [made[key][0]]
        pixels = np.asarray(Image.open(tmp_path / "images" / f"{name}.png"))
        width, height = field.size
        level = int(np.log2(field.downsample))  # the slide's 2x levels: a field at 1:4 is level 2 as it is
        expected = pattern(field.x >> level, field.y >> level, width, height, level, SLIDE_SIZE)
        assert np.array_equal(pixels, expected)
    assert cv2.imread(str(tmp_path / "semantic" / "photo.png"), cv2.IMREAD_UNCHANGED).shape == (40, 60)


def test_yolo_patches_keep_the_ultralytics_layout(slide_project, tmp_path):
    root, made = slide_project
    with Project.open(root, scan=False) as project:
        export_project(project, tmp_path, "yolo")
    config = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert config["train"] == "images" and config["names"] == {0: "tumour", 1: "stroma"}
    name = f"slide/x{FINE.x}_y{FINE.y}_w{FINE.width}_h{FINE.height}_d1"
    assert (tmp_path / "images" / f"{name}.png").is_file() and not (tmp_path / "images" / f"{name}.png").is_symlink()
    [line] = (tmp_path / "labels" / f"{name}.txt").read_text().splitlines()
    numbers = line.split()
    assert numbers[0] == "1"
    xy = np.array(numbers[1:], float).reshape(-1, 2) * FINE.size
    ys, xs = np.nonzero(made["fine"][1])
    assert abs(xy[:, 0].min() - xs.min()) <= 1 and abs(xy[:, 1].max() - ys.max()) <= 1
    assert (tmp_path / "labels" / "photo.txt").is_file()


def test_the_report_gives_areas_in_square_microns(slide_project, tmp_path):
    root, made = slide_project
    with Project.open(root, scan=False) as project:
        result = export_project(project, tmp_path, "coco")
    areas = result.figures["areas"]
    assert areas["stroma"]["mean_um2"] == pytest.approx(made["fine"][1].sum() * MPP**2)
    assert areas["tumour"]["count"] == 2 and areas["tumour"]["um2_count"] == 1  # the photo has no pixel size
    assert "µm²" in (tmp_path / "report.md").read_text()


def test_opening_a_project_with_slides_decodes_no_pixels(tmp_path, monkeypatch):
    from basam_ui.sources.slide import SlideSource

    root = tmp_path / "p"
    root.mkdir()
    write_slide(root / "big.tif", SLIDE_SIZE, levels=4, mpp=MPP)

    def refuse(*args, **kwargs):
        raise AssertionError("pixels were read")

    monkeypatch.setattr(SlideSource, "read", refuse)
    monkeypatch.setattr(SlideSource, "_read_level", refuse)
    with Project.open(root) as project:
        [image] = project.images()
        opened, _ = project.open_image(image.id)  # the header: size, fingerprint, pixel size
    assert (opened.width, opened.height) == SLIDE_SIZE and opened.unreadable is None  # 320 MP: a slide has no limit


def test_the_photo_pixel_limit_stays(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "huge.png").write_bytes(png_header_only(20_000, 16_000))  # a photo of the slide's size
    with Project.open(root) as project:
        opened, _ = project.open_image(project.images()[0].id)
    assert "over the limit" in (opened.unreadable or "")


def test_a_schema_before_fields_is_upgraded_with_its_objects_intact(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(root / "photo.png")
    module = next(m for m in migrations.MIGRATIONS.values() if m.__name__.endswith("slide_fields"))
    db = older_database(root, module.VERSION - 1)  # the schema before this one, as an older basam-ui left it
    mask = np.zeros((40, 60), bool)
    mask[5:15, 5:25] = True
    kept = insert_schema1_object(db, "photo.png", mask, provenance())
    with Project.open(root) as project:
        assert migrations.version(project._conn) == migrations.SCHEMA_VERSION
        [again] = project.objects(project.images()[0].id)
        assert again.id == kept and again.field is None and np.array_equal(again.mask(), mask)
        assert again.provenance == provenance()


def test_the_command_line_exports_geojson(slide_project, tmp_path, capsys):
    from basam_ui.cli import main

    root, _ = slide_project
    assert main(["export", str(root), "--format", "geojson", "--out", str(tmp_path / "out")]) == 0
    assert "3 objects of 2 images" in capsys.readouterr().out
    collection = json.loads((tmp_path / "out" / "geojson" / "slide.geojson").read_text())
    assert [f["geometry"]["type"] for f in collection["features"]] == ["Polygon", "Polygon"]
