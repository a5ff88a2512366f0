"""`basam-ui export` and `basam-ui annotate` (up to the page): the three formats and the bad
inputs: non-image files, foreign or corrupt databases, a read-only folder, deleted images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from project_util import blob, make_images, provenance

from basam_ui.cli import main
from basam_ui.project import Project

REPO = Path(__file__).resolve().parents[1]

# run the CLI with a stand-in for the annotate page, which only reports what it was given
_WITH_FAKE_PAGE = textwrap.dedent(
    """
    import sys, types
    page = types.ModuleType("basam_ui.web.annotate.serve")
    page.main = lambda args, project: print("PAGE", project.db_path, project.labels(), args.port) or 0
    sys.modules.setdefault("basam_ui.web", types.ModuleType("basam_ui.web"))
    sys.modules["basam_ui.web.annotate.serve"] = page
    from basam_ui.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _annotated(root: Path, db: Path | None = None) -> Path:
    """A project with two done images of two objects each (and the other two to do)."""
    make_images(root)
    with Project.open(root, db, labels=["lesion", "skin"]) as p:
        for image in p.images()[:2]:
            image, _ = p.open_image(image.id)
            for j, label in enumerate(("lesion", "skin")):
                p.commit_object(image.id, blob(image.height, image.width, j), label, provenance())
            p.set_status(image.id, "done")
    return root


def _run(args: list[str], unprivileged: bool = False) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; `unprivileged` drops root's power to write anywhere, so that
    folder permissions apply as they do for a normal user."""
    command = [sys.executable, "-c", _WITH_FAKE_PAGE, *args]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root: setpriv (util-linux) is needed to test a read-only folder"
        caps = "-dac_override,-dac_read_search,-fowner"
        command = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


@pytest.mark.parametrize("fmt", ["coco", "png", "yolo"])
def test_export_formats(tmp_path, fmt, capsys):
    root = _annotated(tmp_path / "data")
    assert main(["export", str(root), "--format", fmt, "--out", str(tmp_path / "out")]) == 0
    assert "4 objects of 2 images" in capsys.readouterr().out
    out = tmp_path / "out"
    assert (out / "report.md").is_file() and not (out / "missing.txt").exists()
    if fmt == "coco":
        coco = json.loads((out / "annotations.json").read_text())
        assert len(coco["images"]) == 2 and len(coco["annotations"]) == 4
        assert isinstance(coco["annotations"][0]["segmentation"], dict)
    elif fmt == "png":
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
            "instance/a/first.png", "instance/a/second.png", "semantic/a/first.png", "semantic/a/second.png"]
    else:
        assert sorted(p.name for p in (out / "labels" / "a").iterdir()) == ["first.txt", "second.txt"]
        assert (out / "classes.txt").read_text() == "lesion\nskin\n"


def test_export_all_and_polygons(tmp_path):
    root = _annotated(tmp_path / "data")
    with Project.open(root) as p:
        third = p.images()[2]
        third, _ = p.open_image(third.id)
        p.commit_object(third.id, blob(third.height, third.width, 5), "skin", provenance())
    assert main(["export", str(root), "--format", "coco", "--all", "--polygons", "--out", str(tmp_path / "o")]) == 0
    coco = json.loads((tmp_path / "o" / "annotations.json").read_text())
    assert len(coco["images"]) == 3 and all(isinstance(a["segmentation"], list) for a in coco["annotations"])


def test_deleted_image_is_listed_as_missing(tmp_path, capsys):
    root = _annotated(tmp_path / "data")
    (root / "a" / "first.png").unlink()
    assert main(["export", str(root), "--format", "png", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "missing: a/first.png" in captured.err and "4 objects of 2 images" in captured.out
    assert (tmp_path / "out" / "missing.txt").read_text() == "a/first.png\n"
    assert (tmp_path / "out" / "semantic" / "a" / "first.png").is_file()  # its objects are kept
    assert "1 image files missing" in (tmp_path / "out" / "report.md").read_text()


def test_changed_image_is_flagged(tmp_path, capsys):
    root = _annotated(tmp_path / "data")
    make_images(root, {"a/second.jpg": (40, 56)}, seed=99)
    assert main(["export", str(root), "--format", "coco", "--out", str(tmp_path / "out")]) == 0
    assert "changed since annotated: a/second.jpg" in capsys.readouterr().err
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert {im["file_name"]: im["changed"] for im in coco["images"]} == {"a/first.png": False, "a/second.jpg": True}


@pytest.mark.parametrize("kind", ["foreign", "corrupt"])
def test_bad_database_is_refused_and_kept(tmp_path, kind, capsys):
    import sqlite3

    root = make_images(tmp_path / "data")
    db = tmp_path / "x.sqlite"
    if kind == "foreign":
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE t (x)")
    else:
        db.write_bytes(b"PK\x03\x04 this is a zip, not a database" * 50)
    before = db.read_bytes()
    assert main(["export", str(root), "--db", str(db), "--format", "coco", "--out", str(tmp_path / "out")]) == 1
    assert main(["annotate", str(root), "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.count(str(db)) == 2 and "left untouched" in err
    assert db.read_bytes() == before and not (tmp_path / "out").exists()


def test_export_without_a_project(tmp_path, capsys):
    root = make_images(tmp_path / "data")
    assert main(["export", str(root), "--format", "yolo", "--out", str(tmp_path / "out")]) == 1
    assert "no project database" in capsys.readouterr().err and not (root / ".basam-ui").exists()


def test_annotate_opens_the_project_and_lists_skipped_files(tmp_path):
    root = make_images(tmp_path / "data")
    (root / "notes.txt").write_text("x")
    (root / "a" / "labels.csv").write_text("x")
    run = _run(["annotate", str(root), "--labels", "lesion, skin,,", "--port", "7000", "--random-weights"])
    assert run.returncode == 0, run.stderr
    assert "4 images" in run.stdout and "skipped (not images): a/labels.csv, notes.txt" in run.stdout
    db = root / ".basam-ui" / "project.sqlite"
    assert f"PAGE {db} ['lesion', 'skin'] 7000" in run.stdout


def test_read_only_folder_needs_db(tmp_path):
    root = _annotated(tmp_path / "data")
    shutil.rmtree(root / ".basam-ui")
    root.chmod(0o555)
    try:
        run = _run(["annotate", str(root)], unprivileged=True)
        assert run.returncode == 1 and "--db" in run.stderr and str(root) in run.stderr, run.stderr
        assert not (root / ".basam-ui").exists()
        db = tmp_path / "elsewhere.sqlite"
        run = _run(["annotate", str(root), "--db", str(db)], unprivileged=True)
        assert run.returncode == 0 and f"PAGE {db}" in run.stdout, run.stderr
    finally:
        root.chmod(0o755)


def test_export_reads_a_database_in_a_read_only_folder(tmp_path):
    root = _annotated(tmp_path / "data")
    (root / ".basam-ui").chmod(0o555)
    try:
        run = _run(["export", str(root), "--format", "coco", "--out", str(tmp_path / "out")], unprivileged=True)
        assert run.returncode == 0, run.stderr
        assert len(json.loads((tmp_path / "out" / "annotations.json").read_text())["annotations"]) == 4
    finally:
        (root / ".basam-ui").chmod(0o755)
