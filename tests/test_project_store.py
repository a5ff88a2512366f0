"""The project store: scanning, classes, objects (commit, relabel, delete, reopen, undo),
statuses, navigation, claims between annotators, changed and missing files."""

from __future__ import annotations

import numpy as np
import pytest
from project_util import blob, make_images, provenance

from basam_ui.project import ImageChangedError, Project, Provenance, default_db_path
from basam_ui.project.scan import scan_folder


@pytest.fixture
def project(tmp_path):
    make_images(tmp_path / "data")
    (tmp_path / "data" / "notes.txt").write_text("not an image")
    with Project.open(tmp_path / "data", labels=["lesion", "skin"]) as p:
        yield p


def test_scan_lists_images_sorted_and_skips_the_rest(tmp_path):
    root = make_images(tmp_path)
    (root / "notes.txt").write_text("x")
    (root / "a" / "table.csv").write_text("1,2")
    (root / "noext").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)  # PNG signature, no extension
    (root / ".hidden.png").write_bytes(b"")
    make_images(root / "export", {"semantic/first.png": (4, 4)})
    (root / "export" / ".basam-ui-export").touch()  # an export written inside the folder
    result = scan_folder(root)
    assert result.images == ["a/first.png", "a/second.jpg", "b/third.png", "fourth.png", "noext"]
    assert result.skipped == ["a/table.csv", "notes.txt"]


def test_open_creates_the_database_with_classes(tmp_path):
    make_images(tmp_path)
    with Project.open(tmp_path) as p:
        assert p.db_path == default_db_path(tmp_path) and p.db_path.is_file()
        assert p.labels() == ["object"]
        assert [im.path for im in p.images()] == ["a/first.png", "a/second.jpg", "b/third.png", "fourth.png"]
        assert p.progress().total == 4 and p.progress().todo == 4
    with Project.open(tmp_path, labels=["object", "lesion"]) as p:  # reopened: classes added, images kept
        assert p.labels() == ["object", "lesion"] and len(p.images()) == 4
        assert p.add_labels(["hair"]) == ["object", "lesion", "hair"]


def test_commit_relabel_delete(project):
    image = project.images()[0]
    image, other = project.open_image(image.id, holder="s1", annotator="ann")
    assert other is None and (image.height, image.width) == (48, 64) and image.sha256
    first, second = blob(48, 64, 1), blob(48, 64, 2)
    a = project.commit_object(image.id, first, "lesion", provenance(brush_edits=2, seconds=4.5))
    b = project.commit_object(image.id, second, "skin", provenance(side="sam", iou_sam_basam=0.8))
    assert [o.id for o in project.objects(image.id)] == [a.id, b.id] and b.layer > a.layer
    assert np.array_equal(project.object(a.id).mask(), first)
    assert a.provenance.brushed and a.provenance.brush_edits == 2 and a.provenance.seconds == 4.5
    assert b.provenance.side == "sam" and b.provenance.iou_sam_basam == 0.8
    assert a.provenance.checkpoint_sha256 == "ab" * 8
    assert project.image(image.id).status == "in_progress" and project.image(image.id).object_count == 2
    assert project.relabel(a.id, "skin").label == "skin"
    with pytest.raises(ValueError, match="unknown class"):
        project.relabel(a.id, "tumour")
    project.delete_object(a.id)
    assert [o.id for o in project.objects(image.id)] == [b.id]
    with pytest.raises(KeyError):
        project.delete_object(a.id)
    with pytest.raises(ValueError, match="mask is"):
        project.commit_object(image.id, blob(40, 64, 3), "skin", provenance())
    with pytest.raises(ValueError, match="empty"):
        project.commit_object(image.id, np.zeros((48, 64), bool), "skin", provenance())


def test_reopen_and_replace_then_undo(project):
    image = project.images()[1]
    project.open_image(image.id)
    h, w = 40, 56
    a = project.commit_object(image.id, blob(h, w, 1), "lesion", provenance())
    b = project.commit_object(image.id, blob(h, w, 2), "lesion", provenance())
    prompts, mask = project.reopen(a.id)
    assert prompts == {"points": [[5.0, 6.0]], "labels": [1], "box": None} and np.array_equal(mask, blob(h, w, 1))
    refined = blob(h, w, 3)
    a2 = project.commit_object(image.id, refined, "skin", provenance(prompts={"points": [], "labels": [],
                                                                              "box": [1, 2, 30, 20]}), replaces=a.id)
    objects = project.objects(image.id)
    assert [o.id for o in objects] == [a2.id, b.id]  # the replacement keeps the old object's layer
    assert a2.layer == a.layer and a2.replaces == a.id and np.array_equal(objects[0].mask(), refined)
    with pytest.raises(ValueError, match="not a live object"):
        project.commit_object(image.id, refined, "skin", provenance(), replaces=a.id)

    assert project.undo_last_commit(image.id) == a2.id  # the replaced object comes back
    assert [(o.id, o.label) for o in project.objects(image.id)] == [(a.id, "lesion"), (b.id, "lesion")]
    assert project.undo_last_commit(image.id) == b.id
    assert project.undo_last_commit(image.id, annotator="someone else") is None
    assert project.undo_last_commit(image.id) == a.id
    assert project.undo_last_commit(image.id) is None and project.objects(image.id) == []


def test_status_navigation_and_progress(project):
    images = project.images()
    assert project.neighbour(images[0].id, 1).id == images[1].id
    assert project.neighbour(images[0].id, -1) is None
    assert project.neighbour(images[3].id, -2).id == images[1].id
    nxt = project.set_status(images[0].id, "done", annotator="ann", holder="s1")
    assert nxt.id == images[1].id  # done hands out the next image to do, claimed
    assert project.claimed_by_others("s2") == {images[1].id: "ann"}
    assert project.set_status(images[2].id, "skipped", annotator="ann") is None
    with pytest.raises(ValueError):
        project.set_status(images[1].id, "finished")
    record = project.image(images[0].id)
    assert record.status == "done" and record.status_by == "ann" and record.status_at
    progress = project.progress()
    assert (progress.total, progress.done, progress.skipped, progress.todo) == (4, 1, 1, 2)
    # next to do after the last image wraps round and skips done and skipped images
    assert project.next_todo("s1", "ann", after=images[3].id).id == images[1].id


def test_two_annotators_get_different_images(tmp_path):
    make_images(tmp_path)
    now = [1000.0]
    with Project.open(tmp_path, clock=lambda: now[0], claim_ttl=900) as p:
        first = p.next_todo("alice-tab", "alice")
        ahead = p.next_todo("alice-tab", "alice", after=first.id, claim=False)  # to encode ahead
        second = p.next_todo("bob-tab", "bob")
        assert first.id != second.id and ahead.id == second.id  # looking ahead claimed nothing
        assert p.claimed_by_others("bob-tab") == {first.id: "alice"}
        p.open_image(first.id, "alice-tab", "alice")
        _, other = p.open_image(first.id, "bob-tab", "bob")  # looking at alice's image: not claimed
        assert other == "alice"
        a = p.commit_object(first.id, blob(first_h := p.image(first.id).height, p.image(first.id).width, 1),
                            "object", provenance(annotator="alice"), holder="alice-tab")
        p.open_image(second.id, "bob-tab", "bob")
        b = p.commit_object(second.id, blob(p.image(second.id).height, p.image(second.id).width, 2), "object",
                            provenance(annotator="bob"), holder="bob-tab")
        third = p.set_status(second.id, "done", "bob", holder="bob-tab")
        assert third.id not in (first.id, second.id)
        assert {p.object(a.id).provenance.annotator, p.object(b.id).provenance.annotator} == {"alice", "bob"}
        assert first_h and p.next_todo("carol-tab", "carol").id not in (first.id, third.id)
        assert p.next_todo("dave-tab", "dave") is None  # every image left is held by someone
        # alice and carol go idle past the time-out, bob stays: alice's image is handed out again
        now[0] += 901
        p.touch("bob-tab")
        assert p.next_todo("dave-tab", "dave").id == first.id


def test_concurrent_next_todo_from_two_connections(tmp_path):
    """Two servers (two connections) asking at once still get different images."""
    import threading

    make_images(tmp_path)
    Project.open(tmp_path).close()
    got, barrier = {}, threading.Barrier(2)

    def ask(name):
        with Project.open(tmp_path) as p:
            barrier.wait()
            got[name] = p.next_todo(f"{name}-tab", name).id

    threads = [threading.Thread(target=ask, args=(n,)) for n in ("alice", "bob")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(got.values())) == 2


def test_changed_file_is_flagged_and_blocks_commits(project):
    image = project.images()[0]
    project.open_image(image.id)
    obj = project.commit_object(image.id, blob(48, 64, 1), "lesion", provenance())
    make_images(project.root, {image.path: (48, 64)}, seed=7)  # the file is replaced
    changed, _ = project.open_image(image.id)
    assert changed.changed and project.progress().changed == 1
    with pytest.raises(ImageChangedError, match="changed"):
        project.commit_object(image.id, blob(48, 64, 2), "lesion", provenance())
    kept = project.resolve_changed(image.id, keep_objects=True)
    assert not kept.changed and [o.id for o in project.objects(image.id)] == [obj.id]
    make_images(project.root, {image.path: (48, 64)}, seed=8)
    project.open_image(image.id)
    assert not project.resolve_changed(image.id, keep_objects=False).changed
    assert project.objects(image.id) == []


def test_changed_file_without_objects_is_just_rehashed(project):
    image = project.images()[0]
    first, _ = project.open_image(image.id)
    make_images(project.root, {image.path: (48, 64)}, seed=9)
    again, _ = project.open_image(image.id)
    assert not again.changed and again.sha256 != first.sha256


def test_missing_files(project):
    image = project.images()[2]
    project.open_image(image.id)
    project.commit_object(image.id, blob(50, 70, 1), "skin", provenance())
    (project.root / image.path).unlink()
    gone, _ = project.open_image(image.id)
    assert gone.missing and gone.object_count == 1  # its objects are kept
    assert project.sync(scan_folder(project.root)) == (0, 1)
    assert project.next_todo(None, after=None).id != image.id


def test_provenance_is_checked():
    with pytest.raises(ValueError, match="side"):
        provenance(side="both")
    with pytest.raises(ValueError, match="beta"):
        provenance(beta=-1)
    with pytest.raises(ValueError, match="label"):
        provenance(prompts={"points": [[1, 2]], "labels": []})
    with pytest.raises(ValueError, match="brush_edits"):
        provenance(brush_edits=-1)
    p = Provenance("sam", "vit_b", None, 2048, False, False, 0.0, prompts={"box": [0, 0, 5, 5]})
    assert p.prompt_count == 1 and not p.brushed and p.as_dict()["prompts"]["points"] == []


def test_unreadable_image_is_flagged_when_opened_not_raised(project):
    image = project.images()[0]
    (project.root / image.path).write_bytes(b"not really a png")
    opened, _ = project.open_image(image.id)  # unreadable is a flag, not an exception (issue 17)
    assert opened.unreadable and "not a readable image" in opened.unreadable and not opened.missing


def test_the_project_package_needs_no_gradio_or_torch():
    import subprocess
    import sys

    code = ("import sys, basam_ui.project, basam_ui.project.export, basam_ui.project.report; "
            "print(sorted(m for m in ('torch', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
