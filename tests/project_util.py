"""Helpers for the project tests: a folder of small images, provenance, masks."""

from __future__ import annotations

from pathlib import Path

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


def database_at(db: Path, version: int, labels: tuple[str, ...] = ("object",)) -> Path:
    """A project database as the basam-ui of schema `version` left it (migrations 1..version,
    no later ones), with `labels`: for upgrade tests. Returns its path."""
    import sqlite3

    from basam_ui.project import migrations
    from basam_ui.project.schema import APPLICATION_ID

    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for number in range(1, version + 1):
            migrations.MIGRATIONS[number].upgrade(conn)
        conn.execute(f"PRAGMA user_version={version}")
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.executemany("INSERT INTO labels (name, position) VALUES (?, ?)", [(n, k) for k, n in enumerate(labels)])
        conn.execute("COMMIT")
    finally:
        conn.close()
    return db


def legacy_object(conn, image_id: int, mask: np.ndarray, layer: int = 1, annotator: str = "ann") -> int:
    """Insert an object with the columns of schema 1 (what every older version has) into an
    older database; its provenance is `provenance(annotator=...)`. Returns its id."""
    import json

    from basam_ui.project.objects import encode_mask

    rle, p = encode_mask(mask), provenance(annotator=annotator)
    cursor = conn.execute(
        "INSERT INTO objects (image_id, label_id, layer, height, width, counts, area, bbox, side, model_type, "
        "checkpoint_sha256, input_size, nsf, bmam, beta, precision, prompts, brushed, brush_edits, predicted_iou, "
        "iou_sam_basam, annotator, seconds, created_at, replaces) "
        "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, NULL, NULL, ?, NULL, 1.0, NULL)",
        (image_id, layer, *rle["size"], rle["counts"], rle["area"], json.dumps(rle["bbox"]), p.side, p.model_type,
         p.checkpoint_sha256, p.input_size, int(p.nsf), int(p.bmam), p.beta, p.precision, json.dumps(p.prompts),
         p.annotator),
    )
    return int(cursor.lastrowid)


def downgrade(db_path: Path, version: int) -> None:
    """Take a project database back to schema `version`, as an older basam-ui left it: the
    columns later migrations added are dropped (found by comparing with a database built by
    migrations 1..`version` alone) and its user_version set."""
    import sqlite3

    from basam_ui.project import migrations

    older = sqlite3.connect(":memory:")
    for number, module in migrations.MIGRATIONS.items():
        if number <= version:
            module.upgrade(older)
    tables = [name for (name,) in older.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    with sqlite3.connect(db_path) as conn:
        for table in tables:
            kept = {row[1] for row in older.execute(f"PRAGMA table_info({table})")}
            for row in conn.execute(f"PRAGMA table_info({table})").fetchall():
                if row[1] not in kept:
                    conn.execute(f"ALTER TABLE {table} DROP COLUMN {row[1]}")
        conn.execute(f"PRAGMA user_version={version}")
    older.close()
