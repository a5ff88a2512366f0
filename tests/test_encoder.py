"""encode/preprocess: vanilla equals the stock encoder, BA-SAM equals a reference written
from the spec's formulas, the setting is per call and thread-safe, bad input is refused."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from basam_ui.basam import BASAMConfig, encode, preprocess, resized_size
from basam_ui.models import randomize_positions as _randomize_positions
from basam_ui.models import small_vit as _small_vit
from basam_ui.models import random_sam
from reference_encoder import reference_encoder

BASAM = BASAMConfig(nsf=True, bmam=True, beta=0.5)
# fp32: the fast path and the naive reference differ only in summation order.
FP32_TOLERANCE = 1e-4  # max abs difference
# bf16 keeps 8 significant bits (~0.4% per rounded value); through the encoder's blocks the
# embedding's relative (Frobenius) error against the fp32 reference stays below 3% (measured
# 0.9-2.1% for these models and sizes), while BA-SAM vs vanilla differs by 3-7% here: each
# bf16 test also checks that its result is nearer the reference than the other setting is.
BF16_RELATIVE_TOLERANCE = 0.03


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected).norm() / expected.norm()).item()


def _encode_bf16(sam: torch.nn.Module, x: torch.Tensor, config: BASAMConfig) -> torch.Tensor:
    """`encode` as the Segmenter runs it in bf16 on the CPU (autocast)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return encode(sam, x, config).float()


@pytest.fixture(scope="module")
def tiny():
    """Seeded random MobileSAM (vit_t) with random attention biases."""
    return _randomize_positions(random_sam("vit_t", seed=0, device="cpu"), seed=1)


@pytest.fixture(scope="module")
def small_vit():
    """A small SAM ViT from segment_anything's builder: 4 blocks, global attention in 1 and 3."""
    return _small_vit(seed=0)


def _image(size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("model_type", ["vit_t", "vit_b"])
def test_vanilla_1024_equals_stock(model_type, tiny):
    sam = tiny if model_type == "vit_t" else _randomize_positions(random_sam("vit_b", seed=1, device="cpu"), seed=3)
    x = _image(1024)
    with torch.no_grad():
        stock = sam.image_encoder(x)
    ours = encode(sam, x)
    assert ours.shape == stock.shape == (1, 256, 64, 64)
    assert _max_diff(ours, stock) <= 1e-4
    assert stock.abs().max().item() > 0.1  # a real comparison, not of two zero tensors


@pytest.mark.parametrize("size", [272, 512, 1536])
@pytest.mark.parametrize("model", ["tiny", "small_vit"])
def test_basam_matches_reference(model, size, request):
    """NSF and BM-AM (beta = 0.5) against the naive encoder; 272 gives a 17x17 grid, so
    windows need padding."""
    sam = request.getfixturevalue(model)
    x = _image(size, seed=size)
    ours = encode(sam, x, BASAM)
    with torch.no_grad():
        expected = reference_encoder(sam, size, nsf=True, bmam=True, beta=0.5)(x)
    assert ours.shape == (1, 256, size // 16, size // 16)
    assert _max_diff(ours, expected) <= FP32_TOLERANCE
    vanilla = encode(sam, x)
    if size == 512:  # and the setting matters: vanilla at this size is measurably different
        assert _max_diff(vanilla, expected) > 1e-3
    # bf16 (the Segmenter's "auto" on CPUs with native bf16): within its tolerance, and
    # nearer the BA-SAM reference than vanilla is
    error = _relative_error(_encode_bf16(sam, x, BASAM), expected)
    assert error <= BF16_RELATIVE_TOLERANCE
    assert error < _relative_error(vanilla, expected)


@pytest.mark.parametrize("model", ["tiny", "small_vit"])
def test_vanilla_other_size_matches_reference(model, request):
    sam = request.getfixturevalue(model)
    x = _image(768, seed=7)
    with torch.no_grad():
        expected = reference_encoder(sam, 768, nsf=False, bmam=False, beta=0.0)(x)
    assert _max_diff(encode(sam, x, BASAMConfig.vanilla()), expected) <= FP32_TOLERANCE
    error = _relative_error(_encode_bf16(sam, x, BASAMConfig.vanilla()), expected)
    assert error <= BF16_RELATIVE_TOLERANCE
    assert error < _relative_error(encode(sam, x, BASAM), expected)


@pytest.mark.parametrize("model", ["tiny", "small_vit"])
def test_nsf_alone_at_1024_is_vanilla(model, request):
    sam = request.getfixturevalue(model)
    x = _image(1024, seed=4)
    nsf_only = encode(sam, x, BASAMConfig(nsf=True, bmam=False))
    assert _max_diff(nsf_only, encode(sam, x)) <= 1e-6
    # BM-AM does act at 1024
    assert _max_diff(encode(sam, x, BASAMConfig(nsf=True, bmam=True, beta=0.5)), nsf_only) > 1e-3


@pytest.mark.parametrize("model, size", [("tiny", 512), ("small_vit", 512), ("small_vit", 1536)])
def test_bmam_with_zero_beta_is_nsf_alone(model, size, request):
    sam = request.getfixturevalue(model)
    x = _image(size, seed=5)
    nsf_only = encode(sam, x, BASAMConfig(nsf=True, bmam=False, beta=0.5))
    assert _max_diff(encode(sam, x, BASAMConfig(nsf=True, bmam=True, beta=0.0)), nsf_only) <= 1e-6
    assert _max_diff(encode(sam, x), nsf_only) > 1e-4  # NSF alone differs from vanilla here


def test_threads_with_different_settings_match_serial(tiny, small_vit):
    """Two settings (and sizes) encoded at the same time in different threads give the same
    embeddings as one after the other: the setting lives in the call, not the model."""
    jobs = [
        (tiny, _image(512, seed=8), BASAMConfig.vanilla()),
        (tiny, _image(512, seed=8), BASAMConfig(nsf=True, bmam=True, beta=1.0)),
        (small_vit, _image(512, seed=9), BASAM),
        (small_vit, _image(768, seed=9), BASAMConfig.vanilla()),
    ]
    serial = [encode(sam, x, config) for sam, x, config in jobs]
    results: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        sam, x, config = jobs[i]
        start.wait()
        results[i] = encode(sam, x, config)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, expected in zip(results, serial):
        assert got is not None and _max_diff(got, expected) <= 1e-5
    assert _max_diff(serial[0], serial[1]) > 1e-3  # the two settings really differ


def test_model_is_not_changed(small_vit):
    before = {k: v.clone() for k, v in small_vit.state_dict().items()}
    encode(small_vit, _image(512), BASAM)
    after = small_vit.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert small_vit.image_encoder.pos_embed.shape == (1, 64, 64, 64)


def test_preprocess_matches_sam_predictor(small_vit):
    """At S = 1024, preprocess gives exactly the tensor SamPredictor feeds the encoder."""
    from segment_anything import SamPredictor

    image = np.random.default_rng(0).integers(0, 256, size=(300, 451, 3), dtype=np.uint8)
    captured = []
    hook = small_vit.image_encoder.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        SamPredictor(small_vit).set_image(image)
    finally:
        hook.remove()
    ours = preprocess(small_vit, image, 1024)
    assert ours.shape == (1, 3, 1024, 1024)
    assert torch.equal(ours, captured[0])


def test_preprocess_other_size_resizes_and_pads(small_vit):
    image = np.random.default_rng(1).integers(0, 256, size=(300, 451, 3), dtype=np.uint8)
    h, w = resized_size(image.shape[:2], 1536)
    assert (h, w) == (int(300 * 1536 / 451 + 0.5), 1536)
    x = preprocess(small_vit, image, 1536)
    assert x.shape == (1, 3, 1536, 1536)
    assert torch.count_nonzero(x[..., h:, :]) == 0
    assert x[..., :h, :].abs().amax() > 0
    # the unpadded part is the normalised resized image
    from segment_anything.utils.transforms import ResizeLongestSide

    resized = torch.as_tensor(ResizeLongestSide(1536).apply_image(image)).permute(2, 0, 1)[None].float()
    expected = (resized - small_vit.pixel_mean) / small_vit.pixel_std
    assert torch.allclose(x[..., :h, :w], expected)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 3, 520, 520), "multiple of 16"),
        ((1, 3, 240, 240), "at least 256"),
        ((1, 3, 512, 256), "square"),
        ((1, 4, 512, 512), "3 channels"),
        ((3, 512, 512), r"\(1, 3, S, S\)"),
        ((2, 3, 512, 512), r"\(1, 3, S, S\)"),
    ],
)
def test_bad_input_rejected(shape, message, small_vit):
    with pytest.raises(ValueError, match=message):
        encode(small_vit, torch.zeros(shape))


@pytest.mark.parametrize("beta", [-0.5, float("nan"), float("inf")])
def test_bad_beta_rejected(beta, small_vit):
    with pytest.raises(ValueError, match="beta"):
        BASAMConfig(beta=beta)
    # a config whose beta was forced past its own check is still refused by encode
    forced = BASAMConfig()
    object.__setattr__(forced, "beta", beta)
    with pytest.raises(ValueError, match="beta"):
        encode(small_vit, _image(256), forced)


def test_bad_preprocess_input_rejected(small_vit):
    image = np.zeros((64, 80, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="multiple of 16"):
        preprocess(small_vit, image, 1000)
    with pytest.raises(ValueError, match="H x W x 3"):
        preprocess(small_vit, np.zeros((64, 80), dtype=np.uint8), 512)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(small_vit, image.astype(np.float32), 512)
    with pytest.raises(ValueError, match="BASAMConfig"):
        encode(small_vit, _image(256), config={"nsf": True})


def test_length_scale_is_one_at_training_size():
    from basam_ui.basam.config import length_scale

    assert length_scale(1024) == 1.0
    assert length_scale(2048) == pytest.approx(math.log(16384) / math.log(4096))
