"""The project database file: foreign and corrupt files refused untouched, and nothing
committed is lost when the process is killed."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from project_util import blob, make_images, provenance

from basam_ui.project import Project, ProjectDatabaseError, ProjectError

REPO = Path(__file__).resolve().parents[1]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_foreign_sqlite_file_is_refused_untouched(tmp_path):
    make_images(tmp_path / "data")
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE images (x)")
    before = _digest(db)
    with pytest.raises(ProjectDatabaseError, match=f"{db}.*another program"):
        Project.open(tmp_path / "data", db)
    assert _digest(db) == before


@pytest.mark.parametrize("content", [b"hello, not a database\n" * 10, b"SQLite format 3\x00" + b"\xff" * 2000])
def test_corrupt_file_is_refused_untouched(tmp_path, content):
    make_images(tmp_path / "data")
    db = tmp_path / "data" / ".basam-ui" / "project.sqlite"
    db.parent.mkdir()
    db.write_bytes(content)
    with pytest.raises(ProjectDatabaseError, match=f"{db}"):
        Project.open(tmp_path / "data")
    assert db.read_bytes() == content


def _damage(db: Path, table: str) -> bytes:
    """Overwrite the root page of `table` with garbage; returns the file's new bytes."""
    with sqlite3.connect(db) as conn:
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    data[(page - 1) * size : page * size] = b"\x5a" * size
    db.write_bytes(bytes(data))
    return bytes(data)


def test_damaged_page_inside_our_database_is_refused(tmp_path):
    make_images(tmp_path)
    with Project.open(tmp_path) as p:
        db = p.db_path
    data = _damage(db, "images")
    with pytest.raises(ProjectDatabaseError, match=f"{db}.*(corrupt|unreadable)"):
        Project.open(tmp_path)
    assert db.read_bytes() == data


def test_damaged_objects_are_reported_when_read(tmp_path):
    make_images(tmp_path)
    with Project.open(tmp_path) as p:
        db = p.db_path
        image, _ = p.open_image(p.images()[0].id)
        p.commit_object(image.id, blob(image.height, image.width, 0), "object", provenance())
    data = _damage(db, "objects")
    with Project.open(tmp_path) as p:  # opening checks the small tables only: fast on a big project
        with pytest.raises(ProjectDatabaseError, match=f"{db}.*damaged"):
            p.all_objects()
    assert db.read_bytes() == data


def test_export_needs_an_existing_project(tmp_path):
    make_images(tmp_path)
    with pytest.raises(ProjectError, match="no project database"):
        Project.open(tmp_path, create=False)
    assert not (tmp_path / ".basam-ui").exists()


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from basam_ui.project import Project, Provenance

    project = Project.open(sys.argv[1])
    images = project.images()
    for im in images:
        project.open_image(im.id)
    prov = Provenance("basam", "vit_t", None, 1024, True, True, 0.1, prompts={"points": [[1, 1]], "labels": [1]})
    rng = np.random.default_rng(0)
    i = 0
    while True:
        im = project.image(images[i % len(images)].id)
        mask = rng.random((im.height, im.width)) < 0.3
        obj = project.commit_object(im.id, mask, "object", prov)
        print(obj.id, im.id, int(mask.sum()), flush=True)
        i += 1
    """
)


def test_sigkill_loses_no_returned_commit(tmp_path):
    make_images(tmp_path)
    Project.open(tmp_path).close()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    reported = []
    for line in child.stdout:
        reported.append([int(v) for v in line.split()])
        if len(reported) >= 40:
            break
    child.send_signal(signal.SIGKILL)
    reported += [[int(v) for v in line.split()] for line in child.stdout if line.strip()]
    child.wait()
    assert child.returncode == -signal.SIGKILL and len(reported) >= 40

    conn = sqlite3.connect(tmp_path / ".basam-ui" / "project.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Project.open(tmp_path) as p:
        stored = {o.id: o for o in p.all_objects()}
    for object_id, image_id, area in reported:
        assert object_id in stored, f"object {object_id} was committed but is gone"
        assert stored[object_id].image_id == image_id and stored[object_id].area == area


def test_one_project_shared_by_threads(tmp_path):
    """The server shares one Project between its request threads."""
    import threading

    make_images(tmp_path)
    with Project.open(tmp_path) as p:
        images = [p.open_image(im.id)[0] for im in p.images()]
        errors = []

        def work(k):
            try:
                for j in range(8):
                    im = images[(k + j) % len(images)]
                    p.commit_object(im.id, blob(im.height, im.width, 100 * k + j), "object",
                                    provenance(annotator=f"a{k}"), holder=f"s{k}")
                    p.images(), p.progress(), p.next_todo(f"s{k}", f"a{k}", after=im.id)
            except Exception as exc:  # reported below, from the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert errors == []
        objects = p.all_objects()
        assert len(objects) == 32 and len({o.id for o in objects}) == 32
        for im in images:  # layers within an image stay distinct
            layers = [o.layer for o in p.objects(im.id)]
            assert len(layers) == len(set(layers))
