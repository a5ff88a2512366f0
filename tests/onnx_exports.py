"""ONNX test helpers: the decoder's files, exported once per test process for each (model, S)
and shared by the test files that need them (an export takes several seconds), and a decoder
that cannot be exported."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Optional

from torch import nn

from basam_ui.onnx_decoder import DecoderForOnnx, decoder_identity, decoder_onnx_path, export_decoder

_folder: Optional[Path] = None
_lock = threading.Lock()


def exported_decoder(sam: nn.Module, size: int) -> Path:
    """The ONNX file of `sam`'s decoder at S = `size`, exported in this process on first use
    (the server's background path, a child process, costs ~2x as long; one test covers it)."""
    global _folder
    with _lock:
        if _folder is None:
            _folder = Path(tempfile.mkdtemp(prefix="basam-onnx-tests-"))
            atexit.register(shutil.rmtree, _folder, ignore_errors=True)
        path = decoder_onnx_path(decoder_identity(sam), size, _folder)
        if not path.is_file():
            export_decoder(sam, size, path)
    return path


class Unexportable(DecoderForOnnx):
    """A decoder whose forward branches on its input's values, which torch.export refuses."""

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        if image_embeddings.sum() > 0:
            return image_embeddings, image_embeddings
        return -image_embeddings, image_embeddings
