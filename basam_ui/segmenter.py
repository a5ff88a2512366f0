"""Segmenter: one encoder pass per (image, model, size, setting); every prompt after that only
runs the prompt encoder and mask decoder. Mirrors `SamPredictor`, at any size S."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from .basam.config import BASAMConfig
from .basam.encoder import check_image, encode, preprocess, resized_size
from .cache import EmbeddingCache, EmbeddingKey
from .decoder import decode_masks, dense_pe, masks_from_logits
from .models import ModelSpec, model_info
from .precision import autocast, check_precision, resolve_decoder_precision, resolve_precision
from .prompts import Prompts
from .vocabulary import DEFAULT_MAX_SIZE, NATIVE, SIZES, Resolution, check_size, native_size, size_to_try

Encoder = Callable[[np.ndarray, int, BASAMConfig], torch.Tensor]  # (image, S, setting) -> embedding


class EncoderOutOfMemory(RuntimeError):
    """Encoding at the asked size did not fit in the device's memory."""


@dataclass(frozen=True)
class ImageEmbedding:
    """An encoded image: the embedding and what is needed to map masks back to its pixels."""

    key: EmbeddingKey
    embedding: torch.Tensor  # (1, 256, S/16, S/16)
    original_size: tuple[int, int]  # (H, W) of the image
    input_size: tuple[int, int]  # (h, w) after resizing the long side to S, before padding
    encode_seconds: float  # 0.0 when it came from the cache
    source: str  # "computed", "memory" or "disk"

    @property
    def size(self) -> int:
        return self.key.size

    @property
    def config(self) -> BASAMConfig:
        return self.key.config

    @property
    def precision(self) -> str:
        """The precision the encoder ran in for this embedding: "fp32", "bf16" or "fp16"."""
        return self.key.precision

    @property
    def cache_hit(self) -> bool:
        return self.source != "computed"


def image_hash(image: np.ndarray) -> str:
    """Content hash of an image array (its shape, dtype and bytes)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{image.shape}|{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


class Segmenter:
    """Image -> cached embedding -> masks at the original resolution, like `SamPredictor`.

    `cache_bytes` bounds the in-memory embedding cache; with `cache_dir`, embeddings are also
    stored on disk and reused across restarts; pass `cache` to share one cache between
    segmenters. `precision` is the image encoder's: "auto" (bf16 autocast on CUDA where
    supported, else fp16; bf16 on CPUs with native bf16; fp32 elsewhere), "fp32" or "bf16";
    `encoder_precision` is the one it resolved to, `decoder_precision` the prompt encoder's
    and mask decoder's (see `resolve_decoder_precision`). `max_native_size` caps the
    "native" resolution. `lean_decoder` runs the mask decoder as `lean_decoder` rewrites it
    (the same masks, about half the time at S = 2048); False runs SAM's own forward.

    `embed` and `predict_with` are thread-safe and keep no state; `set_image` and `predict`
    hold the current image as `SamPredictor` does.
    """

    def __init__(
        self,
        sam: nn.Module,
        cache_bytes: int = 1 << 30,
        cache_dir: Optional[str | os.PathLike] = None,
        *,
        cache: Optional[EmbeddingCache] = None,
        precision: str = "auto",
        max_native_size: int = DEFAULT_MAX_SIZE,
        lean_decoder: bool = True,
    ):
        self.sam = sam
        self.lean_decoder = lean_decoder
        self.cache = cache if cache is not None else EmbeddingCache(cache_bytes, cache_dir)
        self.precision = check_precision(precision)  # as asked
        self.encoder_precision = resolve_precision(precision, self.device)  # as run: fp32, bf16 or fp16
        self.decoder_precision = resolve_decoder_precision(precision, self.encoder_precision, self.device)
        self.max_native_size = max_native_size
        self.model = model_info(sam)
        self.encoder_calls = 0
        self._count_lock = threading.Lock()
        self._current: Optional[ImageEmbedding] = None
        self._dense_pe: dict[int, torch.Tensor] = {}  # per embedding grid: the same for every prompt

    @classmethod
    def from_spec(cls, spec: ModelSpec, cache: EmbeddingCache, sam: Optional[nn.Module] = None) -> "Segmenter":
        """A Segmenter on `cache` for the model options `spec` (its precision; the model is
        loaded from it unless `sam` is given): what precompute, eval and Ray workers run."""
        return cls(sam if sam is not None else spec.load(), cache=cache, precision=spec.precision)

    @property
    def device(self) -> torch.device:
        return self.sam.pixel_mean.device

    # -- encoding -----------------------------------------------------------------------

    def resolve_size(self, original_size: tuple[int, int], resolution: Resolution) -> int:
        """S for a resolution: an int (a multiple of 16, >= 256) or "native" (the long side,
        rounded up to a multiple of 16, at most `max_native_size`)."""
        if resolution == NATIVE:
            return native_size(original_size, self.max_native_size)
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
            raise ValueError(f"resolution must be a size like {SIZES} or '{NATIVE}', got {resolution!r}")
        return check_size(resolution, "resolution")

    def embed(
        self,
        image: np.ndarray,
        resolution: Resolution = 1024,
        config: Optional[BASAMConfig] = None,
        *,
        encoder: Optional[Encoder] = None,
        content_key: Optional[str] = None,
        original_size: Optional[tuple[int, int]] = None,
    ) -> ImageEmbedding:
        """Encode an image, or fetch its embedding from the cache.

        Arguments:
          image: H x W x 3 uint8 RGB; with `content_key`, also a function returning it, called
            only when the embedding has to be computed.
          resolution: the encoder input size S (a multiple of 16, at least 256) or "native".
          config: the BA-SAM setting; None is vanilla SAM.
          encoder: on a cache miss, `encoder(image, S, config)` runs in place of
            `encode_uncached` (the app passes one that encodes in a GPU worker process).
          content_key: what identifies the image's pixels in the cache instead of a hash of
            them (a slide field: the slide's fingerprint and the field), so a cached field
            needs no pixels read; `original_size` (H, W) must come with it.

        Returns:
          The ImageEmbedding: the (1, 256, S/16, S/16) embedding, the sizes that map masks
          back to the image, the encode time and where it came from ("computed", "memory",
          "disk"). Raises EncoderOutOfMemory naming a smaller size to try.
        """
        config = config if config is not None else BASAMConfig.vanilla()
        if content_key is None:
            check_image(image)
            original_size = (int(image.shape[0]), int(image.shape[1]))
            content_key = image_hash(image)
        elif original_size is None:
            raise ValueError("a content_key needs the image's original_size (H, W)")
        original_size = (int(original_size[0]), int(original_size[1]))
        size = self.resolve_size(original_size, resolution)
        key = EmbeddingKey(content_key, self.model.identity, size, config, self.encoder_precision)
        started = time.perf_counter()
        encode_fn = encoder or self._encode

        def compute() -> torch.Tensor:
            pixels = image() if callable(image) else image
            check_image(pixels)
            if pixels.shape[:2] != original_size:
                raise ValueError(f"the image read is {pixels.shape[:2]}, its key says {original_size}")
            return encode_fn(pixels, size, config)

        embedding, source = self.cache.get(key, compute, self.device)
        seconds = time.perf_counter() - started if source == "computed" else 0.0
        return ImageEmbedding(key, embedding, original_size, resized_size(original_size, size), seconds, source)

    def encode_uncached(self, image: np.ndarray, size: int, config: BASAMConfig) -> torch.Tensor:
        """One encoder pass at S = `size`, not looked up in or stored to the cache (what `embed`
        runs on a miss): (1, 256, S/16, S/16) float32 on this segmenter's device. Raises
        EncoderOutOfMemory."""
        return self._encode(image, size, config)

    def _encode(self, image: np.ndarray, size: int, config: BASAMConfig) -> torch.Tensor:
        with self._count_lock:
            self.encoder_calls += 1
        try:
            with torch.inference_mode(), autocast(self.encoder_precision, self.device):
                x = preprocess(self.sam, image, size)
                return encode(self.sam, x, config).float()
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise self._oom(size) from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
                raise self._oom(size) from exc
            raise

    def _oom(self, size: int) -> EncoderOutOfMemory:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = size_to_try(size)
        hint = f"; try {smaller} or smaller" if smaller else ""
        return EncoderOutOfMemory(
            f"out of memory encoding at size {size} on {self.device}: choose a smaller inference size{hint}"
        )

    # -- prompting ----------------------------------------------------------------------

    def predict_with(
        self,
        embedding: ImageEmbedding,
        point_coords: Optional[np.ndarray] = None,
        point_labels: Optional[np.ndarray] = None,
        box: Optional[np.ndarray] = None,
        mask_input: Optional[np.ndarray] = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        *,
        full_res: str = "all",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for prompts on an embedded image, as `SamPredictor.predict`. Thread-safe.

        Arguments:
          embedding: from `embed`.
          point_coords: (N, 2) points as (x, y) in original pixels; outside the image they are
            clipped to its last pixel (0..W-1, 0..H-1).
          point_labels: (N,) 1 for the object, 0 for the background.
          box: (4,) x0, y0, x1, y1 in original pixels (clipped to the image's border).
          mask_input: (1, S/4, S/4) low-res logits from an earlier call.
          multimask_output: three candidates (True) or one.
          return_logits: masks as float logits instead of bool.
          full_res: "all" brings every candidate to H x W; "best" (a click's lean path) only
            the one with the highest predicted IoU, so masks is (1, H, W), and
            `masks_from_low_res` brings any other to full resolution when asked.

        Returns:
          (masks (C, H, W), predicted IoUs (C,), low-res logits (C, S/4, S/4)) as NumPy
          arrays. Raises PromptError (a ValueError) for prompts the model can't take.
        """
        if full_res not in ("all", "best"):
            raise ValueError(f"full_res must be 'all' or 'best', got {full_res!r}")
        prompts = Prompts.from_arrays(point_coords, point_labels, box, mask_input)
        points, labels, box_xyxy = prompts.model_inputs(embedding.original_size)
        scale = np.array(embedding.input_size[::-1], dtype=np.float64) / np.array(
            embedding.original_size[::-1], dtype=np.float64
        )
        device = self.device
        with torch.inference_mode():
            points_t = labels_t = box_t = mask_t = None
            if points is not None:
                points_t = torch.as_tensor(points * scale, dtype=torch.float32, device=device)[None]
                labels_t = torch.as_tensor(labels, dtype=torch.float32, device=device)[None]
            if box_xyxy is not None:
                box_t = torch.as_tensor(box_xyxy * np.tile(scale, 2), dtype=torch.float32, device=device)[None]
            if prompts.mask_input is not None:
                mask_t = torch.as_tensor(prompts.mask_input, device=device)[None]
                if mask_t.ndim == 3:
                    mask_t = mask_t[None]
            with autocast(self.decoder_precision, device):
                low_res, iou = decode_masks(
                    self.sam, embedding.embedding, points_t, labels_t, box_t, mask_t, multimask_output,
                    image_pe=self._image_pe(embedding.embedding.shape[-1]), lean=self.lean_decoder,
                )  # fmt: skip
            low_res, iou = low_res[0].float(), iou[0].float()
            chosen = low_res if full_res == "all" else low_res[int(iou.argmax())][None]
            masks = self._to_image(embedding, chosen, return_logits)
            return masks.cpu().numpy(), iou.cpu().numpy(), low_res.cpu().numpy()

    def masks_from_low_res(
        self, embedding: ImageEmbedding, low_res: np.ndarray, return_logits: bool = False
    ) -> np.ndarray:
        """Masks at the image's resolution from low-res logits.

        Arguments:
          embedding: the embedding the logits were decoded from.
          low_res: (C, S/4, S/4) logits from `predict_with`.
          return_logits: float logits instead of bool masks.

        Returns:
          (C, H, W) masks.
        """
        with torch.inference_mode():
            logits = torch.as_tensor(np.asarray(low_res, dtype=np.float32), device=self.device)
            return self._to_image(embedding, logits.reshape(-1, *logits.shape[-2:]), return_logits).cpu().numpy()

    def _to_image(self, embedding: ImageEmbedding, low_res: torch.Tensor, return_logits: bool) -> torch.Tensor:
        threshold = None if return_logits else self.sam.mask_threshold
        return masks_from_logits(low_res, embedding.input_size, embedding.original_size, threshold)

    def _image_pe(self, grid: int) -> torch.Tensor:
        found = self._dense_pe.get(grid)
        if found is None:
            with torch.inference_mode():
                found = self._dense_pe[grid] = dense_pe(self.sam.prompt_encoder, grid)
        return found

    # -- SamPredictor-style state -------------------------------------------------------

    def set_image(
        self, image: np.ndarray, resolution: Resolution = 1024, config: Optional[BASAMConfig] = None
    ) -> ImageEmbedding:
        """Encode (or fetch) an image and make it the current image for `predict`.

        Arguments:
          image: H x W x 3 uint8 RGB.
          resolution: S or "native".
          config: the BA-SAM setting; None is vanilla SAM.

        Returns:
          Its ImageEmbedding (see `embed`).
        """
        self._current = self.embed(image, resolution, config)
        return self._current

    @property
    def is_image_set(self) -> bool:
        return self._current is not None

    def get_image_embedding(self) -> torch.Tensor:
        """The current image's embedding (1, 256, S/16, S/16)."""
        if self._current is None:
            raise RuntimeError("no image set: call set_image first")
        return self._current.embedding

    def predict(
        self,
        point_coords: Optional[np.ndarray] = None,
        point_labels: Optional[np.ndarray] = None,
        box: Optional[np.ndarray] = None,
        mask_input: Optional[np.ndarray] = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`predict_with` on the image given to `set_image` (the same arguments and returns)."""
        if self._current is None:
            raise RuntimeError("no image set: call set_image first")
        return self.predict_with(
            self._current, point_coords, point_labels, box, mask_input, multimask_output, return_logits
        )

    def reset_image(self) -> None:
        self._current = None

