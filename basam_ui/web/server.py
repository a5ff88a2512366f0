"""Serving the app: the engine the command line (or a Space) asks for, the launch options,
and `main(args)` for `basam-ui` with no command."""

from __future__ import annotations

import os

# before Gradio is imported: it reads this at import time
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any, Optional, Sequence  # noqa: E402

import gradio as gr  # noqa: E402

from .auth import AUTH_ENV, Login, check_exposure, logins_from_env, logins_from_options  # noqa: E402
from .compare_page import ASSETS, CSS, build_app  # noqa: E402
from .engine import AppEngine  # noqa: E402
from .gpu_work import GPUDecorator  # noqa: E402
from .session import AppError  # noqa: E402

MAX_FILE_SIZE = "500mb"
SPACE_MAX_SIZE = 4096  # as the command line's --max-size default
SPACE_CACHE_GB = 2.0  # as --cache-gb's default


def launch_options(engine: AppEngine, logins: Sequence[Login] = ()) -> dict[str, Any]:
    """Keyword arguments for demo.launch(): upload bound, the folders served as files, CSS,
    and the logins (then the page, its files and the API all need one)."""
    allowed = [str(engine.work_dir)] + ([str(ASSETS)] if ASSETS.is_dir() else [])
    return {"max_file_size": MAX_FILE_SIZE, "allowed_paths": allowed, "css": CSS, "auth": list(logins) or None}


# -- engines from the command line or a Space -------------------------------------------


def zero_gpu() -> Optional[GPUDecorator]:
    """spaces.GPU on a Hugging Face ZeroGPU Space (SPACES_ZERO_GPU set, as `spaces` reads
    it), else None: with the `spaces` package but no ZeroGPU the app runs as anywhere."""
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() not in ("1", "t", "true"):
        return None
    import spaces

    return spaces.GPU


def engine_from_args(args: argparse.Namespace) -> AppEngine:
    """The engine the command line asks for. Downloads the default checkpoint when the
    checkpoint folder has none. Raises DownloadError / CheckpointError / ValueError."""
    from ..checkpoints import DEFAULT_MODEL_TYPE, available_checkpoints, download
    from ..models import default_device, load_sam, model_info, random_sam

    gpu = zero_gpu()
    # under ZeroGPU the models stay on the CPU here and move to the GPU inside its worker:
    # this process must not initialise CUDA
    device = str(args.device or ("cuda" if gpu else default_device()))
    load_to = "cpu" if gpu else device
    if args.random_weights:
        model_type = args.model or DEFAULT_MODEL_TYPE
        loaders = {model_type: partial(random_sam, model_type, seed=0, device=load_to)}
    elif args.checkpoint:
        sam = load_sam(args.model, args.checkpoint, load_to)
        loaders = {model_info(sam).model_type: lambda: sam}
    else:
        found = available_checkpoints(args.checkpoint_dir)
        wanted = args.model or (DEFAULT_MODEL_TYPE if not found or DEFAULT_MODEL_TYPE in found else next(iter(found)))
        if wanted not in found:
            print(f"basam-ui: no {wanted} checkpoint found; downloading it", file=sys.stderr)
            found[wanted] = download(wanted, args.checkpoint_dir)
        loaders = {t: partial(load_sam, t, path, load_to) for t, path in found.items()}
        loaders = {wanted: loaders.pop(wanted), **loaders}  # the default first in the dropdown
    engine = AppEngine(
        loaders,
        max_size=args.max_size,
        cache_bytes=int(args.cache_gb * (1 << 30)),
        cache_dir=args.cache_dir,
        disk_bytes=int(getattr(args, "cache_disk_gb", 50.0) * (1 << 30)),
        precision=getattr(args, "precision", "auto"),
        random_weights=bool(args.random_weights),
        device=device,
        gpu=gpu,
    )
    try:
        engine.segmenter(engine.default_model)  # load the default now: a bad file fails at start
    except AppError as exc:
        engine.close()
        from ..models import CheckpointError

        raise CheckpointError(str(exc)) from None
    return engine


def main(args: argparse.Namespace) -> int:
    """`basam-ui` with no command: build the engine, serve the page until interrupted."""
    from ..checkpoints import DownloadError
    from ..models import CheckpointError

    try:  # before loading anything: a refused start is quick
        logins = logins_from_options(args.auth, args.auth_file)
        check_exposure(args.host, args.share, logins, args.allow_anonymous)
        engine = engine_from_args(args)
    except (DownloadError, CheckpointError, ValueError) as exc:  # AuthError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # SIGTERM (docker stop, systemd, a test harness) stops the server like Ctrl-C does, so
    # the work folder below is removed
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo = build_app(engine)
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options(engine, logins))
    finally:
        engine.close()
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def space_app() -> tuple[gr.Blocks, dict[str, Any]]:
    """The app as a Hugging Face Space runs it: the default checkpoint downloaded at start-up
    (model from $BASAM_UI_MODEL, default vit_t); BASAM_UI_RANDOM_WEIGHTS=1 forces random
    weights; the logins come from the BASAM_UI_AUTH secret (one USER:PASSWORD a line).
    Without it a public Space is open to everyone. Returns the page and its launch options."""
    from ..checkpoints import DownloadError
    from ..models import CheckpointError

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
    defaults, the model and random weights from the environment)."""
    return argparse.Namespace(
        model=os.environ.get("BASAM_UI_MODEL", "vit_t"),
        checkpoint=None,
        checkpoint_dir=None,
        device=None,
        random_weights=os.environ.get("BASAM_UI_RANDOM_WEIGHTS", "").strip() == "1",
        max_size=SPACE_MAX_SIZE,
        cache_gb=SPACE_CACHE_GB,
        cache_dir=None,
        precision="auto",
    )
