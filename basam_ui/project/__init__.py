"""Annotation projects: a folder of images, a SQLite database of objects, dataset exports.

Pure Python over sqlite3, numpy, pycocotools, OpenCV and Pillow; no Gradio, no torch.

- `scan`: list the images of a folder (nothing decoded).
- `schema`: the database file (recognised by its application id; foreign files refused).
- `store.Project`: images, classes, statuses, claims and objects (`editing`), every change
  its own transaction. `objects.Provenance` is what the page fills in for each commit.
- `coco`, `labelmap`, `yolo`: dataset formats; `report`: figures; `export`: orchestration.
"""

from __future__ import annotations

from .editing import ImageChangedError
from .objects import ObjectRecord, Provenance
from .records import ImageRecord, Progress
from .schema import ProjectDatabaseError, ProjectError, default_db_path
from .store import Project

__all__ = [
    "ImageChangedError",
    "ImageRecord",
    "ObjectRecord",
    "Progress",
    "Project",
    "ProjectDatabaseError",
    "ProjectError",
    "Provenance",
    "default_db_path",
]
