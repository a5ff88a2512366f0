"""Watching an image-encoder pass from outside it: its progress block by block, and a cancel
that stops it at the next block. A large field (S = 4096 on a CPU) takes minutes to encode;
the page shows how far it got and lets the annotator give up on it.

Forward pre-hooks on the encoder's blocks (installed once per model by `install`) look up the
watch of the thread running the pass (`watching`); a pass without one runs as it always did,
and the encoder's code is unchanged. A transformer block is hooked at its MLP (its last step:
both encoders call the block's parts, not the block), a convolution block at its start.
A cancelled pass raises `EncodeCancelled` out of the encoder, so the embedding cache stores
nothing and every caller waiting for that key gets the error.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

BLOCK_NAME = re.compile(r"(^|\.)blocks\.\d+$")  # ViT's blocks.N, TinyViT's layers.K.blocks.N
INSTALLED = "_basam_ui_watch_hooks"

_local = threading.local()


class EncodeCancelled(RuntimeError):
    """The encoder pass was cancelled (nothing of it is kept)."""


class EncodeWatch:
    """One pass's watcher: `progress(fraction)` after each block (0 < fraction <= 1), and a
    flag (`cancelled`, which several watches may share) that `cancel()` sets from any
    thread; the pass stops at its next block."""

    def __init__(self, progress: Optional[Callable[[float], None]] = None, cancelled: Optional[threading.Event] = None):
        self.progress = progress
        self.cancelled = cancelled if cancelled is not None else threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()


@contextmanager
def watching(watch: Optional[EncodeWatch]) -> Iterator[Optional[EncodeWatch]]:
    """Encoder passes run by this thread inside the block report to (and obey) `watch`."""
    previous = getattr(_local, "watch", None)
    _local.watch = watch
    try:
        yield watch
    finally:
        _local.watch = previous


def install(sam) -> int:
    """Hook the blocks of `sam.image_encoder` (once; later calls do nothing). Returns the
    number of blocks watched."""
    encoder = sam.image_encoder
    if getattr(encoder, INSTALLED, None) is not None:
        return len(getattr(encoder, INSTALLED))
    blocks = [module for name, module in encoder.named_modules() if BLOCK_NAME.search(name)]
    handles = []
    for index, block in enumerate(blocks):
        target = block.mlp if hasattr(block, "mlp") else block
        handles.append(target.register_forward_pre_hook(_hook(index + (target is not block), len(blocks))))
    setattr(encoder, INSTALLED, handles)
    return len(blocks)


def _hook(done: int, total: int) -> Callable:
    def check(module, args) -> None:
        watch = getattr(_local, "watch", None)
        if watch is None:
            return
        if watch.cancelled.is_set():
            raise EncodeCancelled("the encode was cancelled")
        if watch.progress is not None and done:
            watch.progress(done / total)

    return check
