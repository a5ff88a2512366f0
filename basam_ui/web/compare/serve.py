"""Serving the compare page: `basam-ui` with no command (`main`), and a Hugging Face Space
(`space_app`, which app.py calls)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

from ...vocabulary import DEFAULT_CACHE_GB, DEFAULT_DECODE, DEFAULT_MAX_SIZE, DEFAULT_MODEL_TYPE, DEFAULT_PRECISION
from ..common import serve as common
from ..common.auth import AUTH_ENV, Login, logins_from_env
from ..common.engine import AppEngine
from ..common.serve import engine_from_args

if TYPE_CHECKING:
    import gradio as gr


def _served_folders() -> list[str]:
    """Besides the work folder, the page serves its examples (when the assets folder is there)."""
    from .page import ASSETS

    return [str(ASSETS)] if ASSETS.is_dir() else []


def launch_options(engine: AppEngine, logins: Sequence[Login] = ()) -> dict[str, Any]:
    """demo.launch() options of the compare page (its CSS, its examples served)."""
    from .page import CSS

    return common.launch_options(engine, logins, CSS, _served_folders())


def page(engine: AppEngine) -> common.Page:
    """The compare page for `engine`, as `serve` launches it."""
    from .page import CSS, build_app

    return common.Page(build_app(engine), CSS, _served_folders())


def main(args: argparse.Namespace) -> int:
    """`basam-ui` with no command: serve the compare page until interrupted."""
    return common.serve(args, page)


def space_app() -> tuple["gr.Blocks", dict[str, Any]]:
    """The app as a Hugging Face Space runs it: the default checkpoint downloaded at start-up
    (model from $BASAM_UI_MODEL, default vit_t); BASAM_UI_RANDOM_WEIGHTS=1 forces random
    weights; the logins come from the BASAM_UI_AUTH secret (one USER:PASSWORD a line).
    Without it a public Space is open to everyone. Returns the page and its launch options."""
    from ...checkpoints import DownloadError
    from ...models import CheckpointError
    from .page import build_app

    try:
        logins = logins_from_env()
        engine = engine_from_args(space_args())
    except (DownloadError, CheckpointError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if not logins:
        print(
            f"basam-ui: no logins ({AUTH_ENV} is not set): if this Space is public, anyone can use it "
            "and see what is uploaded",
            file=sys.stderr,
        )
    return build_app(engine), launch_options(engine, logins)


def space_args() -> argparse.Namespace:
    """The options `engine_from_args` reads, as a Space sets them (the command line's
    defaults; the model, random weights and --decode from the environment)."""
    return argparse.Namespace(
        model=os.environ.get("BASAM_UI_MODEL", DEFAULT_MODEL_TYPE),
        checkpoint=None,
        checkpoint_dir=None,
        device=None,
        random_weights=os.environ.get("BASAM_UI_RANDOM_WEIGHTS", "").strip() == "1",
        max_size=DEFAULT_MAX_SIZE,
        cache_gb=DEFAULT_CACHE_GB,
        cache_dir=None,
        precision=DEFAULT_PRECISION,
        decode=os.environ.get("BASAM_UI_DECODE", DEFAULT_DECODE),
    )
