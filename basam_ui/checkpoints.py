"""Official checkpoints: where they come from, where they live, and how they are fetched."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .vocabulary import MODEL_TYPES

CHECKPOINT_DIR_ENV = "BASAM_UI_CHECKPOINT_DIR"

_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


@dataclass(frozen=True)
class CheckpointInfo:
    """One official checkpoint file: its model type, name, source and SHA-256."""

    model_type: str
    filename: str
    url: str
    sha256: str
    size: Optional[int]  # bytes, where the spec gives it
    description: str


REGISTRY: dict[str, CheckpointInfo] = {
    "vit_t": CheckpointInfo(
        "vit_t",
        "mobile_sam.pt",
        "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/weights/mobile_sam.pt",
        "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        40_728_226,
        "MobileSAM (TinyViT encoder)",
    ),
    "vit_b": CheckpointInfo(
        "vit_b",
        "sam_vit_b_01ec64.pth",
        _SAM_URL + "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        375_042_383,
        "SAM ViT-B",
    ),
    "vit_l": CheckpointInfo(
        "vit_l",
        "sam_vit_l_0b3195.pth",
        _SAM_URL + "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        None,
        "SAM ViT-L",
    ),
    "vit_h": CheckpointInfo(
        "vit_h",
        "sam_vit_h_4b8939.pth",
        _SAM_URL + "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2_564_550_879,
        "SAM ViT-H",
    ),
}


class DownloadError(RuntimeError):
    """A checkpoint could not be fetched or did not match its SHA-256."""


def checkpoint_dir(override: Optional[str | os.PathLike] = None) -> Path:
    """The checkpoint folder: `override`, else $BASAM_UI_CHECKPOINT_DIR, else ./checkpoints
    when it exists (running from a clone), else the per-user cache folder."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / "checkpoints"
    if local.is_dir():
        return local
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "basam-ui" / "checkpoints"


def checkpoint_path(model_type: str, directory: Optional[str | os.PathLike] = None) -> Path:
    """Where the official file for `model_type` lives (it may not exist yet)."""
    return checkpoint_dir(directory) / info(model_type).filename


def info(model_type: str) -> CheckpointInfo:
    """The registry entry for `model_type`, or a ValueError listing the known types."""
    try:
        return REGISTRY[model_type]
    except KeyError:
        raise ValueError(
            f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}"
        ) from None


def available_checkpoints(directory: Optional[str | os.PathLike] = None) -> dict[str, Path]:
    """Model type -> path for every official file present in the checkpoint folder."""
    found = {}
    for model_type in MODEL_TYPES:
        path = checkpoint_path(model_type, directory)
        if path.is_file():
            found[model_type] = path
    return found


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manual_download_message(entry: CheckpointInfo, target: Path, reason: str) -> str:
    """One paragraph that lets a user fetch the file by hand."""
    return (
        f"Could not download the {entry.description} checkpoint ({reason}). "
        f"Fetch it by hand from {entry.url} and save it as {target} "
        f"(expected SHA-256 {entry.sha256}; check it with `sha256sum {target.name}`), "
        f"or point basam-ui at another folder with --checkpoint-dir or ${CHECKPOINT_DIR_ENV}."
    )


ProgressFactory = Callable[[Optional[int], str], "object"]


def _tqdm_progress(total: Optional[int], desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def download(
    model_type: str,
    directory: Optional[str | os.PathLike] = None,
    *,
    url: Optional[str] = None,
    sha256: Optional[str] = None,
    progress: Optional[ProgressFactory] = _tqdm_progress,
    timeout: float = 60.0,
) -> Path:
    """Fetch the official checkpoint for `model_type` into the checkpoint folder.

    Streams to a temporary file beside the target, checks SHA-256, then renames; a failed
    or interrupted download leaves nothing under the real name. `url`/`sha256` override the
    registry (tests use a local server). Returns the final path; raises DownloadError.
    """
    entry = info(model_type)
    url = url or entry.url
    expected = (sha256 or entry.sha256).lower()
    target = checkpoint_dir(directory) / entry.filename
    if target.is_file() and sha256_file(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    shown = CheckpointInfo(entry.model_type, entry.filename, url, expected, entry.size, entry.description)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
                raise DownloadError(
                    manual_download_message(shown, target, _reason(exc))
                ) from None
            with response:
                length = response.headers.get("Content-Length")
                bar = progress(int(length) if length else None, entry.filename) if progress else None
                try:
                    while block := response.read(1 << 20):
                        out.write(block)
                        digest.update(block)
                        if bar is not None:
                            bar.update(len(block))
                except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        manual_download_message(shown, target, _reason(exc))
                    ) from None
                finally:
                    if bar is not None:
                        bar.close()
        got = digest.hexdigest()
        if got != expected:
            raise DownloadError(
                f"The file downloaded from {url} has SHA-256 {got}, not the expected {expected}; "
                f"it was discarded and nothing was saved as {target}. "
                + manual_download_message(shown, target, "hash mismatch")
            )
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"network error: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
