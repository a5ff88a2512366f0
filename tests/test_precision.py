"""Precision: what "auto" resolves to, that it reaches the encoder and the cache key, that the
lean predict path gives the same masks, and that bf16 masks agree with fp32's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from basam_ui import precision
from basam_ui import segmenter as segmenter_module
from basam_ui.cache import EmbeddingCache, EmbeddingKey
from basam_ui.segmenter import Segmenter

IMAGE = np.random.default_rng(0).integers(0, 256, size=(200, 300, 3), dtype=np.uint8)


@pytest.fixture
def bf16_detected(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)


@pytest.fixture
def bf16_not_detected(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)


def test_auto_is_bf16_where_detected(bf16_detected, vit_t, monkeypatch):
    assert precision.resolve_precision("auto", torch.device("cpu")) == "bf16"
    seen = []
    real_encode = segmenter_module.encode

    def spy(sam, x, config):  # what the encoder runs under
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return real_encode(sam, x, config)

    monkeypatch.setattr(segmenter_module, "encode", spy)
    seg = Segmenter(vit_t)
    embedding = seg.embed(IMAGE, 256)
    assert seg.encoder_precision == embedding.precision == embedding.key.precision == "bf16"
    assert seg.decoder_precision == "bf16"  # measured to agree >= 99.5% with fp32 (README)
    assert seen == [True]
    assert embedding.embedding.dtype == torch.float32  # stored and decoded in fp32


def test_auto_is_fp32_when_detection_is_off(bf16_not_detected, vit_t):
    assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"
    seg = Segmenter(vit_t)
    assert (seg.precision, seg.encoder_precision, seg.decoder_precision) == ("auto", "fp32", "fp32")
    assert seg.embed(IMAGE, 256).precision == "fp32"


def test_forced_precisions_and_bad_values(bf16_not_detected):
    cpu = torch.device("cpu")
    assert precision.resolve_precision("bf16", cpu) == "bf16"
    assert precision.resolve_precision("fp32", cpu) == "fp32"
    assert precision.resolve_decoder_precision("bf16", "bf16", cpu) == "bf16"
    assert precision.resolve_decoder_precision("fp32", "fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision must be one of"):
        Segmenter(torch.nn.Module(), precision="half")


def test_cpu_detection_reads_torch_capabilities(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": True})
    assert precision.cpu_has_native_bf16()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True})
    assert not precision.cpu_has_native_bf16()


def test_embeddings_of_another_precision_are_not_reused(vit_t, tmp_path):
    cache = EmbeddingCache(1 << 30, tmp_path)
    fp32 = Segmenter(vit_t, cache=cache, precision="fp32")
    bf16 = Segmenter(vit_t, cache=cache, precision="bf16")
    a, b = fp32.embed(IMAGE, 256), bf16.embed(IMAGE, 256)
    assert (a.source, b.source) == ("computed", "computed") and fp32.encoder_calls == bf16.encoder_calls == 1
    assert a.key.filename() != b.key.filename()
    assert not torch.equal(a.embedding, b.embedding)
    assert EmbeddingKey("h", "m", 256, a.config).precision == "fp32"  # the default


def test_lean_predict_path_gives_the_same_masks(vit_t):
    seg = Segmenter(vit_t, precision="fp32")
    embedding = seg.embed(IMAGE, 256)
    prompt = dict(point_coords=np.array([[150.0, 90.0]]), point_labels=np.array([1]))
    masks, scores, low_res = seg.predict_with(embedding, **prompt)
    best, best_scores, best_low = seg.predict_with(embedding, **prompt, full_res="best")
    assert masks.shape == (3, 200, 300) and best.shape == (1, 200, 300)
    np.testing.assert_array_equal(best[0], masks[int(np.argmax(scores))])
    np.testing.assert_array_equal(best_scores, scores)
    np.testing.assert_array_equal(seg.masks_from_low_res(embedding, best_low), masks)
    logits = seg.masks_from_low_res(embedding, best_low[1], return_logits=True)
    assert logits.shape == (1, 200, 300) and logits.dtype == np.float32
    with pytest.raises(ValueError, match="full_res"):
        seg.predict_with(embedding, **prompt, full_res="some")


def test_auto_masks_agree_with_fp32_on_a_photo(bf16_detected, vit_t, shared_images):
    """auto where bf16 is detected (bf16 encoder and decoder) vs fp32, vit_t at 1024 on one
    photo, 3 mixed prompts: the acceptance bounds, 99.5% of pixels on average, 98% for the
    worst mask."""
    from basam_ui.bench.agreement import mask_agreement
    from basam_ui.image_io import load_image
    from basam_ui.models import random_sam, randomize_positions

    sam = randomize_positions(random_sam("vit_t", seed=0, device="cpu"), seed=1)
    (row,) = mask_agreement(sam, "vit_t", [load_image(shared_images[0])], 1024, ("auto",), prompts_per_image=3)
    assert (row.encoder, row.decoder) == ("bf16", "bf16") and len(row.values) == 3
    assert row.mean >= 0.995 and row.worst >= 0.98, row.values
    assert row.mean < 1.0  # bf16 did run: some pixel differs
