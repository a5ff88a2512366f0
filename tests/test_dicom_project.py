"""DICOM in annotation projects: a multi-frame instance is one item per frame (schema 3, and a
schema-2 database upgrades with its objects intact), each item records its source's facts,
objects record their window, exports name frames `<path>_f<n>` and never carry the fake
patient (nor, by default, the UIDs), report areas in mm², and `--format dicom-seg` writes SEGs
that read back, reference their source and equal the committed masks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from project_util import blob, database_at, legacy_object, provenance
from seg_checks import dciodvfy_errors, references, segments, segread_masks

import dicoms
from basam_ui.project import Project, migrations
from basam_ui.project.export import export_project
from basam_ui.sources import Window, open_source
from dicoms import LEAKS

FRAMES = 3


def make_folder(root: Path) -> dict[str, dicoms.Made]:
    root.mkdir(parents=True, exist_ok=True)
    made = {"frames": dicoms.multiframe(root, frames=FRAMES), "mammogram": dicoms.mammogram(root)}
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(root / "photo.png")
    dicoms.structured_report(root)
    return made


@pytest.fixture()
def folder(tmp_path) -> tuple[Path, dict[str, dicoms.Made]]:
    root = tmp_path / "scans"
    return root, make_folder(root)


def mask_in(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    mask[y0, x0] = False  # not a plain rectangle: a misplaced bit shows
    return mask


def test_each_frame_is_an_item_with_its_own_size_fingerprint_and_source(folder):
    root, made = folder
    with Project.open(root) as project:
        items = [(image.path, image.frame, image.display_name) for image in project.images()]
        assert items == [
            ("frames.dcm", 0, "frames.dcm [frame 1 of 3]"), ("frames.dcm", 1, "frames.dcm [frame 2 of 3]"),
            ("frames.dcm", 2, "frames.dcm [frame 3 of 3]"), ("mammogram.dcm", 0, "mammogram.dcm"),
            ("photo.png", 0, "photo.png"), ("report.dcm", 0, "report.dcm"),
        ]
        opened = [project.open_image(image.id)[0] for image in project.images()]
        frames = [image for image in opened if image.path == "frames.dcm"]
        assert [(i.width, i.height) for i in frames] == [(128, 96)] * 3
        assert len({i.sha256 for i in frames}) == 3 and frames[1].sha256.endswith("-f2")
        assert [i.source["frame"] for i in frames] == [1, 2, 3] and frames[0].source["modality"] == "OT"
        assert project.file_path(frames[2]) == root / "frames.dcm"
        mammogram = project.image_by_path("mammogram.dcm")
        assert mammogram.source["pixel_spacing_source"] == "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
        assert mammogram.source["window"]["name"] == "STANDARD"
        uids = mammogram.source["identifying"]  # kept in the database, written only where allowed
        assert uids["sop_instance_uid"] == str(pydicom.dcmread(made["mammogram"].path).SOPInstanceUID)
        report = project.image_by_path("report.dcm")
        assert "has no pixel data" in report.unreadable and report.width is None
        # Next and "next to do" walk the frames in order
        assert project.neighbour(frames[0].id, 1).id == frames[1].id
        assert project.neighbour(frames[2].id, -2).id == frames[0].id
        assert project.next_todo("s", after=frames[1].id, claim=False).id == frames[2].id


def test_a_version_2_database_upgrades_with_its_objects_intact_and_gains_frames(folder):
    root, _ = folder
    db = database_at(root / ".basam-ui" / "project.sqlite", 2)  # as basam-ui of schema 2 left it
    mask = blob(40, 50, 1)
    with sqlite3.connect(db) as conn:
        for path in ("frames.dcm", "mammogram.dcm", "photo.png", "report.dcm"):
            conn.execute("INSERT INTO images (path) VALUES (?)", (path,))
        photo = conn.execute("SELECT id FROM images WHERE path = 'photo.png'").fetchone()[0]
        conn.execute("UPDATE images SET width = 50, height = 40, status = 'done', status_by = 'ann' WHERE id = ?", (photo,))
        kept = legacy_object(conn, photo, mask)
        conn.execute("INSERT INTO claims VALUES (?, 'session', 'ann', 1.0, 1.0)", (photo,))
    with Project.open(root) as project:
        conn = project._conn
        assert migrations.version(conn) == migrations.SCHEMA_VERSION >= 3
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1 and not conn.execute("PRAGMA foreign_key_check").fetchall()
        [again] = project.objects(photo)
        assert again.id == kept and np.array_equal(again.mask(), mask) and again.provenance == provenance()
        assert again.provenance.window is None
        assert project.image(photo).status == "done"
        assert conn.execute("SELECT image_id, holder FROM claims").fetchall() == [(photo, "session")]
        assert [i.path for i in project.images()].count("frames.dcm") == 1  # listed before frames were items
        first = project.image_by_path("frames.dcm")
        project.open_image(first.id)  # its header says 3 frames: the other two become items
        assert [(i.frame, i.display_name) for i in project.images() if i.path == "frames.dcm"] == [
            (0, "frames.dcm [frame 1 of 3]"), (1, "frames.dcm [frame 2 of 3]"), (2, "frames.dcm [frame 3 of 3]")]
        with pytest.raises(sqlite3.IntegrityError):  # (path, frame) is the key
            conn.execute("INSERT INTO images (path, frame) VALUES ('frames.dcm', 1)")


def test_a_migration_that_would_break_references_is_rolled_back(tmp_path, monkeypatch):
    root = tmp_path / "p"
    root.mkdir()
    db = database_at(tmp_path / "old.sqlite", 2)
    with sqlite3.connect(db) as conn:
        image = conn.execute("INSERT INTO images (path) VALUES ('a.png')").lastrowid
        legacy_object(conn, image, blob(20, 20, 2))
    module = migrations.MIGRATIONS[3]
    rebuild = module.upgrade

    def losing_rows(conn):  # a rebuild that forgets the images: the objects would point nowhere
        rebuild(conn)
        conn.execute("DELETE FROM images")

    monkeypatch.setattr(module, "upgrade", losing_rows)
    with pytest.raises(RuntimeError, match="broken reference"):
        Project.open(root, db, scan=False)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 1


@pytest.fixture()
def annotated(folder):
    """Objects on frame 2, on the mammogram (under its second window) and on the photo, all done."""
    root, made = folder
    project = Project.open(root, labels=["mass", "bar"])
    frame2 = project.image_by_path("frames.dcm", 1)
    mammogram = project.image_by_path("mammogram.dcm")
    photo = project.image_by_path("photo.png")
    for image in (frame2, mammogram, photo):
        project.open_image(image.id)
    harder = Window.parse("linear:24000:16000").record()
    objects = {
        "frame": [project.commit_object(frame2.id, mask_in((96, 128), (40, 10, 50, 90)), "bar", provenance()),
                  project.commit_object(frame2.id, mask_in((96, 128), (5, 5, 60, 40)), "mass", provenance())],
        "mammogram": [project.commit_object(mammogram.id, mask_in((320, 256), (70, 120, 100, 150)), "mass",
                                            provenance(window=harder))],
        "photo": [project.commit_object(photo.id, mask_in((40, 50), (5, 5, 20, 30)), "mass", provenance())],
    }
    for image in (frame2, mammogram, photo):
        project.set_status(image.id, "done", "ann")
    yield project, made, objects
    project.close()


def exported_bytes(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and not p.is_symlink())


def test_exports_name_frames_carry_source_facts_and_no_patient(annotated, tmp_path):
    project, made, objects = annotated
    coco_out = tmp_path / "coco"
    export_project(project, coco_out, "coco", copy_images=True)
    coco = json.loads((coco_out / "annotations.json").read_text())
    images = {(i.get("source_file") or i["file_name"], i.get("frame")): i for i in coco["images"]}
    assert set(images) == {("frames.dcm", 2), ("mammogram.dcm", None), ("photo.png", None)}
    frame = images["frames.dcm", 2]
    assert frame["file_name"] == "frames_f2.png" and frame["attributes"]["frame"] == 2
    mammogram = images["mammogram.dcm", None]
    assert mammogram["attributes"]["modality"] == "MG" and "identifying" not in mammogram["attributes"]
    assert mammogram["attributes"]["pixel_spacing_mm"] == pytest.approx([0.07 / 1.1] * 2)
    # the copies of DICOM items are PNGs of their pixels, under the window their objects were made with
    copied = np.asarray(Image.open(coco_out / "images" / "mammogram.png"))
    with open_source(made["mammogram"].path, window="linear:24000:16000") as source:
        np.testing.assert_array_equal(copied, source.read())
    with open_source(made["frames"].path, frame=1) as source:
        np.testing.assert_array_equal(np.asarray(Image.open(coco_out / "images" / "frames_f2.png")), source.read())
    assert (coco_out / "images" / "photo.png").read_bytes() == (project.root / "photo.png").read_bytes()
    windows = [a["attributes"]["window"] for a in coco["annotations"]]
    assert {"key": "linear:24000:16000"}.items() <= next(w for w in windows if w).items()

    png_out, yolo_out = tmp_path / "png", tmp_path / "yolo"
    export_project(project, png_out, "png")
    assert sorted(p.name for p in (png_out / "semantic").iterdir()) == ["frames_f2.png", "mammogram.png", "photo.png"]
    instance = np.asarray(Image.open(png_out / "instance" / "frames_f2.png"))
    assert np.array_equal(instance == 2, objects["frame"][1].mask())
    export_project(project, yolo_out, "yolo", copy_images=True)
    assert sorted(p.name for p in (yolo_out / "images").iterdir()) == ["frames_f2.png", "mammogram.png", "photo.png"]
    assert sorted(p.name for p in (yolo_out / "labels").iterdir()) == ["frames_f2.txt", "mammogram.txt", "photo.txt"]

    report = (coco_out / "report.md").read_text()
    mm2 = objects["mammogram"][0].area * (0.07 / 1.1) ** 2
    assert f"{(objects['frame'][1].area + objects['photo'][0].area + objects['mammogram'][0].area) / 3:.0f}" in report
    assert f"{mm2:.3g} (n = 1)" in report
    uids = [str(pydicom.dcmread(m.path).get(k)) for m in made.values() for k in ("SOPInstanceUID", "StudyInstanceUID")]
    for out in (coco_out, png_out, yolo_out):
        written = exported_bytes(out)
        assert not [leak for leak in (*LEAKS, *uids) if leak.encode() in written], out

    kept = tmp_path / "kept"
    export_project(project, kept, "coco", keep_uids=True)
    attributes = {i["file_name"]: i["attributes"] for i in json.loads((kept / "annotations.json").read_text())["images"]}
    source = pydicom.dcmread(made["mammogram"].path)
    assert attributes["mammogram.dcm"]["identifying"] == {
        "study_instance_uid": source.StudyInstanceUID, "series_instance_uid": source.SeriesInstanceUID,
        "sop_instance_uid": source.SOPInstanceUID}
    assert not [leak for leak in LEAKS if leak.encode() in exported_bytes(kept)]


def test_dicom_seg_export_reads_back_references_its_source_and_equals_the_masks(annotated, tmp_path):
    project, made, objects = annotated
    labels = tmp_path / "labels.yaml"
    labels.write_text("classes:\n  mass:\n    type: [SCT, '4147007', Mass]\n")
    out = tmp_path / "seg"
    result = export_project(project, out, "dicom-seg", seg_labels=labels)
    assert sorted(p.name for p in out.glob("*.dcm")) == ["frames_f2.seg.dcm", "mammogram.seg.dcm"]
    assert result.skipped == ["photo.png: not a DICOM image (a DICOM SEG references a DICOM instance)"]
    assert "photo.png: not a DICOM image" in (out / "skipped.txt").read_text()
    for name, key, frame in (("frames_f2", "frame", 2), ("mammogram", "mammogram", None)):
        path = out / f"{name}.seg.dcm"
        source = pydicom.dcmread(made["frames" if key == "frame" else "mammogram"].path)
        seg = pydicom.dcmread(path)
        assert seg.Modality == "SEG" and seg.PatientID == source.PatientID  # the SEG carries the patient, as it must
        assert seg.StudyInstanceUID == source.StudyInstanceUID
        assert set(references(path)) == {(source.SOPInstanceUID, frame)}
        masks = [o.mask() for o in objects[key]]
        read = segments(path)
        assert sorted(read) == list(range(1, len(masks) + 1))
        for number, mask in enumerate(masks, start=1):
            np.testing.assert_array_equal(read[number], mask)
        for got, mask in zip(segread_masks(path, source.SOPInstanceUID, frame), masks):
            np.testing.assert_array_equal(got, mask)
        described = {int(d.SegmentNumber): d for d in seg.SegmentSequence}
        for number, obj in enumerate(objects[key], start=1):
            assert described[number].SegmentLabel == obj.label
            assert described[number].TrackingID == f"object {obj.id}"
            code = described[number].SegmentedPropertyTypeCodeSequence[0]
            assert (code.CodeValue, code.CodeMeaning) == (("4147007", "Mass") if obj.label == "mass" else ("85756007", "Tissue"))
        assert dciodvfy_errors(path) == []
    assert not [leak for leak in LEAKS if leak.encode() in (out / "report.md").read_bytes() + (out / "skipped.txt").read_bytes()]


def test_a_bad_labels_file_is_refused_before_anything_is_written(annotated, tmp_path):
    project, _, _ = annotated
    labels = tmp_path / "labels.json"
    labels.write_text('{"classes": {"mass": {"type": ["SCT"]}}}')
    with pytest.raises(ValueError, match="labels.json: class 'mass' type"):
        export_project(project, tmp_path / "out", "dicom-seg", seg_labels=labels)
    assert not (tmp_path / "out").exists()
