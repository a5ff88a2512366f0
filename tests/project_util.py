"""Helpers for the project tests: a folder of small images, provenance, masks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from basam_ui.project import Provenance

SIZES = {"a/first.png": (48, 64), "a/second.jpg": (40, 56), "b/third.png": (50, 70), "fourth.png": (32, 30)}


def make_images(root: Path, sizes: dict[str, tuple[int, int]] = SIZES, seed: int = 0) -> Path:
    """Write noise images of the given (H, W) at the given relative paths; returns root."""
    rng = np.random.default_rng(seed)
    for rel, (h, w) in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return root


def provenance(**overrides) -> Provenance:
    """A plausible provenance; any field can be overridden."""
    fields = dict(
        side="basam", model_type="vit_t", checkpoint_sha256="ab" * 32, input_size=1024, nsf=True, bmam=True,
        beta=0.1, precision="fp32", prompts={"points": [[5, 6]], "labels": [1], "box": None}, annotator="ann",
    )
    fields.update(overrides)
    return Provenance(**fields)


def blob(h: int, w: int, seed: int, holes: bool = False) -> np.ndarray:
    """A random non-empty bool mask: one or two filled ellipses (a hole in the first with `holes`)."""
    import cv2

    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 3)):
        center = (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4)))
        axes = (int(rng.integers(4, w // 3)), int(rng.integers(4, h // 3)))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    if holes:
        cv2.circle(mask, (w // 2, h // 2), 2, 0, -1)
    mask[h // 2, w // 2 - 4] = 1
    return mask.astype(bool)


def database_at(db: Path, version: int, labels: tuple[str, ...] = ("object",), images: tuple[str, ...] = ()) -> Path:
    """A genuine project database of schema `version` (migrations 1..version and no later ones,
    as the basam-ui of that schema made it) at `db`, with `labels` and rows for the image paths
    `images`: for upgrade tests. Returns its path."""
    import json
    import sqlite3

    from basam_ui.project import migrations
    from basam_ui.project.schema import APPLICATION_ID

    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        assert migrations.upgrade(conn, target=version) == list(range(1, version + 1))
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute("INSERT INTO meta (key, value) VALUES ('created_by', ?)", (json.dumps(f"schema {version}"),))
        conn.executemany("INSERT INTO labels (name, position) VALUES (?, ?)", [(n, k) for k, n in enumerate(labels)])
        conn.executemany("INSERT INTO images (path) VALUES (?)", [(path,) for path in images])
    finally:
        conn.close()
    return db


def older_database(root: Path, version: int, labels: tuple[str, ...] = ("object",)) -> Path:
    """`database_at` the default path of the project at `root`, listing its images."""
    from basam_ui.project.scan import scan_folder
    from basam_ui.project.schema import default_db_path

    return database_at(default_db_path(root), version, labels, tuple(scan_folder(root).images))


def legacy_object(conn, image_id: int, mask: np.ndarray, layer: int = 1, made: Optional[Provenance] = None,
                  label_id: int = 1) -> int:  # fmt: skip
    """Insert an object with only the columns of schema 1 (what every older version has) into
    an older database; its provenance is `made` (default: `provenance()`). Returns its id."""
    import json

    from basam_ui.project.objects import encode_mask

    rle, p = encode_mask(mask), made or provenance()
    cursor = conn.execute(
        "INSERT INTO objects (image_id, label_id, layer, height, width, counts, area, bbox, side, model_type, "
        "checkpoint_sha256, input_size, nsf, bmam, beta, precision, prompts, brushed, brush_edits, predicted_iou, "
        "iou_sam_basam, annotator, seconds, created_at, replaces) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1.0, NULL)",
        (image_id, label_id, layer, *rle["size"], rle["counts"], rle["area"], json.dumps(rle["bbox"]), p.side,
         p.model_type, p.checkpoint_sha256, p.input_size, int(p.nsf), int(p.bmam), p.beta, p.precision,
         json.dumps(p.prompts), int(p.brushed), p.brush_edits, p.predicted_iou, p.iou_sam_basam, p.annotator,
         p.seconds),
    )  # fmt: skip
    return int(cursor.lastrowid)


def insert_schema1_object(db: Path, path: str, mask: np.ndarray, made: Provenance, label: str = "object") -> int:
    """`legacy_object` on the image at `path` of the database `db`, which gets the mask's size
    and status in progress. Returns the object's id."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        image_id = conn.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()[0]
        h, w = mask.shape
        conn.execute("UPDATE images SET height = ?, width = ?, status = 'in_progress' WHERE id = ?", (h, w, image_id))
        label_id = conn.execute("SELECT id FROM labels WHERE name = ?", (label,)).fetchone()[0]
        return legacy_object(conn, image_id, mask, made=made, label_id=label_id)
