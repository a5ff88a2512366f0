"""Files that can't be read are a flag with a reason, never an exception: in the store, in the
annotate page's events, in exports; the database upgrades from schema 1; a change that can't be
written (a full disk) is refused whole, in one sentence."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
from bad_files import HTML_NAME, NON_UTF8_NAME, READABLE, UNREADABLE, make_bad_folder, photo
from PIL import Image
from project_util import blob, database_at, legacy_object, make_images, provenance

from basam_ui.project import Project, ProjectError
from basam_ui.project import migrations
from basam_ui.project.export import export_project


@pytest.fixture()
def bad(tmp_path):
    return make_bad_folder(tmp_path / "scans")


def _open_all(project: Project) -> dict[str, object]:
    return {image.path: project.open_image(image.id)[0] for image in project.images()}


def test_every_bad_file_is_listed_and_flagged_with_its_reason_when_opened(bad):
    with Project.open(bad) as project:
        assert sorted(image.path for image in project.images()) == sorted([*UNREADABLE, *READABLE])
        opened = _open_all(project)  # nothing raises
        header_failures = {name: why for name, why in UNREADABLE.items() if name != "cut.jpg"}
        for name, why in header_failures.items():
            assert opened[name].unreadable and why in opened[name].unreadable, (name, opened[name].unreadable)
            assert not opened[name].missing and opened[name].status == "todo"  # the status is kept
        for name in READABLE:
            assert opened[name].unreadable is None and opened[name].width, name
        assert opened["rotated.jpg"].width == 200 and opened["rotated.jpg"].height == 300  # upright
        assert opened["cut.jpg"].unreadable is None  # its header reads: only decoding it tells
        assert project.progress().unreadable == len(header_failures)


def test_next_to_do_skips_unreadable_images_and_a_fixed_file_clears_the_flag(bad):
    with Project.open(bad) as project:
        _open_all(project)
        handed_out, after = [], None
        while (found := project.next_todo("me", "ana", after=after, claim=False)) is not None and found.path not in handed_out:
            handed_out.append(found.path)
            after = found.id
        assert set(handed_out) == {*READABLE, "cut.jpg"}
        broken = project.image_by_path("broken.jpg")
        Image.fromarray(photo()).save(project.file_path(broken), "JPEG")
        fixed, _ = project.open_image(broken.id)
        assert fixed.unreadable is None and fixed.width == 320
        assert project.next_todo("me", "ana", after=project.image_by_path("bomb.png").id, claim=False).path == "broken.jpg"


def test_a_name_that_is_not_utf8_is_annotated_like_any_file(bad, tmp_path):
    with Project.open(bad) as project:
        image, _ = project.open_image(project.image_by_path(NON_UTF8_NAME).id)
        assert image.unreadable is None and (image.width, image.height) == (320, 240)
        project.commit_object(image.id, blob(240, 320, 1), "object", provenance())
        project.set_status(image.id, "done", "ana")
        result = export_project(project, tmp_path / "out", "yolo", copy_images=True)
    assert result.objects == 1
    assert (tmp_path / "out" / "labels" / os.fsdecode(b"caf\xe9.txt")).is_file()
    assert (tmp_path / "out" / "images" / NON_UTF8_NAME).is_file()


def test_a_file_that_cannot_be_opened_for_permission_is_flagged(bad, monkeypatch):
    from basam_ui.project import files

    real = files.open_source

    def denied(path, *args, **kwargs):
        if str(path).endswith("good-1.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(files, "open_source", denied)  # running as root, chmod 000 would not stop a read
    with Project.open(bad) as project:
        image, _ = project.open_image(project.image_by_path("good-1.png").id)
    assert image.unreadable == "no permission to read the file"


def test_files_replaced_or_deleted_between_scan_and_open(tmp_path):
    root = make_images(tmp_path / "p")
    with Project.open(root) as project:
        first, second = project.images()[:2]
        project.open_image(first.id)
        project.commit_object(first.id, blob(48, 64, 0), "object", provenance())
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(project.file_path(first))  # replaced after annotating
        (project.file_path(second)).unlink()  # deleted after the scan
        replaced, _ = project.open_image(first.id)
        deleted, _ = project.open_image(second.id)
        assert replaced.changed and not replaced.unreadable
        assert deleted.missing and not deleted.unreadable


def test_the_export_lists_unreadable_images_and_keeps_going(bad, tmp_path):
    with Project.open(bad) as project:
        _open_all(project)
        good = project.image_by_path("good-1.png")
        project.commit_object(good.id, blob(240, 320, 2), "object", provenance())
        project.set_status(good.id, "done", "ana")
        project.set_status(project.image_by_path("broken.jpg").id, "done", "ana")
        result = export_project(project, tmp_path / "out", "coco")
    listed = (tmp_path / "out" / "unreadable.txt").read_text().splitlines()
    assert result.objects == 1 and any(line.startswith("broken.jpg: ") for line in listed)
    assert {line.split(": ")[0] for line in listed} >= {"empty.jpg", "text.png", "folder.jpg", "dangling.jpg"}
    assert "unreadable" in (tmp_path / "out" / "report.md").read_text()


def test_a_version_1_database_is_upgraded_with_its_objects_intact(tmp_path):
    root = make_images(tmp_path / "p")
    db = database_at(tmp_path / "old.sqlite", 1)  # as a basam-ui of schema 1 left it
    mask = blob(48, 64, 3)
    with sqlite3.connect(db) as conn:
        image_id = conn.execute("INSERT INTO images (path, width, height) VALUES ('a/first.png', 64, 48)").lastrowid
        kept = legacy_object(conn, image_id, mask)
    with Project.open(root, db) as project:
        assert migrations.version(project._conn) == migrations.SCHEMA_VERSION >= 2
        [again] = project.objects(image_id)
        assert again.id == kept and np.array_equal(again.mask(), mask) and again.provenance == provenance()
        assert project.image(image_id).unreadable is None


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    root = make_images(tmp_path / "p")
    db = database_at(tmp_path / "old.sqlite", 1)

    def broken(conn):
        conn.execute("ALTER TABLE images ADD COLUMN unreadable TEXT")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(migrations.MIGRATIONS[2], "upgrade", broken)
    with pytest.raises(RuntimeError, match="migration bug"):
        Project.open(root, db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "unreadable" not in [row[1] for row in conn.execute("PRAGMA table_info(images)")]


def test_a_full_disk_refuses_the_commit_in_one_sentence_and_loses_nothing(tmp_path):
    root = make_images(tmp_path / "p")
    with Project.open(root) as project:
        image, _ = project.open_image(project.images()[0].id)
        first = project.commit_object(image.id, blob(48, 64, 4), "object", provenance())
        pages = project._conn.execute("PRAGMA page_count").fetchone()[0]
        project._conn.execute(f"PRAGMA max_page_count={pages}")  # the file may not grow: as on a full disk
        big = np.random.default_rng(0).random((48, 64)) > 0.5  # a mask whose RLE needs new pages
        with pytest.raises(ProjectError, match="not saved: the disk is full") as refused:
            for k in range(200):
                project.commit_object(image.id, big ^ (np.arange(64) == k % 64), "object", provenance())
        assert "\n" not in str(refused.value)
        project._conn.execute("PRAGMA max_page_count=1073741823")
        ids = [o.id for o in project.objects(image.id)]
        assert ids[0] == first.id
        committed = len(ids)
    with Project.open(root) as project:  # what was saved stays saved, the refused one is not there half
        assert [o.id for o in project.objects(image.id)] == ids and len(ids) == committed


def test_the_html_name_is_stored_as_its_characters(bad):
    with Project.open(bad) as project:
        assert project.image_by_path(HTML_NAME).path == HTML_NAME


# -- the annotate page's events on the bad folder (random vit_t, S=256) -----------------------


def test_the_page_shows_an_unreadable_image_with_its_reason_and_moves_on(bad, engine):
    from basam_ui.web.annotate import events as annotate
    from basam_ui.web.annotate import view as annotate_view
    from basam_ui.web.common.session import AppError

    with Project.open(bad) as project:
        state = annotate.first_image(engine, project, annotate.start(None, "ana"))
        assert annotate.readable(state)  # a fresh session lands on a readable image, whatever comes first
        shown = {}
        for image in project.images():  # Prev/Next and clicks in the list open each in turn
            state = annotate.open_image(engine, project, state, image.id)
            shown[image.path] = state
        for name in UNREADABLE:
            assert not annotate.readable(shown[name]) and "can't be read" in shown[name].note, name
            text = annotate_view.status_text(project, shown[name])
            assert "can't be read" in text and "No image open" not in text
        assert project.image_by_path("cut.jpg").unreadable and project.image_by_path("bomb.png").unreadable
        for name in READABLE:
            assert annotate.readable(shown[name]), name
        # Skip works on an unreadable image; the list and the progress line flag them
        state = annotate.open_image(engine, project, state, project.image_by_path("cut.jpg").id)
        state = annotate.mark(engine, project, state, "skipped")
        assert project.image_by_path("cut.jpg").status == "skipped" and annotate.readable(state)
        rows = {row[0].removeprefix(annotate_view.OPEN_MARK): row[1] for row in annotate_view.image_rows(project, state)}
        assert "unreadable" in rows["broken.jpg"] and "unreadable" not in rows["good-1.png"]
        assert f"{len(UNREADABLE)} unreadable" in annotate_view.progress_text(project)
        # every Next to do hands out a readable image
        seen = set()
        for _ in range(len(READABLE) + 2):
            try:
                state = annotate.go(engine, project, state, "todo")
            except AppError:
                break
            assert annotate.readable(state)
            seen.add(project.image(state.image_id).path)
        assert seen <= set(READABLE)
        # the HTML name shows as its characters, never as markup
        state = annotate.open_image(engine, project, state, project.image_by_path(HTML_NAME).id)
        status = annotate_view.status_text(project, state)
        assert "<img" not in status and "&lt;img src=x onerror=alert(1)&gt;" in status


def test_a_commit_needs_the_annotators_name(bad, engine):
    from basam_ui.web.annotate import editing
    from basam_ui.web.annotate import events as annotate
    from basam_ui.web.common.session import AppError, Settings

    settings = Settings("vit_t", 256, True, True, 0.1, False)
    with Project.open(bad) as project:
        state = annotate.encode(engine, annotate.first_image(engine, project, annotate.start(None, "")), settings)
        value = {"image": dict(state.session.canvas_image), "rev": 1, "negative": False,
                 "points": [{"x": 100, "y": 120, "label": 1, "i": 1}], "boxes": []}  # fmt: skip
        state = editing.set_prompts(engine, state, value, settings)
        with pytest.raises(AppError, match="type your name"):
            editing.commit(engine, project, state, value, "object", settings)
        assert project.all_objects() == []
        named = annotate.start(state, "bo")  # the page passes the field's text with every event
        editing.commit(engine, project, named, value, "object", settings)
        assert [o.provenance.annotator for o in project.all_objects()] == ["bo"]
