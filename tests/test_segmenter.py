"""Segmenter: encoder passes counted and cached, masks aligned with SamPredictor's, prompts checked."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from basam_ui import decoder as decoder_module
from basam_ui import segmenter as segmenter_module
from basam_ui.basam.config import BASAMConfig
from basam_ui.cache import EmbeddingCache, EmbeddingKey
from basam_ui.segmenter import EncoderOutOfMemory, Segmenter, native_size


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic image with a few blobs (random weights don't care, but shapes help)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.float64)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.1, 0.4) * min(height, width)
        image += rng.uniform(0, 255, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


MIXED_PROMPTS = [
    dict(point_coords=np.array([[30.0, 40.0]]), point_labels=np.array([1])),
    dict(box=np.array([10.0, 20.0, 200.0, 150.0])),
    dict(point_coords=np.array([[50.0, 60.0], [120.0, 90.0]]), point_labels=np.array([1, 0]),
         box=np.array([5.0, 5.0, 250.0, 180.0])),
]


def test_one_encoder_pass_per_image_and_setting(vit_t):
    seg = Segmenter(vit_t)
    image = _image(200, 300)
    seg.set_image(image, resolution=256)
    for i in range(20):
        masks, scores, low_res = seg.predict(**MIXED_PROMPTS[i % 3], multimask_output=bool(i % 2))
        assert masks.shape[1:] == (200, 300) and masks.dtype == bool
    assert seg.encoder_calls == 1
    seg.set_image(image, resolution=256, config=BASAMConfig(beta=0.5))
    assert seg.encoder_calls == 2
    seg.set_image(image, resolution=256, config=None)
    assert seg.encoder_calls == 2
    seg.set_image(image.copy(), resolution=256)  # same content, new array
    assert seg.encoder_calls == 2
    seg.set_image(image, resolution=320)  # another size is another key
    assert seg.encoder_calls == 3


def test_lru_respects_byte_bound(vit_t):
    one = 256 * 16 * 16 * 4  # bytes of one (1, 256, 16, 16) fp32 embedding at S=256
    seg = Segmenter(vit_t, cache_bytes=int(2.5 * one))
    images = [_image(100, 120, seed) for seed in range(3)]
    for image in images:
        seg.embed(image, 256)
    assert len(seg.cache) == 2 and seg.cache.bytes <= seg.cache.max_bytes
    seg.embed(images[2], 256)
    assert seg.encoder_calls == 3  # still cached
    seg.embed(images[0], 256)
    assert seg.encoder_calls == 4  # the oldest was evicted
    assert seg.cache.bytes <= seg.cache.max_bytes


def test_disk_cache_survives_a_restart(vit_t, tmp_path):
    image = _image(150, 100)
    first = Segmenter(vit_t, cache_dir=tmp_path)
    a = first.embed(image, 256, BASAMConfig())
    second = Segmenter(vit_t, cache_dir=tmp_path)
    b = second.embed(image, 256, BASAMConfig())
    assert second.encoder_calls == 0 and b.source == "disk"
    assert torch.equal(a.embedding, b.embedding)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1


def test_same_key_from_many_threads_is_computed_once(vit_t):
    seg = Segmenter(vit_t)
    image = _image(180, 240)
    barrier = threading.Barrier(4)
    results = []

    def worker():
        barrier.wait()
        results.append(seg.embed(image, 256).embedding)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seg.encoder_calls == 1
    assert all(torch.equal(r, results[0]) for r in results)


def test_other_keys_do_not_wait_for_a_slow_encode():
    cache = EmbeddingCache(1 << 20)
    release = threading.Event()
    slow_key = EmbeddingKey("a", "m", 256, BASAMConfig())
    fast_key = EmbeddingKey("b", "m", 256, BASAMConfig())

    def slow():
        release.wait(10)
        return torch.zeros(1)

    thread = threading.Thread(target=cache.get, args=(slow_key, slow))
    thread.start()
    started = time.perf_counter()
    value, source = cache.get(fast_key, lambda: torch.ones(1))
    assert source == "computed" and value.item() == 1.0
    assert time.perf_counter() - started < 5 and thread.is_alive()
    release.set()
    thread.join()
    assert slow_key in cache


@pytest.mark.parametrize("height,width", [(301, 517), (517, 301), (333, 333), (97, 1201)])
def test_masks_have_the_original_size(vit_t, height, width):
    seg = Segmenter(vit_t)
    seg.set_image(_image(height, width), resolution=256)
    masks, scores, low_res = seg.predict(point_coords=np.array([[width / 2, height / 2]]), point_labels=np.array([1]))
    assert masks.shape == (3, height, width)
    assert scores.shape == (3,) and low_res.shape == (3, 64, 64)
    logits, _, _ = seg.predict(box=np.array([1, 1, width - 2, height - 2]), multimask_output=False, return_logits=True)
    assert logits.shape == (1, height, width) and logits.dtype == np.float32


def _agreement_with_sam_predictor(sam, image, prompts) -> list[float]:
    from mobile_sam import SamPredictor

    reference = SamPredictor(sam)
    reference.set_image(image)
    seg = Segmenter(sam, precision="fp32")  # alignment, not precision, is checked here
    seg.set_image(image, resolution=1024)
    out = []
    for prompt in prompts:
        ours, _, _ = seg.predict(**prompt, multimask_output=True)
        theirs, _, _ = reference.predict(**prompt, multimask_output=True)
        assert ours.shape == theirs.shape
        for a, b in zip(ours, theirs):
            assert 0.02 < b.mean() < 0.98, "degenerate reference mask: the check would prove nothing"
            out.append(float((a == b).mean()))
    return out


ALIGNMENT_PROMPTS = [
    dict(point_coords=np.array([[700.0, 400.0]]), point_labels=np.array([1])),
    # a box hugging the right/bottom edge of the non-square image
    dict(box=np.array([1500.0, 900.0, 2047.0, 1364.0])),
    dict(point_coords=np.array([[1900.0, 1300.0], [300.0, 200.0]]), point_labels=np.array([1, 0]),
         box=np.array([1200.0, 700.0, 2040.0, 1360.0])),
]


@pytest.fixture(scope="module")
def corgi(shared_images):
    from PIL import Image

    path = next(p for p in shared_images if p.name.startswith("corgi"))
    return np.asarray(Image.open(path).convert("RGB"))


def test_masks_line_up_with_sam_predictor(vit_t, corgi):
    assert corgi.shape[:2] == (1365, 2048)
    agreement = _agreement_with_sam_predictor(vit_t, corgi, ALIGNMENT_PROMPTS)
    assert min(agreement) >= 0.98, agreement


def test_a_one_pixel_shift_breaks_the_alignment_check(vit_t, corgi, monkeypatch):
    original = decoder_module.logits_to_image

    def shifted(low_res, input_size, original_size):
        # move the low-res logits one pixel right and down before mapping them to the image
        return original(torch.roll(low_res, shifts=(1, 1), dims=(-2, -1)), input_size, original_size)

    monkeypatch.setattr(decoder_module, "logits_to_image", shifted)
    agreement = _agreement_with_sam_predictor(vit_t, corgi, ALIGNMENT_PROMPTS)
    assert min(agreement) < 0.98, agreement


def test_native_resolution(vit_t):
    assert native_size((1365, 2048), 4096) == 2048
    assert native_size((1000, 1001), 4096) == 1008
    assert native_size((6000, 4000), 4096) == 4096
    assert native_size((100, 80), 4096) == 256
    seg = Segmenter(vit_t, max_native_size=512)
    emb = seg.embed(_image(300, 700), "native")
    assert emb.size == 512 and emb.embedding.shape == (1, 256, 32, 32)


@pytest.mark.parametrize(
    "prompt,message",
    [
        (dict(), "no prompt"),
        (dict(point_coords=np.array([[1.0, 2.0]]), point_labels=np.array([1, 0])), "1 points but 2 labels"),
        (dict(point_coords=np.array([[1.0, 2.0]]), point_labels=np.array([2])), "labels must be 1"),
        (dict(point_coords=np.array([[1.0, 2.0]])), "together"),
        (dict(box=np.array([50.0, 10.0, 40.0, 60.0])), "x1 > x0"),
        (dict(box=np.array([10.0, 60.0, 40.0, 60.0])), "y1 > y0"),
        (dict(point_coords=np.array([[np.nan, 2.0]]), point_labels=np.array([1])), "finite"),
        (dict(box=np.array([0.0, 0.0, np.inf, 5.0])), "finite"),
        (dict(box=np.array([500.0, 10.0, 600.0, 60.0])), "outside"),
    ],
)
def test_bad_prompts_are_refused(vit_t, prompt, message):
    seg = Segmenter(vit_t)
    seg.set_image(_image(120, 160), 256)
    with pytest.raises(ValueError, match=message):
        seg.predict(**prompt)


def test_points_outside_the_image_are_clipped(vit_t):
    seg = Segmenter(vit_t)
    seg.set_image(_image(120, 160), 256)
    outside, _, _ = seg.predict(point_coords=np.array([[-50.0, 400.0]]), point_labels=np.array([1]), return_logits=True)
    corner, _, _ = seg.predict(point_coords=np.array([[0.0, 119.0]]), point_labels=np.array([1]), return_logits=True)
    np.testing.assert_array_equal(outside, corner)


def test_bad_images_and_sizes(vit_t):
    seg = Segmenter(vit_t)
    with pytest.raises(ValueError, match="uint8 RGB"):
        seg.embed(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="multiple of 16"):
        seg.embed(_image(50, 50), 1000)
    with pytest.raises(ValueError, match="native"):
        seg.embed(_image(50, 50), "huge")
    with pytest.raises(RuntimeError, match="set_image"):
        seg.predict(box=np.array([0, 0, 5, 5]))


def test_out_of_memory_is_clear_and_leaves_the_cache_consistent(vit_t, monkeypatch):
    seg = Segmenter(vit_t)
    image = _image(100, 100)
    real_encode = segmenter_module.encode

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB")

    monkeypatch.setattr(segmenter_module, "encode", no_memory)
    with pytest.raises(EncoderOutOfMemory, match="smaller inference size; try 1536"):
        seg.embed(image, 2048)
    assert len(seg.cache) == 0 and not seg.cache._pending
    monkeypatch.setattr(segmenter_module, "encode", real_encode)
    assert seg.embed(image, 256).source == "computed"
    assert len(seg.cache) == 1


def test_mask_input_round_trip(vit_t):
    seg = Segmenter(vit_t)
    seg.set_image(_image(200, 200), 256)
    _, scores, low_res = seg.predict(point_coords=np.array([[100.0, 100.0]]), point_labels=np.array([1]))
    best = low_res[np.argmax(scores)][None]
    masks, _, _ = seg.predict(point_coords=np.array([[100.0, 100.0]]), point_labels=np.array([1]),
                              mask_input=best, multimask_output=False)
    assert masks.shape == (1, 200, 200)
    with pytest.raises(ValueError, match="64x64"):
        seg.predict(mask_input=np.zeros((1, 256, 256), np.float32))
