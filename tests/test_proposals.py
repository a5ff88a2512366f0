"""Automatic mask proposals (basam_ui.proposals): the point grid -> filters -> NMS path with a
stand-in decoder whose masks are known (random weights make meaningless masks), the filters,
NMS and small-region cleanup on hand-made masks, windows against `masks_from_logits`, batched
decoding against one point at a time with a real random-weight vit_t, steps, progress and
cancellation, and the prompts that seed a refine from a mask."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from segment_anything.utils.amg import remove_small_regions

from basam_ui.basam.config import BASAMConfig
from basam_ui.basam.encoder import resized_size
from basam_ui.cache import EmbeddingKey
from basam_ui.decoder import logits_to_image, masks_from_logits
from basam_ui.proposals import (
    DECODER_BYTES_PER_TOKEN,
    MaskWindow,
    ProposalRun,
    ProposalsCancelled,
    ProposalSettings,
    mask_window,
    max_points_per_batch,
    prompts_from_mask,
    propose,
    segmenter_decoder,
    settings_key,
    settings_record,
    window_rle,
)
from basam_ui.segmenter import ImageEmbedding, Segmenter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fake_embedding(height: int, width: int, size: int = 512, config: BASAMConfig | None = None) -> ImageEmbedding:
    """An ImageEmbedding of an H x W image at S = `size` with no encoder behind it."""
    config = config or BASAMConfig()
    key = EmbeddingKey(f"fake-{height}x{width}", "vit_t:random-0", size, config, "fp32")
    embedding = torch.zeros(1, 256, size // 16, size // 16)
    return ImageEmbedding(key, embedding, (height, width), resized_size((height, width), size), 0.0, "computed")


def low_res_coords(embedding: ImageEmbedding) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) in the embedding's original pixels of every low-res logit (S/4 x S/4): the inverse
    of `logits_to_image`'s map, y = (i + 0.5) * 4H / h - 0.5."""
    (h, w), (height, width) = embedding.input_size, embedding.original_size
    grid = embedding.size // 4
    i = np.arange(grid, dtype=np.float64)
    return np.meshgrid((i + 0.5) * 4 * height / h - 0.5, (i + 0.5) * 4 * width / w - 0.5, indexing="ij")


class DiscDecoder:
    """A stand-in for the mask decoder: a point inside a disc gets that disc (sharp logits,
    predicted IoU 0.95), a half-size disc (IoU 0.5) and the disc's box (sharp, IoU 0.8); a
    point on the background gets a soft blob (IoU 0.93, unstable). `offsets` maps a crop's
    embedding (by id) to its (x0, y0) in the image."""

    def __init__(self, discs: list[tuple[float, float, float]], offsets: dict | None = None):
        self.discs = discs
        self.offsets = offsets or {}
        self.calls: list[int] = []

    def __call__(self, embedding: ImageEmbedding, points: np.ndarray):
        dx, dy = self.offsets.get(id(embedding.embedding), (0, 0))
        ys, xs = low_res_coords(embedding)
        ys, xs = ys + dy, xs + dx
        logits, ious = [], []
        for px, py in np.asarray(points) + (dx, dy):
            hit = next(((cx, cy, r) for cx, cy, r in self.discs if np.hypot(px - cx, py - cy) <= r), None)
            if hit is None:  # a broad, soft blob around the point: stability far below 0.95
                blob = 0.02 * (60 - np.hypot(xs - px, ys - py))
                masks, iou = [blob, blob - 0.5, blob - 1.0], [0.93, 0.2, 0.1]
            else:
                cx, cy, r = hit
                d = np.hypot(xs - cx, ys - cy)
                square = np.minimum(r - np.abs(xs - cx), r - np.abs(ys - cy))
                masks, iou = [5 * (r - d), 5 * (r / 2 - d), 5 * square], [0.95, 0.5, 0.8]
            logits.append(np.stack(masks))
            ious.append(iou)
        self.calls.append(len(points))
        return torch.tensor(np.stack(logits), dtype=torch.float32), torch.tensor(ious, dtype=torch.float32)


def disc_mask(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return np.hypot(xx - cx, yy - cy) <= r


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


DISCS = [(150.0, 140.0, 70.0), (420.0, 300.0, 100.0), (560.0, 90.0, 45.0), (250.0, 380.0, 55.0)]


def test_the_proposals_are_the_discs():
    height, width = 480, 640
    embedding = fake_embedding(height, width)
    result = propose(embedding, DiscDecoder(DISCS), ProposalSettings(points_per_side=16), batch_seconds=None,
                     points_per_batch=32)  # fmt: skip
    assert result.points == 256
    masks = [p.mask() for p in result.proposals]
    assert len(masks) == len(DISCS)  # background blobs unstable, half discs below the IoU bar, boxes removed by NMS
    for cx, cy, r in DISCS:
        truth = disc_mask(height, width, cx, cy, r)
        best = max(range(len(masks)), key=lambda i: iou(masks[i], truth))
        assert iou(masks[best], truth) >= 0.9
        proposal = result.proposals[best]
        px, py = proposal.point
        assert np.hypot(px - cx, py - cy) <= r  # the grid point that made it lies in the disc
        assert proposal.predicted_iou == pytest.approx(0.95) and proposal.stability_score >= 0.95
        assert proposal.area == int(masks[best].sum())
        assert proposal.bbox == [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(masks[best].astype(np.uint8))))]
    assert result.key == settings_key(settings_record(embedding, ProposalSettings(points_per_side=16)))


def test_crop_layers_keep_each_disc_once():
    """With one crop layer the crops' own embeddings are decoded too; masks cut by a crop's
    edge are dropped there and the whole image's copy survives NMS across crops."""
    height, width = 480, 640
    settings = ProposalSettings(points_per_side=12, crop_n_layers=1)
    boxes = settings.crop_boxes((height, width))
    assert len(boxes) == 5 and boxes[0] == ([0, 0, width, height], 0)
    crops = [fake_embedding(y1 - y0, x1 - x0) for (x0, y0, x1, y1), _ in boxes[1:]]
    offsets = {id(e.embedding): (box[0], box[1]) for e, (box, _) in zip(crops, boxes[1:])}
    decoder = DiscDecoder(DISCS, offsets)
    result = propose(fake_embedding(height, width), decoder, settings, crop_embeddings=crops, batch_seconds=None)
    assert result.points == 5 * 144
    masks = [p.mask() for p in result.proposals]
    for cx, cy, r in DISCS:
        truth = disc_mask(height, width, cx, cy, r)
        assert sum(iou(m, truth) >= 0.9 for m in masks) == 1
    with pytest.raises(ValueError, match="4 crop embeddings"):
        ProposalRun(fake_embedding(height, width), decoder, settings)


class ListDecoder:
    """Returns hand-made low-res candidates: `candidates` is a list of (logits S/4 x S/4, IoU),
    three per point, in order."""

    def __init__(self, candidates):
        self.candidates = candidates
        self.next = 0

    def __call__(self, embedding, points):
        chunk = self.candidates[3 * self.next : 3 * (self.next + len(points))]
        self.next += len(points)
        logits = torch.stack([torch.as_tensor(c[0], dtype=torch.float32) for c in chunk]).view(len(points), 3, *chunk[0][0].shape)
        return logits, torch.tensor([c[1] for c in chunk], dtype=torch.float32).view(len(points), 3)


def square_logits(grid: int, x0: int, y0: int, x1: int, y1: int, steep: float = 10.0) -> np.ndarray:
    """Low-res logits of a square [x0, x1) x [y0, y1) on the low-res grid, sharp by default."""
    yy, xx = np.mgrid[:grid, :grid].astype(np.float64)
    inside = np.minimum.reduce([xx - x0 + 0.5, x1 - 0.5 - xx, yy - y0 + 0.5, y1 - 0.5 - yy])
    return steep * inside


def test_filters_and_nms_on_hand_made_masks():
    # S = 256 on a 256 x 256 image: low-res 64 x 64, one low-res pixel = 4 image pixels
    embedding = fake_embedding(256, 256, size=256)
    g = 64
    a = square_logits(g, 10, 10, 30, 30)
    a_shifted = square_logits(g, 11, 10, 31, 30)  # box IoU with a ~0.9: a duplicate
    d = square_logits(g, 20, 20, 40, 40)  # box IoU with a ~0.14: kept
    low_iou = square_logits(g, 45, 45, 60, 60)  # predicted IoU 0.8 < 0.88
    soft = square_logits(g, 45, 5, 60, 20, steep=0.3)  # stability ~0.6 < 0.95
    empty = np.full((g, g), -5.0)
    candidates = [(a, 0.90), (a_shifted, 0.92), (d, 0.89), (low_iou, 0.80), (soft, 0.99), (empty, 0.99)]
    settings = ProposalSettings(points_per_side=2)  # 4 points x 3 = 12 candidates
    decoder = ListDecoder(candidates + [(empty, 0.1)] * 6)
    result = propose(embedding, decoder, settings, batch_seconds=None, points_per_batch=1)
    kept = [(p.predicted_iou, p.bbox) for p in result.proposals]
    assert kept == [(pytest.approx(0.92), [44.0, 40.0, 80.0, 80.0]), (pytest.approx(0.89), [80.0, 80.0, 80.0, 80.0])]
    # without the filters the low-IoU and unstable squares come back; the duplicate still goes
    loose = ProposalSettings(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    result = propose(embedding, ListDecoder(candidates + [(empty, 0.1)] * 6), loose, batch_seconds=None)
    ious = sorted(round(p.predicted_iou, 2) for p in result.proposals)
    assert ious == [0.8, 0.89, 0.92, 0.99]  # the empty candidates make no proposal
    # a looser NMS keeps the duplicate too
    looser = ProposalSettings(points_per_side=2, box_nms_thresh=0.95)
    result = propose(embedding, ListDecoder(candidates + [(empty, 0.1)] * 6), looser, batch_seconds=None)
    assert sorted(round(p.predicted_iou, 2) for p in result.proposals) == [0.89, 0.9, 0.92]


def test_small_region_cleanup_matches_sams_on_the_whole_mask():
    """A mask with a small hole and a small island (and one touching the image's border):
    the cleanup inside padded windows gives what SAM's `remove_small_regions` gives on the
    whole mask."""
    height = width = 256
    embedding = fake_embedding(height, width, size=256)
    g = 64
    ring = square_logits(g, 8, 8, 30, 30)
    ring[17:19, 17:19] = -10  # an 8 x 8 px hole
    ring[40:42, 40:42] = 10  # an 8 x 8 px island
    corner = square_logits(g, 0, 44, 12, 64)
    corner[60:, 4:5] = -10  # a notch open to the image's bottom edge: a hole only with the border
    empty = np.full((g, g), -5.0)
    area = 100
    settings = ProposalSettings(points_per_side=1, min_mask_region_area=area)
    for logits in (ring, corner):
        result = propose(embedding, ListDecoder([(logits, 0.95), (empty, 0.1), (empty, 0.1)]), settings, batch_seconds=None)
        (proposal,) = result.proposals
        whole = masks_from_logits(torch.tensor(logits, dtype=torch.float32)[None], embedding.input_size, (height, width), 0.0)[0].numpy()
        expected, _ = remove_small_regions(whole, area, mode="holes")
        expected, _ = remove_small_regions(expected, area, mode="islands")
        assert not np.array_equal(expected, whole)  # the cleanup did something
        assert np.array_equal(proposal.mask(), expected)


@pytest.mark.parametrize(
    "size, height, width", [(1024, 2048, 1365), (512, 600, 900), (256, 300, 97), (512, 4000, 3000)]
)
def test_mask_window_equals_the_whole_image_mask(size, height, width):
    input_size = resized_size((height, width), size)
    grid = size // 4
    generator = torch.Generator().manual_seed(size + height)
    yy, xx = torch.meshgrid(torch.arange(float(grid)), torch.arange(float(grid)), indexing="ij")
    for _ in range(4):
        cy, cx, r = (torch.rand(3, generator=generator) * torch.tensor([input_size[0] / 4, input_size[1] / 4, 20.0])).tolist()
        low = r + 1 - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt() + 0.3 * torch.randn(grid, grid, generator=generator)
        low[(yy - cy).abs() > 30] = -5
        whole = masks_from_logits(low[None], input_size, (height, width), 0.0)[0].numpy()
        window = mask_window(low, input_size, (height, width))
        assert window is not None and whole.any()
        assert window.mask.size < whole.size  # a window, not the image
        assert np.array_equal(window.full(), whole)
        x0, y0, x1, y1 = window.box_xyxy()
        ys, xs = np.nonzero(whole)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max(), ys.max())
        expected = mask_utils.encode(np.asfortranarray(whole.astype(np.uint8)))
        assert window_rle(window) == {"size": [height, width], "counts": expected["counts"].decode()}
    assert mask_window(torch.full((grid, grid), -1.0), input_size, (height, width)) is None


def test_window_rle_at_the_image_edges():
    for top, left in ((0, 0), (5, 0), (0, 7), (10, 12)):
        mask = np.zeros((4, 3), bool)
        mask[0, 0] = mask[3, 2] = mask[1, 1] = True
        window = MaskWindow(top, left, mask, (14, 15))
        expected = mask_utils.encode(np.asfortranarray(window.full().astype(np.uint8)))["counts"].decode()
        assert window_rle(window)["counts"] == expected
    full = MaskWindow(0, 0, np.ones((3, 4), bool), (3, 4))
    assert window_rle(full)["counts"] == mask_utils.encode(np.asfortranarray(np.ones((3, 4), np.uint8)))["counts"].decode()


@pytest.fixture(scope="module")
def segmenter(vit_t):
    model = vit_t
    # default initialisation leaves the decoder's outputs tiny; larger weights make differences show
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        saved = [p.clone() for p in model.mask_decoder.parameters()]
        for parameter in model.mask_decoder.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    yield Segmenter(model, precision="fp32")
    with torch.no_grad():
        for parameter, value in zip(model.mask_decoder.parameters(), saved):
            parameter.copy_(value)


def test_batched_decoding_equals_one_point_at_a_time(segmenter):
    image = np.random.default_rng(0).integers(0, 255, (300, 420, 3), dtype=np.uint8)
    embedding = segmenter.embed(image, 256, BASAMConfig())
    decode = segmenter_decoder(segmenter)
    points = np.array([[10.0, 20.0], [200.0, 150.0], [419.0, 299.0], [77.5, 250.25], [300.0, 5.0]])
    batched_logits, batched_iou = decode(embedding, points)
    assert batched_logits.shape == (5, 3, 64, 64) and batched_iou.shape == (5, 3)
    spread = batched_logits.abs().max().item()
    assert spread > 0.1
    for i, point in enumerate(points):
        logits, iou = decode(embedding, point[None])
        assert (logits[0] - batched_logits[i]).abs().max().item() <= 1e-5 * spread
        assert torch.allclose(iou[0], batched_iou[i], atol=1e-5)
        # and the click path: the same prompt through Segmenter.predict_with
        _, click_iou, click_low = segmenter.predict_with(embedding, point[None], np.array([1]))
        assert np.abs(click_low - logits[0].numpy()).max() <= 1e-5 * spread
        assert np.allclose(click_iou, iou[0].numpy(), atol=1e-5)
    # SAM's own decoder forward takes the same batch
    segmenter.lean_decoder = False
    try:
        stock_logits, _ = segmenter_decoder(segmenter)(embedding, points)
    finally:
        segmenter.lean_decoder = True
    assert (stock_logits - batched_logits).abs().max().item() <= 1e-5 * spread


def test_batched_prompt_sets_with_boxes_and_mask_inputs(segmenter):
    """decode_masks takes B prompt sets of every kind: each set's logits are the ones it gets alone."""
    from basam_ui.decoder import decode_masks

    sam = segmenter.sam
    generator = torch.Generator().manual_seed(5)
    embedding = torch.randn(1, 256, 24, 24, generator=generator)
    points = torch.rand(3, 2, 2, generator=generator) * 384
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    boxes = torch.tensor([[10.0, 20.0, 200.0, 300.0], [50.0, 5.0, 380.0, 100.0], [0.0, 0.0, 383.0, 383.0]])
    mask_input = torch.randn(3, 1, 96, 96, generator=generator)
    with torch.inference_mode():
        for lean in (True, False):
            batched, batched_iou = decode_masks(sam, embedding, points, labels, boxes, mask_input, True, lean=lean)
            spread = batched.abs().max().item()
            for i in range(3):
                alone, iou = decode_masks(sam, embedding, points[i : i + 1], labels[i : i + 1], boxes[i : i + 1],
                                          mask_input[i : i + 1], True, lean=lean)  # fmt: skip
                assert (alone[0] - batched[i]).abs().max().item() <= 1e-5 * spread
                assert torch.allclose(iou[0], batched_iou[i], atol=1e-5)


def test_a_real_run_in_batches_equals_one_point_at_a_time(segmenter):
    """End to end on vit_t (random weights, filters off so candidates survive): the same
    proposals whether points go one by one or 16 at a time."""
    image = np.random.default_rng(1).integers(0, 255, (200, 260, 3), dtype=np.uint8)
    embedding = segmenter.embed(image, 256, BASAMConfig.vanilla())
    # random weights make image-wide masks whose boxes NMS would merge: keep every candidate
    settings = ProposalSettings(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    decode = segmenter_decoder(segmenter)
    one = propose(embedding, decode, settings, batch_seconds=None, points_per_batch=1)
    many = propose(embedding, decode, settings, batch_seconds=None, points_per_batch=16)
    assert len(one.proposals) > 50
    assert [p.rle for p in one.proposals] == [p.rle for p in many.proposals]
    assert [p.point for p in one.proposals] == [p.point for p in many.proposals]
    assert one.record["nsf"] is False and one.record["input_size"] == 256
    basam = segmenter.embed(image, 256, BASAMConfig())
    assert settings_key(settings_record(basam, settings)) != one.key  # another setting, other proposals


def test_steps_progress_and_cancel():
    embedding = fake_embedding(480, 640)
    decoder = DiscDecoder(DISCS)
    run = ProposalRun(embedding, decoder, ProposalSettings(points_per_side=8), batch_seconds=None, points_per_batch=10)
    seen = []
    while run.step():
        seen.append(run.progress)
        assert decoder.calls[-1] <= 10 if seen[-1].phase == "decoding" else True
    assert run.done and run.progress.phase == "done"
    assert decoder.calls == [10] * 6 + [4]
    assert [p.points_done for p in seen[:7]] == [10, 20, 30, 40, 50, 60, 64]
    assert len(run.result().proposals) == 4
    with pytest.raises(RuntimeError, match="not finished"):
        ProposalRun(embedding, decoder).result()

    steps = []
    with pytest.raises(ProposalsCancelled, match="after 20 of 64 points"):
        propose(embedding, DiscDecoder(DISCS), ProposalSettings(points_per_side=8), batch_seconds=None,
                points_per_batch=10, on_step=steps.append, cancelled=lambda: len(steps) >= 2)  # fmt: skip


class SlowDecoder(DiscDecoder):
    def __call__(self, embedding, points):
        time.sleep(0.004 * len(points))
        return super().__call__(embedding, points)


def test_batches_adapt_to_the_time_per_step_within_the_memory_cap():
    embedding = fake_embedding(480, 640)
    decoder = SlowDecoder(DISCS)
    propose(embedding, decoder, ProposalSettings(points_per_side=10), batch_seconds=0.05)
    assert decoder.calls[0] == 1 and max(decoder.calls) >= 4  # grows from one point ...
    assert max(decoder.calls) <= 13  # ... to about 0.05 s of points, not beyond
    capped = SlowDecoder(DISCS)
    memory = 3 * DECODER_BYTES_PER_TOKEN * (512 // 16) ** 2  # three points' worth at S = 512
    assert max_points_per_batch(512, memory) == 3
    propose(embedding, capped, ProposalSettings(points_per_side=10), batch_seconds=0.05, memory_bytes=memory)
    assert max(capped.calls) == 3
    assert max_points_per_batch(2048, 1 << 30) * 4 <= max_points_per_batch(1024, 1 << 30)


def test_settings_are_checked_and_keyed():
    for bad in ({"points_per_side": 0}, {"pred_iou_thresh": 1.5}, {"box_nms_thresh": -0.1},
                {"min_mask_region_area": -1}, {"stability_score_offset": 0.0}):  # fmt: skip
        with pytest.raises(ValueError):
            ProposalSettings(**bad)
    embedding = fake_embedding(100, 100)
    record = settings_record(embedding, ProposalSettings())
    assert record["points_per_side"] == 32 and record["pred_iou_thresh"] == 0.88
    assert record["stability_score_thresh"] == 0.95 and record["box_nms_thresh"] == 0.7
    assert settings_key(record) == settings_key(dict(reversed(list(record.items()))))  # order-free
    assert settings_key(record) != settings_key(settings_record(embedding, ProposalSettings(points_per_side=16)))
    assert settings_key(record) != settings_key(settings_record(fake_embedding(100, 100, size=1024), ProposalSettings()))


def test_prompts_from_a_mask():
    mask = np.zeros((60, 90), bool)
    mask[10:31, 5:66] = True  # a 61 x 21 bar
    mask[40:56, 70:86] = True  # a 16 x 16 square
    prompts = prompts_from_mask(mask, n_points=5)
    assert prompts["box"] == [5.0, 10.0, 86.0, 56.0]
    assert prompts["labels"] == [1] * 5
    points = np.array(prompts["points"])
    assert all(mask[int(y), int(x)] for x, y in points)
    assert points[0].tolist() == [15.0, 20.0]  # the first pixel 11 px from the background: the bar's middle row
    # spread out: no two points closer than ~ the bar's half height
    distances = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1))
    assert distances[np.triu_indices(5, 1)].min() >= 9
    assert prompts_from_mask(mask, 5) == prompts  # deterministic
    assert len(prompts_from_mask(np.eye(3, dtype=bool), 10)["points"]) == 3  # at most one per pixel
    many = prompts_from_mask(mask, 12)["points"]
    assert any(x >= 70 and y >= 40 for x, y in many)  # the second piece gets points once the bar is covered
    edge = np.zeros((20, 20), bool)
    edge[:, :4] = True  # touching the image's border: the point keeps away from it too
    assert prompts_from_mask(edge, 1)["points"][0][0] in (1.0, 2.0)
    with pytest.raises(ValueError, match="empty"):
        prompts_from_mask(np.zeros((4, 4), bool))
