"""Embedding cache: an LRU bounded in bytes, optionally backed by safetensors files on disk.

Each key is computed once even when several threads ask for it at the same time; threads
asking for different keys never wait on each other's computation.

The disk store (`cache_dir`) holds one safetensors file per key, written atomically
(temporary name, then rename), so several processes or machines may share the folder. It
is bounded by `disk_bytes`: past the bound, the least recently used files (by the time they
were last written or read) are deleted, never one this cache is reading or writing. Files
hold 16-bit floats (`disk_dtype`, float16 by default: masks decoded from them agree with
fp32-stored ones on > 99.9% of pixels, see README) and metadata saying what produced them;
a file whose metadata does not match its key is refused: treated as a miss, and logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import socket
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from .basam.config import BASAMConfig
from .vocabulary import DEFAULT_DISK_GB, gb_to_bytes

log = logging.getLogger(__name__)

DEFAULT_DISK_BYTES = gb_to_bytes(DEFAULT_DISK_GB)
SUFFIX = ".safetensors"
FORMAT = "basam-ui-embedding/1"
PROJECT_CACHE = Path(".basam-ui") / "cache"


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
        return hashlib.sha256(text.encode()).hexdigest()[:40] + SUFFIX


def default_project_cache_dir(folder: str | os.PathLike) -> Path:
    """The embedding cache of an annotation project in `folder`: `folder/.basam-ui/cache`.

    `basam-ui annotate DIR` uses it when no --cache-dir is given, and so does
    `basam-ui precompute DIR`, so the two find each other's embeddings with no flags."""
    return Path(folder).expanduser() / PROJECT_CACHE


def key_metadata(key: EmbeddingKey) -> dict[str, str]:
    """The key's fields as text, one entry each (every field, whatever the key holds)."""
    return {f.name: _text(getattr(key, f.name)) for f in dataclasses.fields(key)}


def _text(value: object) -> str:
    return repr(value) if dataclasses.is_dataclass(value) else str(value)


def producer_metadata() -> dict[str, str]:
    """Library versions recorded next to the key in every cache file."""
    import safetensors

    from . import __version__

    return {"format": FORMAT, "basam_ui": __version__, "torch": torch.__version__, "safetensors": safetensors.__version__}


def metadata_mismatch(metadata: dict[str, str], key: EmbeddingKey) -> Optional[str]:
    """Why a file's metadata does not belong to `key` (None when every key field matches)."""
    wrong = [
        f"{name}={metadata.get(name)!r} (expected {value!r})"
        for name, value in key_metadata(key).items()
        if metadata.get(name) != value
    ]
    return ", ".join(wrong) or None


class EmbeddingCache:
    """LRU of embeddings bounded by `max_bytes` (tensor bytes), plus an optional disk store
    in `cache_dir` bounded by `disk_bytes` (None: unbounded) holding `disk_dtype` tensors.

    With a disk store, a computed embedding is rounded to `disk_dtype` before it is handed
    out, so it is the same whether it was just computed or read back later.
    """

    def __init__(
        self,
        max_bytes: int = 1 << 30,
        cache_dir: Optional[str | os.PathLike] = None,
        *,
        disk_bytes: Optional[int] = DEFAULT_DISK_BYTES,
        disk_dtype: torch.dtype = torch.float16,
    ):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        if disk_bytes is not None and disk_bytes < 0:
            raise ValueError(f"disk_bytes must be >= 0, got {disk_bytes}")
        self.max_bytes = int(max_bytes)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.disk_bytes = None if disk_bytes is None else int(disk_bytes)
        self.disk_dtype = disk_dtype
        self._items: OrderedDict[EmbeddingKey, torch.Tensor] = OrderedDict()
        self._pending: dict[EmbeddingKey, Future] = {}
        self._busy: dict[Path, int] = {}  # disk files being read or written by this cache
        self._lock = threading.Lock()
        self._disk_lock = threading.Lock()
        self.bytes = 0
        self.computed = 0  # how many times `compute` ran
        self.refused = 0  # disk files whose metadata did not match their key
        self.evicted = 0  # disk files deleted to stay within disk_bytes

    def __contains__(self, key: EmbeddingKey) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def path(self, key: EmbeddingKey) -> Optional[Path]:
        """Where `key` is (or would be) stored on disk; None without a disk store."""
        return None if self.cache_dir is None else self.cache_dir / key.filename()

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
                value = self._save(key, value)
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

    # -- disk store ---------------------------------------------------------------------

    def _load(self, key: EmbeddingKey, device: Optional[torch.device]) -> Optional[torch.Tensor]:
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        with self._using(path):
            try:
                metadata, tensor = self._read_file(path)
            except FileNotFoundError:  # evicted by another process meanwhile
                return None
            except Exception:  # a damaged cache file is recomputed, not fatal
                path.unlink(missing_ok=True)
                return None
            problem = metadata_mismatch(metadata, key)
            if problem:
                self.refused += 1
                log.warning("embedding cache: refusing %s, its metadata does not match its key: %s", path, problem)
                return None
            _touch(path)  # most recently used
        tensor = tensor.float()
        return tensor.to(device) if device is not None else tensor

    def _read_file(self, path: Path) -> tuple[dict[str, str], torch.Tensor]:
        """A cache file's metadata and embedding tensor (as stored)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {}), f.get_tensor("embedding")

    def _save(self, key: EmbeddingKey, value: torch.Tensor) -> torch.Tensor:
        """Write `value` under `key` (atomically) and return it as readers will see it."""
        path = self.path(key)
        if path is None:
            return value
        from safetensors.torch import save_file

        stored = value.detach().to("cpu", self.disk_dtype).contiguous()
        if not bool(torch.isfinite(stored).all()):  # out of the 16-bit range: keep full precision
            stored = value.detach().to("cpu", torch.float32).contiguous()
        metadata = {**key_metadata(key), **producer_metadata(), "dtype": str(stored.dtype).removeprefix("torch.")}
        with self._using(path):
            tmp = path.with_name(f"{path.name}.{temp_tag()}.tmp")
            try:
                save_file({"embedding": stored}, str(tmp), metadata=metadata)
                os.replace(tmp, path)  # readers never see a half-written file
            finally:
                tmp.unlink(missing_ok=True)
            self.enforce_disk_bound()
        return stored.to(value.device, value.dtype)

    def disk_usage(self) -> int:
        """Bytes of the cache files in `cache_dir` (0 without one)."""
        return sum(size for _, _, size in self._files())

    def enforce_disk_bound(self) -> int:
        """Delete the least recently used files until the store fits `disk_bytes`, never a
        file this cache is reading or writing. Returns how many files were deleted."""
        if self.cache_dir is None or self.disk_bytes is None:
            return 0
        with self._disk_lock:
            files = self._files()
            total = sum(size for _, _, size in files)
            deleted = 0
            for _, path, size in sorted(files):
                if total <= self.disk_bytes:
                    break
                with self._lock:
                    if path in self._busy:
                        continue
                    path.unlink(missing_ok=True)
                total -= size
                deleted += 1
            self.evicted += deleted
            return deleted

    def _files(self) -> list[tuple[int, Path, int]]:
        """(last use in ns, path, bytes) of every cache file."""
        found = []
        if self.cache_dir is None:
            return found
        with os.scandir(self.cache_dir) as entries:
            for entry in entries:
                if entry.name.endswith(SUFFIX):
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    found.append((max(st.st_mtime_ns, st.st_atime_ns), Path(entry.path), st.st_size))
        return found

    @contextlib.contextmanager
    def _using(self, path: Path) -> Iterator[None]:
        """Marks `path` as in use while the block runs: eviction skips it."""
        with self._lock:
            self._busy[path] = self._busy.get(path, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._busy.pop(path) - 1
                if left:
                    self._busy[path] = left


def temp_tag() -> str:
    """host.pid.thread: names a temporary file so that a dead writer's leftovers can be found."""
    return f"{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}"


def remove_temp_files(cache_dir: str | os.PathLike, host: str, pid: int) -> int:
    """Delete the temporary files a dead writer (`host`, `pid`) left in `cache_dir`."""
    removed = 0
    for tmp in Path(cache_dir).glob(f"*{SUFFIX}.{host}.{pid}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # read-only store or file gone: the LRU order just stays as it was
        pass
