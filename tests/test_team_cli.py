"""The team's commands: `basam-ui propose` (sets stored under the key the page looks up, a re-run
resumes, Ctrl-C keeps the finished sets, `--ray` stores what a local run stores), `basam-ui
import` (one transaction: a malformed file imports nothing and says where; unmatched images
listed), `basam-ui export` with the review and proposal flags, and annotate's team options."""

from __future__ import annotations

import json
import shutil

import pytest
from project_util import blob, make_images, provenance

from basam_ui import cli
from basam_ui.jobs import propose as propose_job
from basam_ui.project import Project

SIZES = {"a.png": (120, 160), "b/c.png": (100, 140)}
PROPOSE = ["--random-weights", "--model", "vit_t", "--device", "cpu", "--precision", "fp32", "--size", "256",
           "--points-per-side", "3", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def root(tmp_path):
    root = make_images(tmp_path / "images", SIZES)
    Project.open(root, labels=["lesion", "skin"]).close()
    return root


def sets_of(root) -> dict:
    with Project.open(root, readonly=True, create=False, scan=False) as project:
        return {project.image(s.image_id).path: (s.key, [p.counts for p in project.proposals(s.id)])
                for s in project.proposal_sets()}


def test_propose_stores_each_images_set_under_the_pages_key_and_resumes(root, capsys):
    from basam_ui.basam.config import BASAMConfig
    from basam_ui.proposals import ProposalSettings, record_for, settings_key

    assert cli.main(["propose", str(root), *PROPOSE]) == 0
    assert "2 images: 2 proposal sets computed" in capsys.readouterr().err
    found = sets_of(root)
    settings = ProposalSettings(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    key = settings_key(record_for("vit_t:random-0", 256, BASAMConfig(nsf=True, bmam=True, beta=0.1), "fp32", settings))
    assert set(found) == {"a.png", "b/c.png"} and {k for k, _ in found.values()} == {key}
    assert all(masks for _, masks in found.values())
    assert list((root / ".basam-ui" / "cache").glob("*.safetensors"))  # the embeddings, where annotate looks
    assert cli.main(["propose", str(root), *PROPOSE]) == 0  # a re-run: nothing to do
    assert "0 proposal sets computed (0 masks), 2 already stored" in capsys.readouterr().err
    assert cli.main(["propose", str(root), *PROPOSE, "--settings", "vanilla", "basam"]) == 0  # SAM's too
    err = capsys.readouterr().err
    assert "2 proposal sets computed" in err and "2 already stored" in err
    assert len(sets_of_all(root)) == 4


def sets_of_all(root) -> list:
    with Project.open(root, readonly=True, create=False, scan=False) as project:
        return project.proposal_sets()


def test_ctrl_c_keeps_the_finished_sets(root, capsys, monkeypatch):
    real = propose_job.ProposeJob.__call__

    def interrupted(job, segmenter, **kwargs):
        if job.path.endswith("c.png"):
            raise KeyboardInterrupt
        return real(job, segmenter, **kwargs)

    monkeypatch.setattr(propose_job.ProposeJob, "__call__", interrupted)
    assert cli.main(["propose", str(root), *PROPOSE]) == 130
    assert "interrupted: every finished set is stored (1 in the project)" in capsys.readouterr().err
    assert set(sets_of(root)) == {"a.png"}


def test_jobs_travel_to_workers_and_their_sets_are_stored_as_a_local_run_stores(root, tmp_path, vit_t):
    """What `--ray` relies on besides precompute's pool (tested in test_distributed.py): a job
    pickles (its settings and the stored keys with it) and runs on a worker's own segmenter;
    the driver stores the outcomes as they arrive."""
    import pickle

    from basam_ui.cache import EmbeddingCache
    from basam_ui.segmenter import Segmenter

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert cli.main(["propose", str(root), *PROPOSE]) == 0
    args = cli.build_parser().parse_args(["propose", str(copy), *PROPOSE])
    worker = Segmenter(vit_t, cache=EmbeddingCache(0, tmp_path / "cache"), precision="fp32")  # another process's
    with Project.open(copy) as project:
        jobs, left_out = propose_job.project_jobs(project, [256], propose_job.settings_for(["basam"], 0.1),
                                                  propose_job.proposal_settings_from_args(args))  # fmt: skip
        assert left_out == [] and len(jobs) == 2
        outcomes = (pickle.loads(pickle.dumps(job))(worker) for job in reversed(jobs))  # any order
        summary = propose_job.run_and_store(project, jobs, outcomes)
    assert (summary.sets, summary.failed) == (2, 0) and sets_of(copy) == sets_of(root)


def test_import_is_one_transaction_and_lists_what_it_skips(root, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 160, "height": 120}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 30, 1, 30, 30]]},
                        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": {"size": [120, 160], "counts": "!!"}}],
        "categories": [{"id": 1, "name": "tumour"}]}))  # fmt: skip
    assert cli.main(["import", str(root), "--format", "coco", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.json: annotation 2" in err and "Nothing was imported" in err
    with Project.open(root, readonly=True, create=False, scan=False) as project:
        assert project.all_objects() == [] and "tumour" not in project.labels()
    shapes = tmp_path / "labelme"
    shapes.mkdir()
    for name, image in (("a.json", "../images/a.png"), ("z.json", "nowhere/z.png")):
        (shapes / name).write_text(json.dumps({
            "imagePath": image, "imageHeight": 120, "imageWidth": 160,
            "shapes": [{"label": "cell", "shape_type": "polygon", "points": [[10, 10], [60, 12], [40, 50]]}]}))
    assert cli.main(["import", str(root), "--format", "labelme", str(shapes), "--annotator", "tool"]) == 0
    out, err = capsys.readouterr()
    assert "1 objects imported into 1 images; new classes: cell" in out and "not in the project: nowhere/z.png" in err
    with Project.open(root, readonly=True, create=False, scan=False) as project:
        [obj] = project.all_objects()
        assert obj.provenance.source == "imported" and obj.provenance.annotator == "tool"
        assert {image.path: image.status for image in project.images()} == {"a.png": "todo", "b/c.png": "todo"}


def test_export_flags_and_annotate_options(root, tmp_path, capsys):
    with Project.open(root) as project:
        image, _ = project.open_image(project.image_by_path("a.png").id)
        kept = project.commit_object(image.id, blob(120, 160, 1), "lesion", provenance(annotator="ann"))
        dropped = project.commit_object(image.id, blob(120, 160, 2), "skin", provenance(annotator="ann"))
        project.set_status(image.id, "done", "ann")
        project.review_object(kept.id, "accepted", "rita")
        project.review_object(dropped.id, "rejected", "rita", "wrong class")
        project.set_status(image.id, "done", "ann")
    for flags, count in (([], 1), (["--include-rejected"], 2), (["--reviewed-only"], 0)):
        out = tmp_path / f"out{len(flags)}{flags[:1]}"
        assert cli.main(["export", str(root), "--format", "coco", "--out", str(out), *flags]) == 0
        assert len(json.loads((out / "annotations.json").read_text())["annotations"]) == count, flags
    assert "Review" in (out / "report.md").read_text()
    args = cli.build_parser().parse_args(["annotate", str(root), "--reviewers", "rita,sam", "--overlap", "0.25",
                                          "--no-background-proposals"])  # fmt: skip
    assert (args.reviewers, args.overlap, args.no_background_proposals) == ("rita,sam", 0.25, True)
