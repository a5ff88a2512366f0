"""What the app does, without its layout: the models (`AppEngine`), one user's state
(`Session`), and one function per page event. No Gradio here: `app.py` wires these to
components, and the tests call them directly.

Every event handler takes the engine, the session and the event's inputs and returns a new
`Session` (sessions are never changed in place, so a failed event leaves the old one as it
was). Bad input raises `AppError` with a message for the page. An upload is two events:
`upload_image` (read the file, show it) then `compute` (encode), so a failed encoding still
leaves the image on the page.

Reuse: an embedding depends on (image, model, size S, setting), and the engine's one
`EmbeddingCache` is shared by every session. The SAM side always uses the vanilla setting,
so changing NSF, BM-AM or beta only encodes the BA-SAM side, and a prompt never encodes.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from . import render
from .basam.config import BASAMConfig

SIZES = (1024, 1536, 2048, 3072, 4096)
NATIVE = "native"
DEFAULT_SIZE = 1024
DEFAULT_BETA = 0.1
DISPLAY_MAX_SIDE = 1600  # long side of the canvas copy and of the rendered panels
SIDES = ("SAM", "BA-SAM")
API_FILES_MAX_AGE_S = 3600.0
EXPORT_FORMATS = {"PNG": "png", "COCO RLE (JSON)": "rle", "Polygons (JSON)": "polygons"}

Progress = Callable[[float, str], None]
Point = tuple[float, float, int]
Box = tuple[float, float, float, float]


class AppError(ValueError):
    """A problem to show in the page, in words for its user."""


def _no_progress(fraction: float, text: str) -> None:
    pass


# -- settings and prompts ---------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The page's model settings. `size` is an S like 1024 or "native"."""

    model: str
    size: int | str = DEFAULT_SIZE
    nsf: bool = True
    bmam: bool = True
    beta: float = DEFAULT_BETA
    multimask: bool = False

    @property
    def basam_config(self) -> BASAMConfig:
        """The BA-SAM side's setting. With BM-AM off beta does nothing, so it is dropped from
        the cache key (moving beta then encodes nothing)."""
        try:
            return BASAMConfig(nsf=bool(self.nsf), bmam=bool(self.bmam), beta=float(self.beta) if self.bmam else 0.0)
        except (TypeError, ValueError) as exc:
            raise AppError(f"beta: {exc}") from None


def parse_size(value: int | str, max_size: int) -> int | str:
    """A size from the page or the API ("1024", 2048, "native") -> an int S or "native"."""
    text = str(value).strip().lower()
    if text.startswith(NATIVE):
        return NATIVE
    try:
        size = int(float(text))
    except (ValueError, OverflowError):
        raise AppError(f"size must be one of {', '.join(map(str, SIZES))} or 'native', got {value!r}") from None
    if size < 256 or size % 16:
        raise AppError(f"size must be a multiple of 16 and at least 256, got {size}")
    if size > max_size:
        raise AppError(f"size {size} is over this server's limit of {max_size} (--max-size)")
    return size


@dataclass(frozen=True)
class Prompts:
    """Points (x, y, label) and boxes (x0, y0, x1, y1) in original pixels, in drawing order.
    SAM takes one box: `box` is the last one drawn."""

    points: tuple[Point, ...] = ()
    boxes: tuple[Box, ...] = ()

    @property
    def box(self) -> Optional[Box]:
        return self.boxes[-1] if self.boxes else None

    @property
    def empty(self) -> bool:
        return not self.points and not self.boxes

    def for_export(self) -> dict:
        """The prompts as `export.export_metadata` takes them (the box the model used)."""
        return {
            "points": [[x, y] for x, y, _ in self.points],
            "labels": [label for _, _, label in self.points],
            "box": list(self.box) if self.box else None,
        }


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AppError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def prompts_from_canvas(value: Optional[Mapping[str, Any]]) -> Prompts:
    """The prompts in a PromptCanvas value (sent by the browser, so checked field by field)."""
    if not value:
        return Prompts()
    items: list[tuple[float, str, tuple]] = []
    try:
        for p in value.get("points") or []:
            label = p.get("label")
            if label not in (0, 1) or isinstance(label, bool):
                raise AppError(f"point label must be 1 (positive) or 0 (negative), got {label!r}")
            xy = (_number(p.get("x"), "point x"), _number(p.get("y"), "point y"))
            items.append((_number(p.get("i", 0), "prompt number"), "p", (*xy, int(label))))
        for b in value.get("boxes") or []:
            x0, y0, x1, y1 = (_number(b.get(k), f"box {k}") for k in ("x0", "y0", "x1", "y1"))
            items.append((_number(b.get("i", 0), "prompt number"), "b", (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))
    except AttributeError:  # a list entry that is not an object
        raise AppError("the prompts sent by the page are malformed") from None
    items.sort(key=lambda item: item[0])  # drawing order, so the last box is the newest
    return Prompts(
        points=tuple(v for _, kind, v in items if kind == "p"),
        boxes=tuple(v for _, kind, v in items if kind == "b"),
    )


def canvas_value(image: Optional[Mapping[str, Any]], negative: bool = False) -> Optional[dict]:
    """A fresh PromptCanvas value for a display image ({"url", "width", "height"}), no prompts."""
    if image is None:
        return None
    return {"image": dict(image), "points": [], "boxes": [], "negative": bool(negative)}


def undo_canvas(value: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """The canvas value without its most recent prompt (largest "i", point or box)."""
    if not value or not value.get("image"):
        return dict(value) if value else None
    entries = [("points", p) for p in value.get("points") or []] + [("boxes", b) for b in value.get("boxes") or []]
    if not entries:
        return dict(value)
    kind, last = max(entries, key=lambda entry: entry[1].get("i") or 0)
    return {**value, kind: [q for q in value[kind] if q is not last]}


def clear_canvas(value: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """The canvas value with no prompts."""
    if not value or not value.get("image"):
        return dict(value) if value else None
    return {**value, "points": [], "boxes": []}


# -- results and session ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq=False: compared and hashed by identity (it holds arrays)
class SideResult:
    """One side (SAM or BA-SAM) after an event: how its embedding was obtained, and its masks.

    `masks` (C, H, W) bool at the original resolution, or None before the first prompt;
    `scores` the predicted IoUs; `choice` the candidate shown; `gt_mae`/`gt_iou` per
    candidate when a ground truth is loaded.
    """

    config: BASAMConfig
    size: int
    encode_seconds: float
    source: str  # "computed", "memory" or "disk"
    decode_seconds: float = 0.0
    masks: Optional[np.ndarray] = None
    scores: Optional[np.ndarray] = None
    choice: int = 0
    gt_mae: Optional[tuple[float, ...]] = None
    gt_iou: Optional[tuple[float, ...]] = None

    @property
    def mask(self) -> Optional[np.ndarray]:
        return None if self.masks is None else self.masks[self.choice]


@dataclass(frozen=True, eq=False)
class Session:
    """One browser session's state (kept in gr.State; nothing in it is shared).

    `image_path` is the server-side upload path, never a path the browser names; `folder`
    holds this session's display copy, panels and exports (see AppEngine.forget).
    """

    folder: Optional[Path] = None
    image: Optional[np.ndarray] = None  # H x W x 3 uint8, full resolution
    image_path: Optional[str] = None
    image_name: str = ""
    display: Optional[np.ndarray] = None  # long side <= DISPLAY_MAX_SIDE
    canvas_image: Optional[dict] = None  # {"url", "width", "height"} of the display copy
    gt: Optional[np.ndarray] = None  # H x W bool
    gt_name: str = ""
    prompts: Prompts = field(default_factory=Prompts)
    settings: Optional[Settings] = None  # those the results were made with
    sam: Optional[SideResult] = None
    basam: Optional[SideResult] = None

    def side(self, name: str) -> Optional[SideResult]:
        if name not in SIDES:
            raise AppError(f"side must be one of {SIDES}, got {name!r}")
        return self.sam if name == "SAM" else self.basam


# -- the engine -------------------------------------------------------------------------

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
        from .cache import EmbeddingCache
        from .image_io import DEFAULT_MAX_PIXELS

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

    def segmenter(self, model_type: str, progress: Progress = _no_progress):
        """The Segmenter for `model_type`, loading the model on first use."""
        from .loading import CheckpointError
        from .segmenter import Segmenter

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
    from . import metrics
    from .segmenter import EncoderOutOfMemory

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


def compute(engine: AppEngine, session: Session, settings: Settings, progress: Progress = _no_progress) -> Session:
    """Both sides for the session's image, prompts and ground truth under `settings`: the
    handler after an upload and for every settings change. Embeddings come from the cache
    when they are there; masks are decoded when there are prompts."""
    if session.image is None:
        return replace(session, settings=settings)
    segmenter = engine.segmenter(settings.model, progress)
    resolution = parse_size(settings.size, engine.max_size)
    results = []
    for fraction, name, config, previous in (
        (0.1, "SAM", BASAMConfig.vanilla(), session.sam),
        (0.55, "BA-SAM", settings.basam_config, session.basam),
    ):
        # the same model, size and setting as the last result: its embedding is cached
        cached = previous is not None and session.settings is not None and previous.config == config and (
            session.settings.model, session.settings.size) == (settings.model, settings.size)
        progress(fraction, f"{'decoding' if cached else 'encoding'} {name}…")
        results.append(
            engine.run_side(segmenter, session.image, resolution, config, session.prompts, settings.multimask, session.gt)
        )
    return replace(session, settings=settings, sam=results[0], basam=results[1])


# -- event handlers ---------------------------------------------------------------------


def upload_image(engine: AppEngine, path: Optional[str], *, api: bool = False) -> Session:
    """Upload: a new session (no prompts, ground truth or results) for the file at `path` (the
    server-side upload): the image at full resolution and, unless `api`, its display copy for
    the canvas. `compute` then encodes it. A bad file raises AppError (the old session stays)."""
    from .image_io import load_image

    if not path:
        return Session()
    shown = Path(path).name  # Gradio keeps the uploaded file's own name
    try:
        image = load_image(path, max_pixels=engine.max_pixels)
    except ValueError as exc:  # ImageReadError, ImageTooLargeError
        raise AppError(_with_name(str(exc), path, shown)) from None
    except OSError as exc:
        raise AppError(f"could not read {shown}: {exc.strerror or exc}") from None
    if api:
        return Session(folder=engine.new_folder("api"), image=image, image_path=str(path), image_name=shown)
    display = render.downscale(image, DISPLAY_MAX_SIDE)
    folder = engine.new_folder()
    copy = render.save_jpeg(display, folder / "display.jpg")
    canvas_image = {"url": f"gradio_api/file={copy}", "width": int(image.shape[1]), "height": int(image.shape[0])}
    return Session(
        folder=folder, image=image, image_path=str(path), image_name=shown, display=display, canvas_image=canvas_image
    )


def _with_name(message: str, path: str, name: str) -> str:
    """Error messages name the file as the user called it, not Gradio's temporary path."""
    return message.replace(str(path), name)


def set_prompts(
    engine: AppEngine, session: Session, canvas: Optional[Mapping[str, Any]], settings: Settings,
    progress: Progress = _no_progress,
) -> Session:
    """A prompt was added on the canvas (or undone, or cleared): decode both sides again."""
    if session.image is None or not canvas or not _same_image(session, canvas):
        return session  # an event from before the current upload
    prompts = prompts_from_canvas(canvas)
    return compute(engine, replace(session, prompts=prompts), settings, progress)


def _same_image(session: Session, canvas: Mapping[str, Any]) -> bool:
    shown = canvas.get("image") or {}
    return bool(session.canvas_image) and shown.get("url") == session.canvas_image["url"]


def pick_candidate(session: Session, side: str, index: Any) -> Session:
    """Show candidate `index` of one side's masks (multimask output)."""
    result = session.side(side)
    if result is None or result.masks is None:
        return session
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise AppError(f"candidate must be a number, got {index!r}") from None
    if not 0 <= index < len(result.masks):
        raise AppError(f"{side} has {len(result.masks)} candidates, got candidate {index + 1}")
    picked = replace(result, choice=index)
    return replace(session, sam=picked) if side == "SAM" else replace(session, basam=picked)


def read_ground_truth(engine: AppEngine, path: str, image_hw: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask file -> H x W bool (pixels brighter than half the file's maximum).
    It must have the image's size."""
    from .image_io import load_image

    shown = Path(path).name
    try:
        pixels = load_image(path, max_pixels=engine.max_pixels).max(axis=2)
    except ValueError as exc:
        raise AppError(_with_name(str(exc), path, shown)) from None
    except OSError as exc:
        raise AppError(f"could not read {shown}: {exc.strerror or exc}") from None
    if pixels.shape != tuple(image_hw):
        raise AppError(
            f"the ground-truth mask {shown} is {pixels.shape[1]}x{pixels.shape[0]} but the image is "
            f"{image_hw[1]}x{image_hw[0]}: it must have the same size"
        )
    return pixels > pixels.max() / 2 if pixels.max() > 0 else np.zeros(pixels.shape, dtype=bool)


def set_ground_truth(engine: AppEngine, session: Session, path: Optional[str]) -> Session:
    """Ground-truth upload (None removes it). `compute` then adds MAE and IoU of every
    candidate against it (a decode; the embeddings are cached)."""
    if not path:
        return replace(session, gt=None, gt_name="")
    if session.image is None:
        raise AppError("upload an image first, then its ground-truth mask")
    gt = read_ground_truth(engine, path, session.image.shape[:2])
    return replace(session, gt=gt, gt_name=Path(path).name)


def export_mask_file(engine: AppEngine, session: Session, side: str, fmt: str) -> Optional[Path]:
    """The selected mask of `side` at full resolution as a file ("png", "rle" or
    "polygons", or their labels in EXPORT_FORMATS), with how it was made; None without a mask."""
    from . import export

    fmt = EXPORT_FORMATS.get(fmt, fmt)
    if fmt not in export.EXPORT_FORMATS:
        raise AppError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    result = session.side(side)
    if result is None or result.mask is None or session.settings is None:
        return None
    stem = f"{Path(session.image_name).stem or 'image'}-{'sam' if side == 'SAM' else 'basam'}-{result.size}"
    out_dir = session.folder / "export"
    shutil.rmtree(out_dir, ignore_errors=True)  # one export per session on disk at a time
    return export.export_mask(result.mask, out_dir, stem, export_metadata(engine, session, result), [fmt])[0]


def export_metadata(engine: AppEngine, session: Session, result: SideResult) -> dict:
    """export.export_metadata for one side's result."""
    from . import export
    from .loading import model_info

    assert session.settings is not None
    info = model_info(engine.segmenter(session.settings.model).sam)
    return export.export_metadata(
        info.model_type, info.sha256, result.size, result.config.nsf, result.config.bmam,
        result.config.beta, session.prompts.for_export(),
    )


# -- what the page shows ----------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """Everything the page shows for a session: panel image files, candidate choices as
    (label, index) pairs, and the status text (Markdown)."""

    sam_panel: Optional[Path]
    basam_panel: Optional[Path]
    diff_panel: Optional[Path]
    sam_candidates: list[tuple[str, int]]
    basam_candidates: list[tuple[str, int]]
    sam_choice: Optional[int]
    basam_choice: Optional[int]
    status: str


def candidates(result: Optional[SideResult]) -> list[tuple[str, int]]:
    """Radio choices for a multimask result: "#1 · IoU 0.93" (predicted IoU), best marked."""
    if result is None or result.masks is None or len(result.masks) < 2:
        return []
    best = int(np.argmax(result.scores))
    return [
        (f"#{k + 1} · predicted IoU {score:.3f}{' (best)' if k == best else ''}", k)
        for k, score in enumerate(result.scores)
    ]


def mask_iou(session: Session) -> Optional[float]:
    """IoU between the two shown masks (None before the first prompt)."""
    from . import metrics

    if session.sam is None or session.basam is None or session.sam.mask is None or session.basam.mask is None:
        return None
    return metrics.iou(session.sam.mask, session.basam.mask)


def view(engine: AppEngine, session: Session) -> View:
    """Render the panels (JPEG for the photo panels: 10x faster and 5x smaller than PNG
    at this size; PNG for the difference view, whose pixel classes must stay exact)."""
    if session.image is None or session.display is None:
        return View(None, None, None, [], [], None, None, "Upload an image to start.")
    prompts, hw = session.prompts, session.image.shape[:2]
    session.folder.mkdir(parents=True, exist_ok=True)  # in case an upload in another tab cleared it
    covers = [
        render.mask_coverage(result.mask, session.display.shape[:2]) if result and result.mask is not None else None
        for result in (session.sam, session.basam)
    ]
    panels = [
        render.save_jpeg(render.overlay(session.display, cover, color, prompts.points, prompts.box, hw), session.folder / name)
        for cover, color, name in zip(covers, (render.SAM_COLOR, render.BASAM_COLOR), ("sam.jpg", "basam.jpg"))
    ]
    diff = None
    if covers[0] is not None and covers[1] is not None:
        diff = render.save_png(render.difference(session.display, *covers), session.folder / "difference.png")
    return View(
        panels[0], panels[1], diff,
        candidates(session.sam), candidates(session.basam),
        session.sam.choice if session.sam and session.sam.masks is not None else None,
        session.basam.choice if session.basam and session.basam.masks is not None else None,
        status_text(session),
    )


def setting_label(config: BASAMConfig) -> str:
    """'vanilla', 'NSF', 'BM-AM β=0.1' or 'NSF + BM-AM β=0.1'."""
    parts = (["NSF"] if config.nsf else []) + ([f"BM-AM β={config.beta:g}"] if config.bmam else [])
    return " + ".join(parts) or "vanilla"


def _side_line(name: str, result: SideResult) -> str:
    encode = (
        f"encoded in {result.encode_seconds:.2f} s (cache miss)"
        if result.source == "computed"
        else f"embedding from the cache ({result.source}, hit)"
    )
    line = f"**{name}** ({setting_label(result.config)}, S={result.size}): {encode}"
    if result.masks is not None:
        line += f"; decoded in {result.decode_seconds * 1000:.0f} ms"
    return line


def status_text(session: Session) -> str:
    """IoU between the masks, per-side timings and cache use, ground-truth metrics."""
    if session.sam is None or session.basam is None:
        return f"{session.image_name}: {session.image.shape[1]}x{session.image.shape[0]}" if session.image is not None else ""
    h, w = session.image.shape[:2]
    lines = []
    iou = mask_iou(session)
    if iou is None:
        lines.append(f"{session.image_name} ({w}x{h}): click the image to add a point, drag for a box.")
    else:
        lines.append(f"**IoU between SAM and BA-SAM masks: {iou:.4f}**")
    lines += [_side_line("SAM", session.sam), _side_line("BA-SAM", session.basam)]
    if session.gt is not None:
        if iou is None:
            lines.append(f"Ground truth {session.gt_name} loaded: metrics appear after the first prompt.")
        else:
            parts = []
            for name, result in (("SAM", session.sam), ("BA-SAM", session.basam)):
                k = result.choice
                parts.append(f"{name}: MAE {result.gt_mae[k]:.4f}, IoU {result.gt_iou[k]:.4f}")
            lines.append(f"Against ground truth {session.gt_name} — " + " · ".join(parts) + " (MAE: lower is better)")
    if len(session.prompts.boxes) > 1:
        lines.append("SAM takes one box per prediction: the last box drawn is used, with all points.")
    return "  \n".join(lines)


# -- the API endpoint -------------------------------------------------------------------


def parse_points(text: Any) -> tuple[Point, ...]:
    """API points: JSON [[x, y, label], ...] (label 1 positive, 0 negative; [x, y] means 1)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return ()
    try:
        raw = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise AppError(f"points must be JSON like [[x, y, 1], [x, y, 0]]: {exc}") from None
    if not isinstance(raw, list):
        raise AppError(f"points must be a JSON list like [[x, y, 1]], got {text!r}")
    points = []
    for p in raw:
        if not isinstance(p, (list, tuple)) or len(p) not in (2, 3):
            raise AppError(f"each point must be [x, y] or [x, y, label], got {p!r}")
        label = p[2] if len(p) == 3 else 1
        if label not in (0, 1) or isinstance(label, bool):
            raise AppError(f"point label must be 1 (positive) or 0 (negative), got {label!r}")
        points.append((_number(p[0], "point x"), _number(p[1], "point y"), int(label)))
    return tuple(points)


def parse_box(text: Any) -> Optional[Box]:
    """API box: JSON [x0, y0, x1, y1], or empty for none."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        raw = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise AppError(f"box must be JSON like [x0, y0, x1, y1]: {exc}") from None
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        raise AppError(f"box must be [x0, y0, x1, y1], got {text!r}")
    x0, y0, x1, y1 = (_number(v, "box coordinate") for v in raw)
    return (x0, y0, x1, y1)


def segment(
    engine: AppEngine,
    image_path: str,
    points: Any = "",
    box: Any = "",
    size: int | str = DEFAULT_SIZE,
    nsf: bool = True,
    bmam: bool = True,
    beta: float = DEFAULT_BETA,
    multimask: bool = False,
    model: Optional[str] = None,
    progress: Progress = _no_progress,
) -> tuple[Path, Path, dict]:
    """The API: one image file and prompts in, the SAM and BA-SAM masks (full-resolution
    PNGs with metadata) and an info dict out. Points outside the image are clipped to its
    border by the Segmenter; with multimask, each side returns its best-scored candidate."""
    prompts = Prompts(points=parse_points(points), boxes=(b,) if (b := parse_box(box)) else ())
    if prompts.empty:
        raise AppError("give at least one point or a box")
    settings = Settings(model or engine.default_model, size, bool(nsf), bool(bmam), float(beta), bool(multimask))
    engine.prune("api", API_FILES_MAX_AGE_S)
    session = replace(upload_image(engine, image_path, api=True), prompts=prompts)
    session = compute(engine, session, settings, progress)
    files = [_api_mask_file(engine, session, side) for side in SIDES]
    info = {
        "image_size": [int(session.image.shape[1]), int(session.image.shape[0])],
        "model": settings.model,
        "input_size": session.sam.size,
        "iou_sam_basam": mask_iou(session),
        "sam": _side_info(session.sam),
        "basam": _side_info(session.basam),
    }
    return files[0], files[1], info


def _api_mask_file(engine: AppEngine, session: Session, side: str) -> Path:
    """A side's mask as a PNG with metadata, under the call's own folder (which the next
    export in it would replace, so each side gets a file of its own)."""
    from . import export

    result = session.side(side)
    stem = f"{Path(session.image_name).stem or 'image'}-{'sam' if side == 'SAM' else 'basam'}-{result.size}"
    return export.export_mask(result.mask, session.folder / side.lower(), stem, export_metadata(engine, session, result), ["png"])[0]


def _side_info(result: SideResult) -> dict:
    return {
        "setting": {"nsf": result.config.nsf, "bmam": result.config.bmam, "beta": result.config.beta},
        "encode_seconds": round(result.encode_seconds, 4),
        "cache": result.source,
        "decode_seconds": round(result.decode_seconds, 4),
        "predicted_iou": float(result.scores[result.choice]),
        "area": int(result.mask.sum()),
    }
