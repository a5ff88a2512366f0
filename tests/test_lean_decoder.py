"""lean_decoder: SAM's mask decoder forward rewritten around the image tokens gives the same
low-res logits and IoUs as the decoder's own forward (fp32: up to float reassociation; bf16:
within bf16's error), for SAM's and MobileSAM's decoders, every prompt kind, and any grid."""

from __future__ import annotations

import copy

import pytest
import torch

from basam_ui.decoder import decode_masks
from basam_ui.lean_decoder import supports_lean
from basam_ui.models import random_sam
from basam_ui.precision import autocast

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["vit_t", "vit_b"])
def sam(request):
    model = random_sam(request.param, seed=0, device="cpu")
    # default initialisation leaves the decoder's outputs tiny; larger weights make a wrong
    # term show
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.mask_decoder.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model


def prompt_sets(grid: int):
    size = 16 * grid
    points = torch.tensor([[[0.2 * size, 0.3 * size], [0.7 * size, 0.6 * size]]])
    labels = torch.tensor([[1.0, 0.0]])
    box = torch.tensor([[0.1 * size, 0.15 * size, 0.8 * size, 0.9 * size]])
    mask_input = torch.randn(1, 1, 4 * grid, 4 * grid, generator=torch.Generator().manual_seed(2))
    return {
        "points, multimask": (points, labels, None, None, True),
        "box, single mask": (None, None, box, None, False),
        "point + box + mask input": (points[:, :1], labels[:, :1], box, mask_input, True),
    }


@pytest.mark.parametrize("grid", [24, 40])  # S = 384 and 640: not SAM's 64 x 64
def test_lean_forward_equals_the_decoders_own(sam, grid):
    assert supports_lean(sam.mask_decoder)
    embedding = torch.randn(1, 256, grid, grid, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        for name, prompts in prompt_sets(grid).items():
            stock_logits, stock_iou = decode_masks(sam, embedding, *prompts, lean=False)
            lean_logits, lean_iou = decode_masks(sam, embedding, *prompts, lean=True)
            assert lean_logits.shape == stock_logits.shape and lean_iou.shape == stock_iou.shape, name
            spread = stock_logits.abs().max().item()
            assert spread > 0.1, name  # the comparison means something
            assert (lean_logits - stock_logits).abs().max().item() <= 1e-5 * spread, name
            assert torch.allclose(lean_iou, stock_iou, atol=1e-5), name
            # the thresholded masks differ at most where a logit is within rounding of 0
            differ = (lean_logits > 0) != (stock_logits > 0)
            assert stock_logits[differ].abs().max().item() <= 1e-5 * spread if differ.any() else True, name


def test_lean_forward_under_bf16_stays_within_bf16_error(sam):
    grid = 32
    embedding = torch.randn(1, 256, grid, grid, generator=torch.Generator().manual_seed(4))
    points, labels, _, _, _ = prompt_sets(grid)["points, multimask"]
    with torch.inference_mode():
        reference, _ = decode_masks(sam, embedding, points, labels, None, None, True, lean=False)
        with autocast("bf16", torch.device("cpu")):
            lean, _ = decode_masks(sam, embedding, points, labels, None, None, True, lean=True)
            stock, _ = decode_masks(sam, embedding, points, labels, None, None, True, lean=False)
    error = lambda x: ((x.float() - reference).norm() / reference.norm()).item()  # noqa: E731
    assert error(lean) <= 0.03 and error(stock) <= 0.03, (error(lean), error(stock))


def test_a_decoder_of_another_structure_keeps_its_own_forward(sam):
    other = copy.deepcopy(sam)
    other.mask_decoder.output_upscaling = torch.nn.Sequential(*list(other.mask_decoder.output_upscaling)[:3],
                                                              torch.nn.Identity(), *list(other.mask_decoder.output_upscaling)[3:])  # fmt: skip
    assert not supports_lean(other.mask_decoder)
    calls = []
    original = type(other.mask_decoder).forward
    other.mask_decoder.forward = lambda *a, **k: calls.append(1) or original(other.mask_decoder, *a, **k)
    embedding = torch.randn(1, 256, 16, 16)
    with torch.inference_mode():
        decode_masks(other, embedding, *prompt_sets(16)["box, single mask"], lean=True)
    assert calls == [1]
