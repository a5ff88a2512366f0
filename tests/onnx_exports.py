"""The decoder's ONNX files, exported once per test process for each (model, S) and shared by
the test files that need them (an export takes several seconds)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

from torch import nn

from basam_ui.onnx_decoder import DecoderExports, decoder_identity

_folder = Path(tempfile.mkdtemp(prefix="basam-onnx-tests-"))
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
_exports: dict[str, DecoderExports] = {}
_lock = threading.Lock()


def exported_decoder(sam: nn.Module, size: int) -> Path:
    """The ONNX file of `sam`'s decoder at S = `size`, exported by `DecoderExports` (the
    server's background exporter) on first use and waited for."""
    with _lock:
        exports = _exports.setdefault(decoder_identity(sam), DecoderExports(sam, _folder))
    export = exports.for_size(size)
    export.wait()
    assert export.ready, export.error
    return export.path
