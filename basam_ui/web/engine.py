"""The app's shared engine: the models (loaded on first use), the one embedding cache every
session shares, and the work folder of the sessions' files; `run_side`, the model work of
an event (one side: encode or fetch the embedding, decode the masks). No Gradio here.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ..basam.config import BASAMConfig
from .session import SIZES, NATIVE, DEFAULT_SIZE, AppError, Progress, Prompts, Session, SideResult, no_progress

ModelLoader = Callable[[], Any]  # () -> a Sam module on its device


class AppEngine:
    """The models and the embedding cache, shared by every session.

    `loaders` maps model type -> a function that builds it; each model is loaded on first
    use (under a lock) and kept. One `Segmenter` per model, all sharing one EmbeddingCache.
    `gpu` wraps the function that runs the models (spaces.GPU on ZeroGPU).
    """

    def __init__(
        self,
        loaders: Mapping[str, ModelLoader],
        *,
        device: str = "cpu",
        default_model: Optional[str] = None,
        max_size: int = 4096,
        max_pixels: Optional[int] = None,
        cache_bytes: int = 2 << 30,
        cache_dir: Optional[str | Path] = None,
        random_weights: bool = False,
        work_dir: Optional[str | Path] = None,
        gpu: Optional[Callable[[Callable], Callable]] = None,
    ):
        from ..cache import EmbeddingCache
        from ..image_io import DEFAULT_MAX_PIXELS

        if not loaders:
            raise ValueError("AppEngine needs at least one model loader")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 256:
            raise ValueError(f"max_size must be an integer >= 256, got {max_size!r}")
        self.loaders = dict(loaders)
        self.device = str(device)  # where the loaders put the models (sets the queue's concurrency)
        self.default_model = default_model or next(iter(self.loaders))
        if self.default_model not in self.loaders:
            raise ValueError(f"default model {self.default_model!r} is not among {list(self.loaders)}")
        self.max_size = max_size
        self.max_pixels = max_pixels or DEFAULT_MAX_PIXELS
        self.random_weights = random_weights
        self.cache = EmbeddingCache(cache_bytes, cache_dir)
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="basam-ui-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._segmenters: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.run_side = gpu(run_side) if gpu else run_side

    @property
    def model_types(self) -> list[str]:
        return list(self.loaders)

    def size_choices(self) -> list[str]:
        """Sizes offered in the page: those <= max_size, then "native" (capped at max_size)."""
        return [str(s) for s in SIZES if s <= self.max_size] + [NATIVE]

    @property
    def default_size(self) -> str:
        return str(DEFAULT_SIZE) if DEFAULT_SIZE <= self.max_size else NATIVE

    def segmenter(self, model_type: str, progress: Progress = no_progress):
        """The Segmenter for `model_type`, loading the model on first use."""
        from ..loading import CheckpointError
        from ..segmenter import Segmenter

        if model_type not in self.loaders:
            raise AppError(f"unknown model {model_type!r}; this server has {', '.join(self.loaders)}")
        with self._lock:
            found = self._segmenters.get(model_type)
            if found is None:
                progress(0.0, f"loading {model_type}…")
                try:
                    sam = self.loaders[model_type]()
                except CheckpointError as exc:
                    raise AppError(str(exc)) from None
                found = Segmenter(sam, cache=self.cache, max_native_size=self.max_size)
                self._segmenters[model_type] = found
            return found

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


def run_side(
    segmenter,
    image: np.ndarray,
    resolution: int | str,
    config: BASAMConfig,
    prompts: Prompts,
    multimask: bool,
    gt: Optional[np.ndarray],
) -> SideResult:
    """Encode (or fetch) one side's embedding and, when there are prompts, decode its masks.
    The model work of an event, kept in one function so ZeroGPU can wrap it."""
    from .. import metrics
    from ..segmenter import EncoderOutOfMemory

    try:
        emb = segmenter.embed(image, resolution, config)
    except EncoderOutOfMemory as exc:
        raise AppError(str(exc)) from None
    result = SideResult(config, emb.size, emb.encode_seconds, emb.source)
    if prompts.empty:
        return result
    points = np.array([[x, y] for x, y, _ in prompts.points], dtype=np.float64) if prompts.points else None
    labels = np.array([label for _, _, label in prompts.points]) if prompts.points else None
    box = np.array(prompts.box, dtype=np.float64) if prompts.box else None
    started = time.perf_counter()
    try:
        logits, scores, _ = segmenter.predict_with(
            emb, points, labels, box, multimask_output=multimask, return_logits=True
        )
    except ValueError as exc:  # e.g. a box entirely outside the image
        raise AppError(str(exc)) from None
    masks = logits > segmenter.sam.mask_threshold
    gt_mae = gt_iou = None
    if gt is not None:
        gt_mae = tuple(metrics.mae(metrics.probability(lg), gt) for lg in logits)
        gt_iou = tuple(metrics.iou(m, gt) for m in masks)
    return replace(
        result,
        decode_seconds=time.perf_counter() - started,
        masks=masks,
        scores=np.asarray(scores, dtype=np.float64),
        choice=int(np.argmax(scores)),
        gt_mae=gt_mae,
        gt_iou=gt_iou,
    )

