"""Helpers for the tests of the pages' events: the settings they encode with, an opened image."""

from __future__ import annotations

from basam_ui.web.annotate import events as annotate
from basam_ui.web.common.session import Settings

SETTINGS = Settings("vit_t", 256, True, True, 0.1, False)  # random vit_t at S = 256: quick on a CPU


def opened(engine, project, name: str = "ann") -> annotate.AnnotateState:
    """The annotate page's first image for annotator `name`, encoded with SETTINGS."""
    state = annotate.first_image(engine, project, annotate.start(None, name))
    return annotate.encode(engine, state, SETTINGS)
