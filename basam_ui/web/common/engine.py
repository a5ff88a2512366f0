"""The app's shared engine: the models (loaded on first use), the one embedding cache every
session shares, and the work folder of the sessions' files. `embed` is every caller's way to
an embedding (pages, API, prefetch); `run_side` is the model work of an event (one side:
embed, then decode the masks). With a GPU wrapper (ZeroGPU) the encode runs in its worker
process, and the embedding comes back to this process's cache (gpu_work.py); the decode runs
here, on the CPU, so a click never asks for the GPU. `browser` is what the pages need to
decode clicks in the browser instead (browser_decode.py). No Gradio here.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np

from ...basam.config import BASAMConfig
from ...prompts import Prompts
from ...vocabulary import (
    DEFAULT_CACHE_GB, DEFAULT_DISK_GB, DEFAULT_MAX_SIZE, DEFAULT_PRECISION, DEFAULT_SIZE, FIELD_SIZE_GPU, MIN_SIZE,
    NATIVE, SIZES, gb_to_bytes,
)  # fmt: skip
from .browser_decode import BrowserDecoding
from .gpu_work import GPUDecorator, GpuWork, decode_side
from .session import AppError, Progress, Session, SideResult, no_progress

ModelLoader = Callable[[], Any]  # () -> a Sam module on its device (models.ModelLoader)


class AppEngine:
    """The models and the embedding cache, shared by every session.

    `loaders` maps model type -> a function that builds it; each model is loaded on first
    use (under a lock) and kept. One `Segmenter` per model, all sharing one EmbeddingCache.
    `device` is where the model work runs. With `gpu` (spaces.GPU on ZeroGPU) the loaders
    put the models on the CPU, and the encode runs under `gpu`, moving the model to `device`
    inside it (gpu_work.GpuWork); the decode stays on the CPU here. `decode` ("auto",
    "browser", "server") says where clicks are decoded (`browser`, a BrowserDecoding; the
    exported decoders go to `decoder_dir`, by default a folder of the work folder); "server"
    by default here, so an engine made in code exports nothing (the command line's default
    is "auto": `serve.engine_from_args`).
    `decodes` counts the sides this engine decoded (clicks the browser decoded add none).
    """

    def __init__(
        self,
        loaders: Mapping[str, ModelLoader],
        *,
        device: str = "cpu",
        default_model: Optional[str] = None,
        max_size: int = DEFAULT_MAX_SIZE,
        max_pixels: Optional[int] = None,
        cache_bytes: int = gb_to_bytes(DEFAULT_CACHE_GB),
        cache_dir: Optional[str | Path] = None,
        disk_bytes: Optional[int] = gb_to_bytes(DEFAULT_DISK_GB),
        precision: str = DEFAULT_PRECISION,
        random_weights: bool = False,
        work_dir: Optional[str | Path] = None,
        gpu: Optional[GPUDecorator] = None,
        decode: str = "server",
        decoder_dir: Optional[str | Path] = None,
    ):
        from ...cache import EmbeddingCache
        from ...sources import DEFAULT_MAX_PIXELS

        if not loaders:
            raise ValueError("AppEngine needs at least one model loader")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < MIN_SIZE:
            raise ValueError(f"max_size must be an integer >= {MIN_SIZE}, got {max_size!r}")
        self.loaders = dict(loaders)
        self.device = str(device)  # where the model work runs (sets the queue's concurrency)
        self.default_model = default_model or next(iter(self.loaders))
        if self.default_model not in self.loaders:
            raise ValueError(f"default model {self.default_model!r} is not among {list(self.loaders)}")
        self.max_size = max_size
        self.max_pixels = max_pixels or DEFAULT_MAX_PIXELS
        self.random_weights = random_weights
        self.precision = precision  # the Segmenters' "auto", "fp32" or "bf16"
        self.cache = EmbeddingCache(cache_bytes, cache_dir, disk_bytes=disk_bytes)
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="basam-ui-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._segmenters: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._encodes: dict[str, threading.Event] = {}  # a session's running encode: its cancel flag
        self.gpu_work = GpuWork(self._worker_segmenter, self.device, gpu) if gpu else None
        self.decodes = 0
        self._decodes_lock = threading.Lock()
        self.browser = BrowserDecoding(decode, decoder_dir or self.work_dir / "decoders", lambda m: self.segmenter(m).sam)

    @property
    def model_types(self) -> list[str]:
        return list(self.loaders)

    def size_choices(self) -> list[str]:
        """Sizes offered in the page: those <= max_size, then "native" (capped at max_size)."""
        return [str(s) for s in SIZES if s <= self.max_size] + [NATIVE]

    @property
    def default_size(self) -> str:
        return str(DEFAULT_SIZE) if DEFAULT_SIZE <= self.max_size else NATIVE

    @property
    def default_field_size(self) -> str:
        """The S a slide's fields start with: DEFAULT_SIZE on a CPU (a 4096 field encodes for
        minutes there), FIELD_SIZE_GPU on a GPU (within --max-size)."""
        if self.device.startswith("cuda") and FIELD_SIZE_GPU <= self.max_size:
            return str(FIELD_SIZE_GPU)
        return self.default_size

    @contextmanager
    def encoding(self, holder: str) -> Iterator[threading.Event]:
        """The cancel flag of `holder`'s encode while it runs (`cancel(holder)` sets it)."""
        flag = threading.Event()
        with self._lock:
            self._encodes[holder] = flag
        try:
            yield flag
        finally:
            with self._lock:
                if self._encodes.get(holder) is flag:
                    del self._encodes[holder]

    def cancel(self, holder: str) -> bool:
        """Stop `holder`'s running encode at its next block; False when none runs."""
        with self._lock:
            flag = self._encodes.get(holder)
        if flag is None:
            return False
        flag.set()
        return True

    def segmenter(self, model_type: str, progress: Progress = no_progress):
        """The Segmenter for `model_type`, loading the model on first use."""
        if model_type not in self.loaders:
            raise AppError(f"unknown model {model_type!r}; this server has {', '.join(self.loaders)}")
        with self._lock:
            found = self._segmenters.get(model_type)
            if found is None:
                progress(0.0, f"loading {model_type}…")
                found = self._segmenters[model_type] = self._load(model_type)
            return found

    def _load(self, model_type: str):
        from ...models import CheckpointError
        from ...segmenter import Segmenter

        from ...encode_watch import install

        try:
            sam = self.loaders[model_type]()
        except CheckpointError as exc:
            raise AppError(str(exc)) from None
        install(sam)  # progress and cancel, block by block (encode_watch)
        return Segmenter(sam, cache=self.cache, max_native_size=self.max_size, precision=self.precision)

    def _worker_segmenter(self, model_type: str):
        """The segmenter inside a GPU worker: the forked copy of this engine's, or loaded there
        (a model first used after the worker was forked). Takes no lock: another thread of
        the main process may have held it at the fork, and the copy would stay locked."""
        found = self._segmenters.get(model_type)
        if found is None:
            found = self._segmenters[model_type] = self._load(model_type)
        return found

    # -- model work ---------------------------------------------------------------------

    def embed(
        self, model_type: str, image: np.ndarray, resolution: int | str, config: BASAMConfig,
        progress: Progress = no_progress, *, content_key: Optional[str] = None,
        original_size: Optional[tuple[int, int]] = None,
    ):
        """The embedding of `image` at `resolution` ("native" or an S) with `config`, from the
        shared cache or encoded once (in the GPU worker under ZeroGPU, then cached here on the
        CPU): a segmenter.ImageEmbedding. Every caller goes through here (pages, API,
        prefetch). `content_key` / `original_size`: a slide field's (`Segmenter.embed`: then
        `image` may be a function reading it). Raises AppError (out of memory: with a smaller
        size to try)."""
        from ...segmenter import EncoderOutOfMemory

        segmenter = self.segmenter(model_type, progress)
        encoder = self.gpu_work.encoder(model_type) if self.gpu_work else None
        try:
            return segmenter.embed(image, resolution, config, encoder=encoder, content_key=content_key,
                                   original_size=original_size)  # fmt: skip
        except EncoderOutOfMemory as exc:
            raise AppError(str(exc)) from None

    @property
    def encodes(self) -> int:
        """Encoder passes run for this engine's cache so far (counted in this process)."""
        return self.cache.computed

    def run_side(
        self,
        segmenter,
        image: np.ndarray,
        resolution: int | str,
        config: BASAMConfig,
        prompts: Prompts,
        multimask: bool,
        gt: Optional[np.ndarray],
        *,
        content_key: Optional[str] = None,
        original_size: Optional[tuple[int, int]] = None,
    ) -> SideResult:
        """One side of an event for `segmenter` (one of this engine's): its embedding (`embed`)
        and, when there are prompts, its masks, decoded here (on ZeroGPU too: the decoder is
        small, and a GPU call per click would cost the visitor a worker's start and quota).
        Raises AppError."""
        model_type = next(name for name, found in list(self._segmenters.items()) if found is segmenter)
        emb = self.embed(model_type, image, resolution, config, content_key=content_key, original_size=original_size)
        if prompts.empty:
            return SideResult(emb.config, emb.size, emb.encode_seconds, emb.source, precision=emb.precision, key=emb.key)
        with self._decodes_lock:
            self.decodes += 1
        return replace(decode_side(segmenter, emb, prompts, multimask, gt), key=emb.key)

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._segmenters)

    def new_folder(self, under: str = "") -> Path:
        """A fresh folder for one session's (or, `under` "api", one API call's) files."""
        folder = self.work_dir / under / uuid.uuid4().hex[:16]
        folder.mkdir(parents=True)
        return folder

    def prune(self, under: str, max_age_s: float) -> None:
        """Delete the folders under `under` older than `max_age_s` (API calls' files: by
        then the client has fetched them from Gradio's own copy)."""
        now = time.time()
        root = self.work_dir / under
        for folder in root.iterdir() if root.is_dir() else ():
            try:
                if now - folder.stat().st_mtime > max_age_s:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:  # another call pruned it first
                pass

    def forget(self, session: Optional["Session"]) -> None:
        """Delete a closed session's files (gr.State's delete_callback)."""
        if session is not None and session.folder is not None and session.folder.parent == self.work_dir:
            shutil.rmtree(session.folder, ignore_errors=True)

    def close(self) -> None:
        """Delete the work folder (display copies, panels, exports)."""
        shutil.rmtree(self.work_dir, ignore_errors=True)

