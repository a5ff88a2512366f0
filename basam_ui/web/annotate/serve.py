"""Serving the annotate page: `basam-ui annotate DIR` opens the project (cli.py), then
`main(args, project)` builds the engine as the app does (every app option works; the
embedding cache goes on disk next to the project unless --cache-dir says elsewhere) and
serves the page until interrupted."""

from __future__ import annotations

import argparse
import os

from ..common.engine import AppEngine
from ..common.serve import Page, serve


def main(args: argparse.Namespace, project) -> int:
    """Serve the annotate page on `project` (a basam_ui.project.Project, closed on exit).
    Returns the exit status."""
    from ...cache import default_project_cache_dir

    if not args.cache_dir:  # next to the project; next to its database when DIR is read-only
        writable = os.access(project.root, os.W_OK)
        args.cache_dir = str(default_project_cache_dir(project.root) if writable else project.db_path.parent / "cache")

    def page(engine: AppEngine) -> Page:
        from ..common.tiles import TileServer, install_routes
        from .events import tile_file
        from .page import CSS, build_annotate_app
        from .prefetch import Prefetcher
        from .proposals import ProposalService

        prefetcher = Prefetcher(engine)
        tiles = TileServer(tile_file(project), max_pixels=engine.max_pixels)  # slides and large photos, by image id
        proposals = ProposalService(engine, project, wake=prefetcher.wake,
                                    enabled=not getattr(args, "no_background_proposals", False))  # fmt: skip
        prefetcher.add_task(proposals)
        return Page(build_annotate_app(engine, project, prefetcher, proposals), CSS,
                    closers=[prefetcher.stop, tiles.close], routes=lambda app: install_routes(app, tiles))  # fmt: skip

    try:
        return serve(args, page)
    finally:
        project.close()
