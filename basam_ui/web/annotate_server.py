"""Serving the annotate page: `basam-ui annotate DIR` opens the project (cli.py), then
`main(args, project)` builds the engine as the app does (every app option works; the
embedding cache goes on disk next to the project unless --cache-dir says elsewhere) and
serves the page until interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .annotate_page import annotate_launch_options, build_annotate_app
from .auth import check_exposure, logins_from_options
from .prefetch import Prefetcher
from .server import _interrupt, engine_from_args


def main(args: argparse.Namespace, project) -> int:
    """Serve the annotate page on `project` (closed on exit). Returns the exit status."""
    from ..cache import default_project_cache_dir
    from ..checkpoints import DownloadError
    from ..models import CheckpointError

    try:
        logins = logins_from_options(args.auth, args.auth_file)
        check_exposure(args.host, args.share, logins, args.allow_anonymous)
        if not args.cache_dir:  # next to the project; next to its database when DIR is read-only
            writable = os.access(project.root, os.W_OK)
            args.cache_dir = str(default_project_cache_dir(project.root) if writable else project.db_path.parent / "cache")
        engine = engine_from_args(args)
    except (DownloadError, CheckpointError, ValueError, OSError) as exc:  # AuthError is a ValueError
        project.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    prefetcher = Prefetcher(engine)
    try:
        demo = build_annotate_app(engine, project, prefetcher)
        demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                    **annotate_launch_options(engine, logins))
    finally:
        prefetcher.stop()
        engine.close()
        project.close()
    return 0
