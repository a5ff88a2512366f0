"""The decoder exported to ONNX (basam_ui/onnx_decoder.py) gives PyTorch's logits, its cache
and background export, and the embedding payload the browser receives."""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from basam_ui import onnx_decoder
from basam_ui.decoder import decode_masks
from basam_ui.models import random_sam
from basam_ui.onnx_decoder import (
    DecoderExport,
    DecoderExports,
    decoder_identity,
    decoder_onnx_path,
    embedding_from_payload,
    embedding_payload,
    prompt_arrays,
    select_candidates,
)
from onnx_exports import Unexportable, exported_decoder

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# prompts in the S x S input frame at S = 1024 (scaled for other S): name -> (points, labels, box, with a mask input)
CASES = {
    "point": ([[500, 300]], [1], None, False),
    "points": ([[500, 300], [200, 600]], [1, 0], None, False),
    "box": (None, None, [100, 150, 700, 600], False),
    "box+points": ([[400, 380], [650, 200]], [1, 0], [100, 150, 700, 600], False),
    "mask+point": ([[500, 300]], [1], None, True),
    "mask": (None, None, None, True),
}


@functools.cache
def session(path: Path) -> "ort.InferenceSession":
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, embedding: torch.Tensor, points, labels, box, mask) -> tuple[np.ndarray, np.ndarray]:
    coords, kinds = prompt_arrays(points, labels, box)
    side = embedding.shape[-1] * 4
    feeds = {
        "image_embeddings": embedding.numpy(),
        "point_coords": coords,
        "point_labels": kinds,
        "mask_input": mask.numpy() if mask is not None else np.zeros((1, 1, side, side), np.float32),
        "has_mask_input": np.array([1.0 if mask is not None else 0.0], np.float32),
    }
    return tuple(session(path).run(None, feeds))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("size", [1024, 2048])
@pytest.mark.parametrize("model", ["vit_t", "vit_b"])
def test_onnx_logits_match_pytorch(request, model: str, size: int, case: str) -> None:
    sam = request.getfixturevalue(model)
    path = exported_decoder(sam, size)
    grid = size // 16
    embedding = torch.randn(1, 256, grid, grid, generator=torch.Generator().manual_seed(size))
    points, labels, box, with_mask = CASES[case]
    scale = size / 1024
    points = None if points is None else np.array(points, np.float32) * scale
    labels = None if labels is None else np.array(labels, np.float32)
    box = None if box is None else np.array(box, np.float32) * scale
    points_t = None if points is None else torch.from_numpy(points)[None]
    labels_t = None if labels is None else torch.from_numpy(labels)[None]
    box_t = None if box is None else torch.from_numpy(box)[None]
    mask = None
    with torch.inference_mode():
        if with_mask:  # an earlier click's best low-res logits, as the pages feed them back
            earlier, scores = decode_masks(sam, embedding, torch.tensor([[[300.0, 200.0]]]) * scale, torch.ones(1, 1), None, None, True)
            mask = earlier[:, int(scores.argmax())][:, None].clone()
        low_res, iou = run_onnx(path, embedding, points, labels, box, mask)
        assert low_res.shape == (1, 4, 4 * grid, 4 * grid) and iou.shape == (1, 4)
        for multimask in (False, True):
            want, want_iou = decode_masks(sam, embedding, points_t, labels_t, box_t, mask, multimask)
            got, got_iou = select_candidates(low_res, iou, multimask)
            want, want_iou = want.numpy(), want_iou.numpy()
            assert got.shape == want.shape
            span = float(want.max() - want.min())
            error = float(np.abs(got - want).max())
            assert error <= 1e-4 * span, f"{model} S={size} {case} multimask={multimask}: {error:.3g} of range {span:.3g}"
            np.testing.assert_allclose(got_iou, want_iou, atol=1e-4, rtol=0)


def test_prompt_arrays_follow_embed_prompts() -> None:
    coords, kinds = prompt_arrays(np.array([[1.0, 2.0]]), np.array([1]), None)
    assert coords.tolist() == [[[1.0, 2.0], [0.0, 0.0]]] and kinds.tolist() == [[1.0, -1.0]]  # padding point
    coords, kinds = prompt_arrays(None, None, np.array([1.0, 2.0, 3.0, 4.0]))
    assert coords.tolist() == [[[1.0, 2.0], [3.0, 4.0]]] and kinds.tolist() == [[2.0, 3.0]]  # no padding with a box
    coords, kinds = prompt_arrays(None, None, None)
    assert coords.shape == (1, 0, 2) and kinds.shape == (1, 0)


def test_cache_path_names_the_model_and_size(tmp_path: Path, vit_t) -> None:
    path = decoder_onnx_path("vit_b:0123456789abcdef", 2048, tmp_path)
    assert path.parent == tmp_path and path.suffix == ".onnx"
    assert "0123456789abcdef" in path.name and "s2048" in path.name and ":" not in path.name
    assert decoder_onnx_path("vit_b:0123456789abcdef", 1024, tmp_path) != path
    assert decoder_onnx_path("vit_b:fedcba9876543210", 2048, tmp_path) != path
    assert decoder_identity(vit_t) == "vit_t:random-0"
    with pytest.raises(ValueError, match="multiple of 16"):
        decoder_onnx_path("vit_t:random-0", 1000, tmp_path)


def test_unknown_model_is_named_by_its_decoder_weights() -> None:
    first, second = random_sam("vit_t", seed=1, device="cpu"), random_sam("vit_t", seed=2, device="cpu")
    del first.basam_info, second.basam_info  # as a model built by other code
    assert decoder_identity(first).startswith("vit_t:weights-")
    assert decoder_identity(first) != decoder_identity(second)


def test_background_export_runs_in_a_child_process_and_is_then_cached(tmp_path: Path, vit_t) -> None:
    export = DecoderExports(vit_t, tmp_path).for_size(512)
    assert export.state == "exporting" and not export.ready  # the server decodes meanwhile
    assert export.wait(timeout=600)
    assert export.ready and export.error is None and export.seconds > 0, export.error
    assert export.path == decoder_onnx_path("vit_t:random-0", 512, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [export.path.name]  # no temporary file left
    embedding = torch.randn(1, 256, 32, 32, generator=torch.Generator().manual_seed(1))
    points, labels = np.array([[200.0, 120.0]], np.float32), np.array([1.0], np.float32)
    low_res, iou = run_onnx(export.path, embedding, points, labels, None, None)
    with torch.inference_mode():
        want, _ = decode_masks(vit_t, embedding, torch.from_numpy(points)[None], torch.from_numpy(labels)[None], None, None, True)
    got, _ = select_candidates(low_res, iou, True)
    assert np.abs(got - want.numpy()).max() <= 1e-4 * float(want.max() - want.min())
    again = DecoderExports(vit_t, tmp_path).for_size(512)  # e.g. after a restart
    assert again.ready and again._thread is None  # the cached file, no second export


def test_failed_export_reports_why_and_leaves_no_file(tmp_path: Path, vit_t, monkeypatch) -> None:
    monkeypatch.setattr(onnx_decoder, "DecoderForOnnx", Unexportable)  # what the child process is sent
    export = DecoderExport(vit_t, 1024, tmp_path)
    assert export.state == "idle"
    export.start()
    assert export.wait(timeout=300)
    assert export.failed and not export.ready
    assert export.error.startswith("the mask decoder could not be exported to ONNX at S=1024: GuardOnDataDependentSymNode:")
    assert "\n" not in export.error
    assert list(tmp_path.iterdir()) == []  # neither the cache file nor the temporary one


def test_export_failure_in_this_process_names_the_root_cause(tmp_path: Path, vit_t) -> None:
    with pytest.raises(Exception) as caught:
        onnx_decoder._export(Unexportable(vit_t), 1024, tmp_path / "decoder.onnx")
    assert onnx_decoder._root_cause(caught.value).startswith("GuardOnDataDependentSymNode: Could not guard")
    assert list(tmp_path.iterdir()) == []


def test_embedding_payload_is_float16_with_its_shape() -> None:
    embedding = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(0))
    payload = embedding_payload(embedding)
    assert len(payload) == 8 + 4 + 4 * 4 + 2 * 256 * 64 * 64  # 2 MiB + 28 bytes at S = 1024
    assert payload[:8] == b"BASAMF16"
    assert struct.unpack_from("<5I", payload, 8) == (4, 1, 256, 64, 64)
    assert np.frombuffer(payload, "<f2", count=1, offset=28)[0] == np.float16(embedding[0, 0, 0, 0].item())
    decoded = embedding_from_payload(payload)
    assert decoded.dtype == np.float32 and decoded.shape == (1, 256, 64, 64)
    np.testing.assert_allclose(decoded, embedding.numpy(), rtol=2**-11, atol=2**-24)
    assert len(embedding_payload(torch.zeros(1, 256, 128, 128))) == 28 + 8 * 2**20  # 8 MiB at 2048


def test_embedding_payload_refuses_values_float16_cannot_hold() -> None:
    with pytest.raises(ValueError, match="float16"):
        embedding_payload(torch.full((1, 256, 16, 16), 1e5))
    with pytest.raises(ValueError, match="BASAMF16"):
        embedding_from_payload(b"not a payload at all")

