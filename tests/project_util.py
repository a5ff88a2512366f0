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


def older_database(root: Path, version: int, labels: tuple[str, ...] = ("object",)) -> Path:
    """A genuine project database of schema `version` (the migrations up to it, as an older
    basam-ui made it) for the images under `root`, at the default path; returns its path."""
    import json
    import sqlite3

    from basam_ui.project import migrations
    from basam_ui.project.scan import scan_folder
    from basam_ui.project.schema import APPLICATION_ID, default_db_path

    db = default_db_path(root)
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    assert migrations.upgrade(conn, target=version) == list(range(1, version + 1))
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute("INSERT INTO meta (key, value) VALUES ('created_by', ?)", (json.dumps(f"schema {version}"),))
    conn.executemany("INSERT INTO labels (name, position) VALUES (?, ?)", [(n, k) for k, n in enumerate(labels)])
    conn.executemany("INSERT INTO images (path) VALUES (?)", [(p,) for p in scan_folder(root).images])
    conn.close()
    return db


def insert_schema1_object(db: Path, path: str, mask: np.ndarray, prov: Provenance, label: str = "object") -> int:
    """Store a committed object with only schema 1's columns (as an older basam-ui did); the
    image gets the mask's size. Returns its id."""
    import json
    import sqlite3

    from basam_ui.project.objects import encode_mask

    rle = encode_mask(mask)
    with sqlite3.connect(db) as conn:
        image_id = conn.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()[0]
        conn.execute("UPDATE images SET height = ?, width = ?, status = 'in_progress' WHERE id = ?", (*rle["size"], image_id))
        label_id = conn.execute("SELECT id FROM labels WHERE name = ?", (label,)).fetchone()[0]
        p = prov
        cursor = conn.execute(
            "INSERT INTO objects (image_id, label_id, layer, height, width, counts, area, bbox, side, model_type, "
            "checkpoint_sha256, input_size, nsf, bmam, beta, precision, prompts, brushed, brush_edits, predicted_iou, "
            "iou_sam_basam, annotator, seconds, created_at, replaces) VALUES "
            "(?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1.0, NULL)",
            (image_id, label_id, *rle["size"], rle["counts"], rle["area"], json.dumps(rle["bbox"]), p.side, p.model_type,
             p.checkpoint_sha256, p.input_size, int(p.nsf), int(p.bmam), p.beta, p.precision, json.dumps(p.prompts),
             int(p.brushed), p.brush_edits, p.predicted_iou, p.iou_sam_basam, p.annotator, p.seconds),
        )
        return int(cursor.lastrowid)
