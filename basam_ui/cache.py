"""Embedding cache: an LRU bounded in bytes, optionally backed by safetensors files on disk.

Each key is computed once even when several threads ask for it at the same time; threads
asking for different keys never wait on each other's computation.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from .basam.config import BASAMConfig


@dataclass(frozen=True)
class EmbeddingKey:
    """What an image embedding depends on: image content, model, encoder size, setting, and
    the precision the encoder ran in ("fp32", "bf16", "fp16"): embeddings made at another
    precision are never reused."""

    image_hash: str
    model: str
    size: int
    config: BASAMConfig
    precision: str = "fp32"

    def filename(self) -> str:
        """A stable file name for the disk cache."""
        text = f"{self.image_hash}|{self.model}|{self.size}|{self.config.nsf}|{self.config.bmam}|{self.config.beta!r}|{self.precision}"
        return hashlib.sha256(text.encode()).hexdigest()[:40] + ".safetensors"


class EmbeddingCache:
    """LRU of embeddings bounded by `max_bytes` (tensor bytes), plus an optional disk store."""

    def __init__(self, max_bytes: int = 1 << 30, cache_dir: Optional[str | os.PathLike] = None):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._items: OrderedDict[EmbeddingKey, torch.Tensor] = OrderedDict()
        self._pending: dict[EmbeddingKey, Future] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.computed = 0  # how many times `compute` ran

    def __contains__(self, key: EmbeddingKey) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(
        self, key: EmbeddingKey, compute: Callable[[], torch.Tensor], device: Optional[torch.device] = None
    ) -> tuple[torch.Tensor, str]:
        """The embedding for `key` and where it came from: "memory", "disk" or "computed".

        `compute` runs at most once per key at a time; if it raises, nothing is stored and
        the error reaches every waiting caller.
        """
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key], "memory"
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = self._pending[key] = Future()
        if not owner:
            return future.result(), "memory"
        try:
            value, source = self._load(key, device), "disk"
            if value is None:
                value, source = compute(), "computed"
                self.computed += 1
                self._save(key, value)
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._insert(key, value)
        future.set_result(value)
        return value, source

    def clear(self) -> None:
        """Forget everything held in memory (the disk store stays)."""
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def _insert(self, key: EmbeddingKey, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return  # larger than the whole budget: hand it out, keep nothing
        self._items[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()

    def _load(self, key: EmbeddingKey, device: Optional[torch.device]) -> Optional[torch.Tensor]:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / key.filename()
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        try:
            tensor = load_file(path)["embedding"]
        except Exception:  # a damaged cache file is recomputed, not fatal
            path.unlink(missing_ok=True)
            return None
        return tensor.to(device) if device is not None else tensor

    def _save(self, key: EmbeddingKey, value: torch.Tensor) -> None:
        if self.cache_dir is None:
            return
        from safetensors.torch import save_file

        path = self.cache_dir / key.filename()
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        metadata = {
            "image_hash": key.image_hash,
            "model": key.model,
            "size": str(key.size),
            "config": repr(key.config),
        }
        save_file({"embedding": value.detach().to("cpu").contiguous()}, str(tmp), metadata=metadata)
        os.replace(tmp, path)  # readers never see a half-written file
