"""Serving a page: the engine the command line (or a Space) asks for, the launch options, and
`serve(args, make_page)`, which launches either page (compare or annotate) the same way:
logins checked before anything loads, SIGTERM stopping it like Ctrl-C, and the engine's (and
the page's own) resources released when it stops."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ...vocabulary import DEFAULT_CACHE_GB, DEFAULT_DECODE, DEFAULT_DISK_GB, DEFAULT_MAX_SIZE, DEFAULT_PRECISION, gb_to_bytes
from .auth import Login, check_exposure, logins_from_options
from .engine import AppEngine
from .gpu_work import GPUDecorator
from .session import AppError

if TYPE_CHECKING:
    import gradio as gr

MAX_FILE_SIZE = "500mb"


@dataclass
class Page:
    """A built page: its Blocks, its CSS, the folders besides the work folder it serves files
    from, what to close when the server stops (e.g. the annotate page's prefetcher), and
    `routes(app)`, which adds the page's own routes (tiles) to the running app."""

    demo: "gr.Blocks"
    css: str
    allowed_paths: Sequence[str] = ()
    closers: Sequence[Callable[[], None]] = field(default_factory=list)
    routes: Optional[Callable[[Any], None]] = None


def launch_options(engine: AppEngine, logins: Sequence[Login] = (), css: str = "",
                   allowed_paths: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """Keyword arguments for demo.launch(): the upload bound, the folders served as files (the
    engine's work folder and `allowed_paths`), the page's CSS, the logins (then the page, its
    files, the API and the decoder routes all need one), and the routes a page decodes
    clicks with (decode_routes.py)."""
    from .decode_routes import lifespan

    allowed = [str(engine.work_dir), *map(str, allowed_paths)]
    return {"max_file_size": MAX_FILE_SIZE, "allowed_paths": allowed, "css": css, "auth": list(logins) or None,
            "app_kwargs": {"lifespan": lifespan(engine)}}  # fmt: skip


def zero_gpu() -> Optional[GPUDecorator]:
    """spaces.GPU on a Hugging Face ZeroGPU Space (SPACES_ZERO_GPU set, as `spaces` reads
    it), else None: with the `spaces` package but no ZeroGPU the app runs as anywhere."""
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() not in ("1", "t", "true"):
        return None
    import spaces

    return spaces.GPU


def engine_from_args(args: argparse.Namespace) -> AppEngine:
    """The engine the command line asks for (`models.ModelSpec.loaders`: downloads the default
    checkpoint when the checkpoint folder has none), with the default model loaded, so a bad
    file fails at start. Raises DownloadError / CheckpointError / ValueError."""
    from ...checkpoints import checkpoint_dir
    from ...models import CheckpointError, ModelSpec, default_device

    gpu = zero_gpu()
    # under ZeroGPU the models stay on the CPU here and move to the GPU inside its worker:
    # this process must not initialise CUDA
    device = str(args.device or ("cuda" if gpu else default_device()))
    spec = ModelSpec.from_args(args)
    cache_dir = getattr(args, "cache_dir", None)
    # exported decoders are kept like embeddings (in the disk cache), else beside the checkpoints
    decoder_dir = Path(cache_dir) / "decoders" if cache_dir else checkpoint_dir(getattr(args, "checkpoint_dir", None)) / "decoders"
    engine = AppEngine(
        spec.loaders("cpu" if gpu else device),
        max_size=getattr(args, "max_size", DEFAULT_MAX_SIZE),
        cache_bytes=gb_to_bytes(getattr(args, "cache_gb", DEFAULT_CACHE_GB)),
        cache_dir=getattr(args, "cache_dir", None),
        disk_bytes=gb_to_bytes(getattr(args, "cache_disk_gb", DEFAULT_DISK_GB)),
        precision=getattr(args, "precision", DEFAULT_PRECISION),
        random_weights=spec.random_weights,
        device=device,
        gpu=gpu,
        decode=getattr(args, "decode", DEFAULT_DECODE),
        decoder_dir=decoder_dir,
    )
    try:
        engine.segmenter(engine.default_model)
    except AppError as exc:
        engine.close()
        raise CheckpointError(str(exc)) from None
    return engine


def serve(args: argparse.Namespace, make_page: Callable[[AppEngine], Page]) -> int:
    """Check the logins, build the engine and the page (`make_page`), and serve it on
    --host/--port until interrupted. Returns the exit status (1, with the reason on stderr,
    when it could not start)."""
    from ...checkpoints import DownloadError
    from ...models import CheckpointError

    try:  # before loading anything: a refused start is quick
        logins = logins_from_options(args.auth, args.auth_file)
        check_exposure(args.host, args.share, logins, args.allow_anonymous)
        engine = engine_from_args(args)
    except (DownloadError, CheckpointError, ValueError, OSError) as exc:  # AuthError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # SIGTERM (docker stop, systemd, a test harness) stops the server like Ctrl-C does, so
    # the work folder is removed
    signal.signal(signal.SIGTERM, _interrupt)
    page = None
    try:
        page = make_page(engine)
        page.demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                         prevent_thread_lock=page.routes is not None,
                         **launch_options(engine, logins, page.css, page.allowed_paths))  # fmt: skip
        if page.routes is not None:  # Gradio's app exists once launched: add them, then serve
            page.routes(page.demo.app)
            page.demo.block_thread()
    finally:
        for close in page.closers if page is not None else ():
            close()
        engine.close()
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
