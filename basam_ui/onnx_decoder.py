"""SAM's prompt encoder + mask decoder as an ONNX model, for decoding clicks in the browser.

One export per (model, S): the graph takes an image embedding (1, 256, S/16, S/16), prompt
points already in the S x S input frame with SAM's labels (1 foreground, 0 background, 2/3
box corners, -1 padding) and a mask input with a has-mask flag, and returns all four of
SAM's candidates: low-res logits (1, 4, S/4, S/4) and predicted IoUs (1, 4). Candidate 0 is
the single-mask answer, 1..3 the multimask ones (`select_candidates`): one file serves both,
with no control flow in the graph, for the cost of one extra hypernetwork product per
low-res pixel.

Unlike `segment_anything.utils.onnx.SamOnnxModel` (1024-px point scaling, a 64 x 64 dense
positional encoding), S comes from the embedding's shape: points are normalised by S and the
dense positional encoding is computed in the graph for the S/16 grid (the file holds the
grid's coordinates, 128 KB at S = 2048, not a 16 MB table). The mask decoder runs
`lean_decoder`'s forward where the decoder has SAM's structure (the same logits as
`decoder.decode_masks`). A server exports in the background, in a child process
(`DecoderExports`), and decodes clicks itself until the file is ready.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from .lean_decoder import lean_predict_all_masks, supports_lean
from .models import model_info
from .vocabulary import PATCH, check_size

OPSET = 18  # torch.onnx's dynamo exporter's own opset (converting down fails); onnxruntime-web runs it
EXPORT_VERSION = 1  # in the cached file's name: bump when the graph's inputs or arithmetic change
INPUT_NAMES = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")
OUTPUT_NAMES = ("low_res_masks", "iou_predictions")


class DecoderForOnnx(nn.Module):
    """The prompt encoder and mask decoder of a SAM model as one traceable forward.

    Arguments (of `forward`):
        image_embeddings: (1, 256, g, g) float32, g = S / 16.
        point_coords: (1, N, 2) float32, (x, y) in the S x S input frame, before SAM's +0.5.
        point_labels: (1, N) float32: 1 / 0 points, 2 / 3 box corners, -1 padding (add one
            padding point when there is no box, as `decoder.embed_prompts` does; see
            `prompt_arrays`).
        mask_input: (1, 1, 4g, 4g) float32 low-res logits (zeros when there is none).
        has_mask_input: (1,) float32, 1 when mask_input holds a mask, else 0.
    Returns:
        low_res_masks (1, 4, 4g, 4g) and iou_predictions (1, 4), float32.
    """

    def __init__(self, sam: nn.Module):
        super().__init__()
        # float32 CPU copies (what is traced, and sent to the exporting child process), whatever
        # the device and precision of the modules the server decodes with
        self.prompt_encoder = copy.deepcopy(sam.prompt_encoder).float().cpu().eval()
        self.mask_decoder = copy.deepcopy(sam.mask_decoder).float().cpu().eval()
        self.lean = supports_lean(self.mask_decoder)
        self.eval()

    def _pe(self, coords: torch.Tensor) -> torch.Tensor:
        """`PositionEmbeddingRandom._pe_encoding` of coords already normalised to [0, 1]."""
        gaussian = self.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        projected = (2 * coords - 1) @ gaussian * (2 * math.pi)
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)

    def _dense_pe(self, grid: int) -> torch.Tensor:
        """`decoder.dense_pe` for a grid x grid embedding: (1, C, grid, grid)."""
        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid  # cumsum(ones) - 0.5, normalised
        y = centres[:, None].expand(grid, grid)
        x = centres[None, :].expand(grid, grid)
        return self._pe(torch.stack([x, y], dim=-1)).permute(2, 0, 1)[None]

    def _sparse(self, coords: torch.Tensor, labels: torch.Tensor, size: int) -> torch.Tensor:
        """Point and box-corner tokens (1, N, C), `decoder.embed_prompts`'s arithmetic without
        boolean indexing: each label selects its learned embedding."""
        pe = self.prompt_encoder
        emb = self._pe((coords + 0.5) / size)
        labels = labels[..., None]
        emb = emb * (labels != -1) + pe.not_a_point_embed.weight * (labels == -1)
        for i, point_embedding in enumerate(pe.point_embeddings):
            emb = emb + point_embedding.weight * (labels == i)
        return emb

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        grid = image_embeddings.shape[-1]
        size = grid * 16
        pe = self.prompt_encoder
        sparse = self._sparse(point_coords, point_labels, size)
        has_mask = has_mask_input.reshape(1, 1, 1, 1)
        dense = has_mask * pe.mask_downscaling(mask_input) + (1 - has_mask) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        image_pe = self._dense_pe(grid)
        if self.lean:
            return lean_predict_all_masks(self.mask_decoder, image_embeddings, image_pe, sparse, dense)
        return self.mask_decoder.predict_masks(image_embeddings, image_pe, sparse, dense)


# -- prompts and candidates -----------------------------------------------------------------


def prompt_arrays(
    points: Optional[np.ndarray], labels: Optional[np.ndarray], box: Optional[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The model's point_coords (1, N, 2) and point_labels (1, N), float32, from prompts in the
    S x S input frame, as `decoder.embed_prompts` builds its tokens: the points (n, 2) with
    labels (n,) of 1 / 0, then the box (4,) [x0, y0, x1, y1] as two corners labelled 2 and 3,
    or without a box one padding point labelled -1; with neither, N = 0 (a mask input alone)."""
    coords, kinds = [], []
    if points is not None:
        coords.append(np.asarray(points, dtype=np.float32).reshape(-1, 2))
        kinds.append(np.asarray(labels, dtype=np.float32).reshape(-1))
    if box is not None:
        coords.append(np.asarray(box, dtype=np.float32).reshape(2, 2))
        kinds.append(np.array([2, 3], dtype=np.float32))
    elif points is not None:
        coords.append(np.zeros((1, 2), dtype=np.float32))
        kinds.append(np.array([-1], dtype=np.float32))
    if not coords:
        return np.zeros((1, 0, 2), dtype=np.float32), np.zeros((1, 0), dtype=np.float32)
    return np.concatenate(coords)[None], np.concatenate(kinds)[None]


def select_candidates(low_res: np.ndarray, iou: np.ndarray, multimask_output: bool) -> tuple[np.ndarray, np.ndarray]:
    """The model's four candidates (1, 4, ...), (1, 4) -> what `decoder.decode_masks` returns:
    candidates 1..3 with `multimask_output`, else candidate 0."""
    wanted = slice(1, None) if multimask_output else slice(0, 1)
    return low_res[:, wanted], iou[:, wanted]


# -- export and its cache -------------------------------------------------------------------


def example_inputs(size: int, points: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes at S = `size` (what the export traces with)."""
    grid = check_size(size) // PATCH
    return (
        torch.zeros(1, 256, grid, grid),
        torch.zeros(1, points, 2),
        torch.ones(1, points),
        torch.zeros(1, 1, 4 * grid, 4 * grid),
        torch.zeros(1),
    )


def export_decoder(sam: nn.Module, size: int, path: str | os.PathLike) -> Path:
    """Export `sam`'s prompt encoder and mask decoder at S = `size` to the ONNX file `path`
    (one self-contained file, about 17 MB in float32), in this process. See `_export`.

    Returns:
        The path written.
    """
    return _export(DecoderForOnnx(sam), size, Path(path))


def export_decoder_in_subprocess(sam: nn.Module, size: int, path: str | os.PathLike, timeout: float = 900.0) -> Path:
    """`export_decoder` in a child Python process: the exporter switches global torch state
    while it traces (e.g. turns oneDNN off) and holds the GIL for seconds, neither of which a
    serving process should see. The decoder's modules go to the child in a private temporary
    file. Raises ExportError with the child's one-line reason.

    Returns:
        The path written.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="basam-onnx-") as folder:
        modules = Path(folder) / "decoder.pt"
        torch.save(DecoderForOnnx(sam), modules)
        # the child imports what this process imports (a Space runs basam_ui from its checkout)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        command = [sys.executable, "-m", "basam_ui.onnx_decoder", str(modules), str(size), str(path)]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ExportError(f"the export took over {timeout:.0f} s and was stopped") from None
    if done.returncode != 0:
        reasons = [line for line in done.stderr.splitlines() if line.startswith(_REASON)]
        raise ExportError(reasons[-1][len(_REASON) :] if reasons else f"the export process ended with code {done.returncode}")
    return path


class ExportError(RuntimeError):
    """The decoder could not be exported to ONNX (the message says why, in one line)."""


_REASON = "export failed: "


def _export(model: nn.Module, size: int, path: Path) -> Path:
    """torch.onnx.export of a `DecoderForOnnx` at S = `size`, the number of points dynamic,
    written atomically: a temporary name in `path`'s folder, renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    points = torch.export.Dim("points", min=0)
    dynamic = {name: None for name in INPUT_NAMES}
    dynamic["point_coords"] = {1: points}
    dynamic["point_labels"] = {1: points}
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # both point inputs share the one dynamic axis, which the exporter remarks on
            warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
            torch.onnx.export(
                model, example_inputs(size), temp, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                opset_version=OPSET, dynamo=True, dynamic_shapes=dynamic, external_data=False, verbose=False,
            )  # fmt: skip
        os.chmod(temp, 0o644)  # mkstemp makes it private; a cache file need not be
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path


def _root_cause(exc: BaseException) -> str:
    """'Type: first line' of the innermost cause (torch.onnx wraps the real one in advice)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def main(argv: Optional[list[str]] = None) -> int:
    """The child of `export_decoder_in_subprocess`: MODULES_FILE SIZE PATH."""
    modules, size, path = argv if argv is not None else sys.argv[1:]
    torch.set_num_threads(1)  # tracing is Python work; leave the cores to the server
    try:
        model = torch.load(modules, weights_only=False)  # our own file, written by the parent just now
        _export(model, int(size), Path(path))
    except Exception as exc:  # reported to the parent in one line
        print(_REASON + _root_cause(exc), file=sys.stderr)
        return 1
    return 0


def decoder_identity(sam: nn.Module) -> str:
    """What names `sam`'s decoder in the cache: `model_info(sam).identity` (checkpoint SHA-256
    prefix or random seed); for a model of unknown origin, a hash of its decoder's weights."""
    identity = model_info(sam).identity
    if not identity.endswith(":unknown"):
        return identity
    digest = hashlib.sha256()
    for module in (sam.prompt_encoder, sam.mask_decoder):
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return f"{identity.rsplit(':', 1)[0]}:weights-{digest.hexdigest()[:16]}"


def decoder_onnx_path(model_identity: str, size: int, folder: str | os.PathLike) -> Path:
    """Where the decoder of the model `model_identity` (`decoder_identity`) exported at S =
    `size` is cached in `folder`: decoder-<identity>-s<S>-v<EXPORT_VERSION>.onnx."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_identity)
    return Path(folder) / f"decoder-{safe}-s{check_size(size)}-v{EXPORT_VERSION}.onnx"


_ONE_EXPORT_AT_A_TIME = threading.Lock()  # each export is a process of ~1.2 GB peak; one at a time


class DecoderExport:
    """One model's decoder exported at one S in the background (a thread waiting on a child
    process, `export_decoder_in_subprocess`), so a server can decode clicks itself until the
    file is ready.

    `start()` begins the export (once; at once "ready" when the cached file exists); `state` is
    "idle", "exporting", "ready" or "failed", with `error` saying why it failed and `seconds`
    how long the export took. Thread-safe.
    """

    def __init__(self, sam: nn.Module, size: int, folder: str | os.PathLike):
        self.size = check_size(size)
        self.path = decoder_onnx_path(decoder_identity(sam), self.size, folder)
        self._sam = sam
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.state = "idle"
        self.error: Optional[str] = None
        self.seconds: Optional[float] = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def start(self) -> "DecoderExport":
        """Start the export unless it has started (or the file is already there); returns self."""
        with self._lock:
            if self.state != "idle":
                return self
            if self.path.is_file():
                self.state = "ready"
                self._done.set()
                return self
            self.state = "exporting"
            self._thread = threading.Thread(target=self._run, name=f"onnx-export-{self.size}", daemon=True)
            self._thread.start()
        return self

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the export has finished (ready or failed) or `timeout` s pass; True when
        it has finished."""
        return self._done.wait(timeout)

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            with _ONE_EXPORT_AT_A_TIME:
                export_decoder_in_subprocess(self._sam, self.size, self.path)
        except Exception as exc:  # any failure means: keep decoding on the server, and say why
            reason = str(exc) if isinstance(exc, ExportError) else _root_cause(exc)
            self.error = f"the mask decoder could not be exported to ONNX at S={self.size}: {reason}"
            self.state = "failed"
        else:
            self.state = "ready"
        finally:
            self.seconds = time.perf_counter() - started
            self._done.set()


class DecoderExports:
    """A model's `DecoderExport`s, one per S, each started on first use (`for_size`)."""

    def __init__(self, sam: nn.Module, folder: str | os.PathLike):
        self.sam = sam
        self.folder = Path(folder)
        self._exports: dict[int, DecoderExport] = {}
        self._lock = threading.Lock()

    def for_size(self, size: int) -> DecoderExport:
        """The export at S = `size`, started if this is its first use."""
        size = check_size(size)
        with self._lock:
            found = self._exports.get(size)
            if found is None:
                found = self._exports[size] = DecoderExport(self.sam, size, self.folder)
        return found.start()

    def started(self, size: int) -> Optional[DecoderExport]:
        """The export at S = `size` when `for_size` has started it, else None (starts nothing)."""
        with self._lock:
            return self._exports.get(check_size(size))


# -- the embedding for the browser ----------------------------------------------------------

PAYLOAD_MAGIC = b"BASAMF16"


def embedding_payload(tensor: torch.Tensor | np.ndarray) -> bytes:
    """An image embedding as the browser receives it: the 8 bytes b"BASAMF16", the number of
    dimensions and each dimension (uint32, little-endian), then the values as float16,
    little-endian, in C order. (1, 256, 64, 64) at S = 1024 is 2 MiB + 28 bytes; at 2048, 8 MiB.
    `decoder.js` decodes it (`decodeEmbedding`). Raises ValueError for values float16 cannot hold."""
    array = tensor.detach().float().cpu().numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
    with np.errstate(over="ignore"):  # overflow is checked just below
        half = np.ascontiguousarray(array, dtype="<f2")
    if not np.all(np.isfinite(half)):
        raise ValueError("the embedding has values float16 cannot hold (beyond +-65504, or not finite)")
    header = PAYLOAD_MAGIC + struct.pack(f"<I{half.ndim}I", half.ndim, *half.shape)
    return header + half.tobytes()


def embedding_from_payload(payload: bytes) -> np.ndarray:
    """`embedding_payload`'s bytes back to a float32 array (what the browser decodes)."""
    if payload[:8] != PAYLOAD_MAGIC:
        raise ValueError("not an embedding payload (it does not start with BASAMF16)")
    (ndim,) = struct.unpack_from("<I", payload, 8)
    shape = struct.unpack_from(f"<{ndim}I", payload, 12)
    offset = 12 + 4 * ndim
    return np.frombuffer(payload, dtype="<f2", offset=offset, count=int(np.prod(shape))).reshape(shape).astype(np.float32)


if __name__ == "__main__":
    sys.exit(main())
