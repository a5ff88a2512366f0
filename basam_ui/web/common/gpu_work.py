"""The model work in a form a GPU worker process can run (Hugging Face ZeroGPU), and one side's
decode (`decode_side`). No Gradio here.

`spaces.GPU` runs the function it wraps in a *forked* worker: the arguments are pickled in,
the result (or the error) is pickled back, and whatever the function leaves in memory stays
in the worker. So only the encode goes there: it returns the embedding on the CPU, and the
main process keeps it in the engine's one EmbeddingCache. Clicks never ask for the GPU: the
page decodes them in the browser, or the main process decodes them on the CPU with
`decode_side` (the prompt encoder and mask decoder are small: tens of ms per side at S =
1024, against a worker's start and a share of the visitor's daily quota per GPU call). The
main process keeps the models on the CPU and never initialises CUDA (ZeroGPU forbids it
outside wrapped functions); each encode moves its model to the device inside the worker (a
no-op when a reused worker already did).

Tensors cross as `TensorBytes` (by value): `spaces` pickles with multiprocessing's
ForkingPickler, for which torch moves a CPU tensor's storage into shared memory in place,
and each cached embedding would then hold a file descriptor for as long as it is cached.
Errors a user must read (out of memory with the size to try, a box outside the image) come
back as a `Failure` value: ZeroGPU reports any other exception by its class name only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Union

import numpy as np

from ...basam.config import BASAMConfig
from ...prompts import Prompts
from .session import AppError, CandidateMasks, SideResult

if TYPE_CHECKING:
    import torch

    from ...segmenter import Encoder, ImageEmbedding, Segmenter

GPUDecorator = Callable[..., Callable]  # spaces.GPU: (task, duration=seconds or fn of task's args) -> task

# The time an encode asks ZeroGPU for. ZeroGPU refuses a call when the visitor's quota has
# less left than it asks ("30s requested vs. 25s left"), charges the time actually used, and
# serves shorter requests first; so the estimate should cover a slow call but not much more.
# Estimates, not measurements (a local stand-in cannot time a real worker): a worker's start
# (fork, CUDA context, moving the model to the GPU), plus an encoder pass that grows with the
# token count N = (S/16)^2 -- its windowed and MLP parts in proportion to N, its global
# attention (vit_b/l/h) with N^2 -- times 4 for a busy GPU slice. README, "ZeroGPU", lists
# what a visitor is asked for.
START_SECONDS = 10.0
ENCODE_SECONDS_AT_1024 = {"vit_t": 0.3, "vit_b": 0.5, "vit_l": 1.0, "vit_h": 1.5}
GLOBAL_ATTENTION_SHARE_AT_1024 = {"vit_t": 0.0, "vit_b": 0.05, "vit_l": 0.05, "vit_h": 0.05}
MAX_SECONDS = 300  # ZeroGPU's most for one call


@dataclass(frozen=True)
class TensorBytes:
    """A tensor as bytes (torch.save), so that it is pickled by value."""

    data: bytes

    @classmethod
    def of(cls, tensor: "torch.Tensor") -> "TensorBytes":
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(tensor.detach().cpu(), buffer)
        return cls(buffer.getvalue())

    def tensor(self, device: Optional[str] = None) -> "torch.Tensor":
        import io

        import torch

        return torch.load(io.BytesIO(self.data), map_location=device, weights_only=True)


@dataclass(frozen=True)
class Failure:
    """An error inside the worker, returned as a value: its message, for the page."""

    message: str
    out_of_memory: bool = False


def encode_duration(model_type: str, image: np.ndarray, size: int, config: BASAMConfig) -> int:
    """Seconds to ask for an encode at S = `size` (the wrapped encode's arguments)."""
    ratio = (int(size) / 1024) ** 2  # tokens relative to S = 1024
    share = GLOBAL_ATTENTION_SHARE_AT_1024.get(model_type, 0.05)
    work = ENCODE_SECONDS_AT_1024.get(model_type, 1.5) * ((1 - share) * ratio + share * ratio**2)
    return int(min(MAX_SECONDS, START_SECONDS + 4 * work))  # 4x: headroom for a busy GPU slice


def decode_side(
    segmenter: "Segmenter", emb: "ImageEmbedding", prompts: Prompts, multimask: bool, gt: Optional[np.ndarray]
) -> SideResult:
    """One side's masks for `prompts` on an embedded image, with the ground-truth metrics of
    each candidate when `gt` is given. Raises AppError for prompts the model can't take."""
    from ... import metrics

    started = time.perf_counter()
    gt_mae = gt_iou = None
    try:
        points, labels, box = prompts.model_inputs(emb.original_size)
        if gt is not None:  # every candidate's metrics: all of them at full resolution, as logits
            logits, scores, _ = segmenter.predict_with(emb, points, labels, box, multimask_output=multimask,
                                                       return_logits=True)  # fmt: skip
            masks = logits > segmenter.sam.mask_threshold
            gt_mae = tuple(metrics.mae(metrics.probability(lg), gt) for lg in logits)
            gt_iou = tuple(metrics.iou(m, gt) for m in masks)
        else:  # a click: only the shown candidate at full resolution, the others when picked
            best, scores, low_res = segmenter.predict_with(emb, points, labels, box, multimask_output=multimask,
                                                           full_res="best")  # fmt: skip
            masks = CandidateMasks(low_res, {int(np.argmax(scores)): best[0]}, emb.input_size, emb.original_size,
                                   segmenter.sam.mask_threshold)  # fmt: skip
    except ValueError as exc:  # e.g. a box entirely outside the image
        raise AppError(str(exc)) from None
    return SideResult(
        emb.config, emb.size, emb.encode_seconds, emb.source,
        decode_seconds=time.perf_counter() - started,
        masks=masks,
        scores=np.asarray(scores, dtype=np.float64),
        choice=int(np.argmax(scores)),
        gt_mae=gt_mae,
        gt_iou=gt_iou,
        precision=emb.precision,
    )


class GpuWork:
    """Encodes run under `gpu` (spaces.GPU), on `device`, for the models that
    `segmenter_of(model_type)` gives (in the worker: the forked copy of the engine's).

    `encoder(model_type)` is what `Segmenter.embed(encoder=...)` takes, so the cache lookup
    and the storing stay in the main process.
    """

    def __init__(self, segmenter_of: Callable[[str], "Segmenter"], device: str, gpu: GPUDecorator):
        self._segmenter_of = segmenter_of
        self.device = str(device)
        self._encode = gpu(self.encode_here, duration=encode_duration)

    def encoder(self, model_type: str) -> "Encoder":
        """An encoder for Segmenter.embed: runs in the worker, returns the CPU embedding;
        raises EncoderOutOfMemory with the worker's message."""
        from ...segmenter import EncoderOutOfMemory

        def encode(image: np.ndarray, size: int, config: BASAMConfig) -> "torch.Tensor":
            out = self._encode(model_type, image, size, config)
            if isinstance(out, Failure):
                raise EncoderOutOfMemory(out.message)
            return out.tensor()

        return encode

    # -- what runs inside the worker --------------------------------------------------------

    def encode_here(self, model_type: str, image: np.ndarray, size: int, config: BASAMConfig) -> Union[TensorBytes, Failure]:
        """An encoder pass on the device; the embedding comes back on the CPU."""
        from ...segmenter import EncoderOutOfMemory

        segmenter = self._on_device(model_type)
        try:
            return TensorBytes.of(segmenter.encode_uncached(image, size, config))
        except EncoderOutOfMemory as exc:
            return Failure(str(exc), out_of_memory=True)

    def _on_device(self, model_type: str) -> "Segmenter":
        segmenter = self._segmenter_of(model_type)
        segmenter.sam.to(self.device)
        return segmenter
