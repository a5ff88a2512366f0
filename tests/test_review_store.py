"""The team's store (no model, no page): the schema migration of proposals, imports and review
from the schema before it with objects intact; imports in one transaction; stored proposals
(found only for their file and settings, accepted with their scores, rejected, exported on
request); review decisions and statuses (reviewed, needs work first in its annotator's next
to do); exports without rejected objects; double annotation (two holders, one copy exported,
agreement); the team's figures recomputed from the rows."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from project_util import blob, insert_schema1_object, make_images, older_database, provenance
from team_util import disc, fake_set

from basam_ui.project import Project, ProjectError
from basam_ui.project import migrations
from basam_ui.project.export import export_project
from basam_ui.project.imports import AnnotationFileError, parse_annotations
from basam_ui.project.migrations import m005_review as review_migration
from basam_ui.project.review import ReviewError
from basam_ui.project.team_report import match_objects, team_figures

LABELS = ["lesion", "skin"]


@pytest.fixture
def project(tmp_path):
    make_images(tmp_path / "data")
    with Project.open(tmp_path / "data", labels=LABELS) as p:
        for image in p.images():
            p.open_image(image.id)
        yield p


# -- the migration ------------------------------------------------------------------------


def test_the_schema_before_is_upgraded_with_its_objects_intact(tmp_path):
    root = make_images(tmp_path / "p")
    db = older_database(root, review_migration.VERSION - 1)
    mask, made = blob(48, 64, 3), provenance(side="sam", iou_sam_basam=0.7, seconds=3.0)
    kept = insert_schema1_object(db, "a/first.png", mask, made)
    with Project.open(root) as project:
        assert migrations.version(project._conn) == migrations.SCHEMA_VERSION >= review_migration.VERSION
        image = project.image_by_path("a/first.png")
        [again] = project.objects(image.id)
        assert again.id == kept and np.array_equal(again.mask(), mask) and again.provenance == made
        assert again.provenance.source == "clicked" and again.review is None and image.copies == 1
        # what the old constraints refused: new statuses, an object without a side or model
        project.set_status(image.id, "needs_work", "rev")
        parsed = parse_annotations_from_masks({"a/first.png": [("skin", blob(48, 64, 5))]})
        assert project.import_objects(parsed).objects == 1
        assert project.image(image.id).status == "needs_work"
    with sqlite3.connect(db) as conn:  # every row still satisfies every constraint
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE images SET status = 'bogus'")


def test_a_database_made_now_has_the_same_tables_as_an_upgraded_one(tmp_path):
    def tables(db) -> dict:
        with sqlite3.connect(db) as conn:
            return {name: [row[1:3] for row in conn.execute(f"PRAGMA table_info({name})")]
                    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    fresh, old = make_images(tmp_path / "fresh"), make_images(tmp_path / "old")
    Project.open(fresh).close()
    older_database(old, review_migration.VERSION - 1)
    Project.open(old).close()
    assert tables(fresh / ".basam-ui" / "project.sqlite") == tables(old / ".basam-ui" / "project.sqlite")


# -- import -------------------------------------------------------------------------------


def parse_annotations_from_masks(masks: dict) -> object:
    """A ParsedImport of {path: [(class, mask)]} (as a parser makes it)."""
    from basam_ui.project.imports import ParsedImport

    parsed = ParsedImport("coco")
    for path, objects in masks.items():
        for k, (label, mask) in enumerate(objects):
            parsed.add(path, label, mask, {"id": k, "score": 0.5}, f"file.json: annotation {k}")
    return parsed


def test_import_adds_objects_in_one_transaction_and_leaves_statuses(project, tmp_path, monkeypatch):
    first = project.images()[0]
    project.set_status(first.id, "done", "ann")
    parsed = parse_annotations_from_masks({"a/first.png": [("tumour", blob(48, 64, 1)), ("skin", blob(48, 64, 2))],
                                           "b/third.png": [("tumour", blob(50, 70, 3))]})
    result = project.import_objects(parsed, annotator="importer")
    assert (result.objects, result.images, result.classes_added) == (3, 2, ["tumour"])
    assert project.labels() == [*LABELS, "tumour"]
    objects = project.objects(first.id)
    assert [o.label for o in objects] == ["tumour", "skin"] and project.image(first.id).status == "done"
    assert project.image_by_path("b/third.png").status == "todo"  # statuses left alone
    p = objects[0].provenance
    assert (p.source, p.side, p.model_type, p.input_size, p.annotator) == ("imported", None, None, None, "importer")
    assert p.prompts == {"points": [], "labels": [], "box": None} and p.import_attributes == {"id": 0, "score": 0.5}
    assert p.origin == "file.json: annotation 0" and np.array_equal(objects[0].mask(), blob(48, 64, 1))
    # a failure part way leaves nothing of the import
    before = len(project.all_objects())
    calls = {"n": 0}
    import basam_ui.project.importing as importing

    original = importing.insert_object

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise sqlite3.IntegrityError("disk trouble")
        return original(*args, **kwargs)

    monkeypatch.setattr(importing, "insert_object", failing)
    with pytest.raises(sqlite3.IntegrityError):
        project.import_objects(parse_annotations_from_masks({"fourth.png": [("new", blob(32, 30, 4))] * 2}))
    assert len(project.all_objects()) == before and "new" not in project.labels()


def test_a_malformed_file_imports_nothing_and_says_where(project, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "a/first.png", "width": 64, "height": 48}],
                               "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": "x"}],
                               "categories": [{"id": 1, "name": "lesion"}]}))
    with pytest.raises(AnnotationFileError, match="annotation 7"):
        parse_annotations("coco", bad, project.image_sizes())
    assert project.all_objects() == []


# -- proposals ----------------------------------------------------------------------------


def test_proposals_are_stored_per_file_and_settings_and_accepted_with_their_scores(project, tmp_path):
    image = project.images()[0]
    stored = project.store_proposals(image.id, image.sha256, fake_set(48, 64))
    assert project.store_proposals(image.id, image.sha256, fake_set(48, 64)).id == stored.id  # kept once
    assert project.proposal_set(image.id, "k1").id == stored.id
    assert project.proposal_set(image.id, "other settings") is None
    assert project.proposal_set(image.id, "k1", sha256="0" * 64) is None  # another file
    pending = project.proposals(stored.id, "pending")
    assert [p.rank for p in pending] == [0, 1, 2] and pending[0].predicted_iou == 0.97
    obj = project.accept_proposal(pending[1].id, "skin", "ann", seconds=2.0)
    p = obj.provenance
    assert (p.source, p.side, p.model_type, p.checkpoint_sha256, p.input_size, p.precision) == (
        "proposal", "basam", "vit_t", "ab" * 8, 1024, "bf16")
    assert (p.predicted_iou, p.stability_score, p.proposal_id, p.seconds) == (0.91, 0.96, pending[1].id, 2.0)
    assert p.prompts == {"points": [[32.0, 24.0]], "labels": [1], "box": None}
    assert np.array_equal(obj.mask(), disc(48, 64, 32, 24, 6)) and project.image(image.id).status == "in_progress"
    with pytest.raises(ProjectError, match="already object"):
        project.accept_proposal(pending[1].id, "skin", "ann")
    assert project.reject_proposal(pending[2].id, "ann").status == "rejected"
    assert project.proposal_states(stored.id) == {pending[0].id: "pending", pending[1].id: "accepted",
                                                  pending[2].id: "rejected"}
    # accept all above a score: only pending ones at or above it
    accepted = project.accept_proposals(stored.id, 0.95, "lesion", "ann")
    assert [o.provenance.proposal_id for o in accepted] == [pending[0].id]
    vanilla = project.store_proposals(image.id, image.sha256, fake_set(48, 64, key="k2", nsf=False))
    assert project.accept_proposal(project.proposals(vanilla.id)[0].id, "lesion", "ann").provenance.side == "sam"


def test_export_adds_pending_proposals_on_request(project, tmp_path):
    image = project.images()[0]
    stored = project.store_proposals(image.id, image.sha256, fake_set(48, 64))
    first = project.proposals(stored.id)[0]
    project.accept_proposal(first.id, "lesion", "ann")
    project.set_status(image.id, "done", "ann")
    plain = export_project(project, tmp_path / "plain", "coco")
    assert plain.objects == 1
    out = export_project(project, tmp_path / "with", "coco", include_proposals=True)
    coco = json.loads((tmp_path / "with" / "annotations.json").read_text())
    sources = [a["attributes"]["source"] for a in coco["annotations"]]
    assert sources == ["proposal", "proposal", "proposal"] and out.objects == 3  # 2 pending under 1 accepted
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert [names[a["category_id"]] for a in coco["annotations"]] == ["proposal", "proposal", "lesion"]
    assert len({a["id"] for a in coco["annotations"]}) == 3
    assert out.figures["objects"] == 1  # the report counts objects, not proposals


# -- review -------------------------------------------------------------------------------


def annotate(project, path: str, annotator: str, seeds: list[int], label: str = "lesion") -> list:
    image = project.image_by_path(path)
    made = [project.commit_object(image.id, blob(image.height, image.width, s), label,
                                  provenance(annotator=annotator, seconds=float(s))) for s in seeds]
    project.set_status(image.id, "done", annotator)
    return made


def test_review_accepts_rejects_and_sends_work_back_first(project, tmp_path):
    project.set_reviewers(["rita"])
    assert project.reviewers() == ["rita"]
    a1, a2 = annotate(project, "a/first.png", "ann", [1, 2])
    [b1] = annotate(project, "b/third.png", "bob", [3], "skin")
    annotate(project, "fourth.png", "rita", [4])  # the reviewer's own image: not hers to review
    queue = [project.next_review("rita", "h-rita", claim=False).path]
    assert queue == ["a/first.png"] and [i.path for i in project.to_review("rita")] == ["a/first.png", "b/third.png"]
    with pytest.raises(ReviewError, match="few words"):
        project.review_object(a1.id, "rejected", "rita")
    with pytest.raises(ReviewError, match="your own"):
        project.review_object(a1.id, "accepted", "ann")
    first = project.image_by_path("a/first.png")
    assert project.review_object(a1.id, "accepted", "rita").status == "done"  # one left
    assert project.review_object(a2.id, "rejected", "rita", "  misses   the edge ").status == "needs_work"
    assert project.object(a2.id).review_reason == "misses the edge" and project.object(a2.id).reviewed_by == "rita"
    assert project.review_object(b1.id, "accepted", "rita").status == "reviewed"
    # needs work: first in its annotator's next to do, not handed to others
    project.set_status(project.image_by_path("a/second.jpg").id, "todo")
    assert project.next_todo("h-ann", "ann", claim=False).path == "a/first.png"
    assert project.next_todo("h-bob", "bob", claim=False).path == "a/second.jpg"
    # the annotator replaces the rejected object and marks the image done: back to review
    fixed = project.commit_object(first.id, blob(48, 64, 9), "lesion", provenance(annotator="ann"), replaces=a2.id)
    project.set_status(first.id, "done", "ann")
    assert project.next_review("rita", "h-rita", claim=False).path == "a/first.png"
    assert project.review_object(fixed.id, "accepted", "rita").status == "reviewed"
    # a rejected object is kept (superseded here) with its reason
    assert project._conn.execute("SELECT review, review_reason FROM objects WHERE id = ?", (a2.id,)).fetchone() == (
        "rejected", "misses the edge")
    # an image with no objects is accepted as it is
    empty = project.image_by_path("a/second.jpg")
    project.set_status(empty.id, "done", "bob")
    assert project.accept_remaining(empty.id, "rita").status == "reviewed"


def test_exports_leave_rejected_objects_out_and_take_reviewed_images(project, tmp_path):
    a1, a2 = annotate(project, "a/first.png", "ann", [1, 2])
    annotate(project, "b/third.png", "bob", [3])
    project.review_object(a1.id, "accepted", "rita")
    project.review_object(a2.id, "rejected", "rita", "wrong class")  # -> needs work: not exported by default
    assert export_project(project, tmp_path / "default", "coco").objects == 1  # b/third.png (done)
    project.review_object(a2.id, "accepted", "rita")  # changed her mind: reviewed
    project.review_object(a2.id, "rejected", "rita", "no, wrong class")
    project.set_status(project.image_by_path("a/first.png").id, "done", "ann")  # the annotator disagrees
    assert export_project(project, tmp_path / "a", "coco").objects == 2  # a1 and b's; a2 rejected
    with_rejected = export_project(project, tmp_path / "b", "coco", include_rejected=True)
    assert with_rejected.objects == 3
    coco = json.loads((tmp_path / "b" / "annotations.json").read_text())
    assert sorted(a["attributes"]["review"] or "-" for a in coco["annotations"]) == ["-", "accepted", "rejected"]
    project.review_object(a2.id, "accepted", "rita")
    reviewed = export_project(project, tmp_path / "c", "coco", reviewed_only=True)
    assert (reviewed.images, reviewed.objects) == (1, 2)


def test_double_annotation_two_holders_one_copy_exported_and_agreement(project, tmp_path):
    assert project.set_overlap(0.5) == 2 and project.set_overlap(0.5) == 2  # the same images again
    double = [i for i in project.images() if i.copies == 2]
    target = double[0]
    h, w = target.height, target.width
    first, _ = project.open_image(target.id, "h-ann", "ann")
    assert project.open_image(target.id, "h-bob", "bob")[1] is None  # a second holder is welcome
    assert project.open_image(target.id, "h-cat", "cat")[1] in ("ann", "bob")  # a third is not
    a = [project.commit_object(target.id, disc(h, w, 20, 20, 8), "lesion", provenance(annotator="ann")),
         project.commit_object(target.id, disc(h, w, 45, 25, 6), "skin", provenance(annotator="ann"))]
    b = [project.commit_object(target.id, disc(h, w, 21, 20, 8), "lesion", provenance(annotator="bob")),
         project.commit_object(target.id, disc(h, w, 5, 5, 3), "lesion", provenance(annotator="bob"))]
    project.release("h-cat")
    project.set_status(target.id, "done", "ann", holder="h-ann")
    assert project.image(target.id).status == "in_progress"  # bob's copy is not done
    assert project.next_todo("h-x", "ann", claim=False) is None or project.next_todo("h-x", "ann", claim=False).id != target.id
    project.release("h-ann")
    project.release("h-bob")
    others = [project.next_todo(None, "cat", claim=False, after=i.id) for i in project.images()]
    assert target.id not in [o.id for o in others if o]  # two annotators already
    project.set_status(target.id, "done", "bob")
    assert project.image(target.id).status == "done" and list(project.marks(target.id)) == ["ann", "bob"]
    out = export_project(project, tmp_path / "e", "coco")
    coco = json.loads((tmp_path / "e" / "annotations.json").read_text())
    assert sorted(x["id"] for x in coco["annotations"]) == sorted(o.id for o in a)  # ann's copy (done first)
    figures = team_figures(project)["agreement"]
    pairs = match_objects(a, b)
    assert [(x.id, y.id) for x, y, _ in pairs] == [(a[0].id, b[0].id)]
    iou = (disc(h, w, 20, 20, 8) & disc(h, w, 21, 20, 8)).sum() / (disc(h, w, 20, 20, 8) | disc(h, w, 21, 20, 8)).sum()
    assert figures["images"] == 1 and figures["pairs"] == 1 and figures["mean_iou"] == pytest.approx(iou)
    assert figures["per_class"]["lesion"] == {"pairs": 1, "mean_iou": pytest.approx(iou), "unmatched": 1}
    assert figures["per_class"]["skin"]["unmatched"] == 1 and out.objects == 2


def test_team_figures_recomputed_from_the_rows(project, tmp_path):
    made = annotate(project, "a/first.png", "ann", [1, 2, 3]) + annotate(project, "b/third.png", "bob", [4], "skin")
    image = project.image_by_path("fourth.png")
    stored = project.store_proposals(image.id, image.sha256, fake_set(32, 30))
    ranks = project.proposals(stored.id)
    accepted = project.accept_proposal(ranks[0].id, "lesion", "cat", seconds=1.0)
    project.reject_proposal(ranks[2].id, "cat")
    project.set_status(image.id, "done", "cat")
    decisions = {made[0].id: "accepted", made[1].id: "rejected", made[2].id: "accepted", made[3].id: "accepted",
                 accepted.id: "rejected"}
    for object_id, decision in decisions.items():
        project.review_object(object_id, decision, "rita", "no" if decision == "rejected" else "")
    figures = team_figures(project)
    rows = project._conn.execute(
        "SELECT o.annotator, l.name, o.side, o.input_size, o.review FROM objects o JOIN labels l ON l.id = o.label_id "
        "WHERE o.review IS NOT NULL").fetchall()
    for key, column in (("per_annotator", 0), ("per_class", 1), ("per_size", 3)):
        groups = {row[column] for row in rows}
        assert set(figures["acceptance"][key]) == groups
        for group in groups:
            mine = [row for row in rows if row[column] == group]
            assert figures["acceptance"][key][group]["rate"] == pytest.approx(
                sum(row[4] == "accepted" for row in mine) / len(mine))
    assert figures["acceptance"]["per_annotator"]["ann"] == {"accepted": 2, "rejected": 1, "rate": pytest.approx(2 / 3)}
    assert figures["acceptance"]["overall"]["rate"] == pytest.approx(3 / 5)
    assert figures["acceptance"]["per_side"]["basam"]["rate"] == pytest.approx(3 / 5)
    bands = {b["band"]: b for b in figures["proposals"]}
    assert bands["0.96–1.00"]["accepted"] == 1 and bands["0.88–0.92"] == {
        "band": "0.88–0.92", "low": 0.88, "high": 0.92, "accepted": 0, "rejected": 1, "pending": 1, "acceptance": 0.0}
    times = figures["time_by_source"]
    assert times["proposal"] == {"objects": 1, "timed": 1, "mean": 1.0, "median": 1.0}
    assert times["clicked"]["mean"] == pytest.approx(np.mean([1, 2, 3, 4])) and times["imported"]["objects"] == 0
