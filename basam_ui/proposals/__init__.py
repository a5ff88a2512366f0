"""Automatic mask proposals: SAM's "segment everything" on an embedded image, at its S and
setting (BA-SAM or vanilla: the embedding carries both), one batch of points at a time.

The algorithm is `SamAutomaticMaskGenerator`'s, built from its own helpers
(`segment_anything.utils.amg`: point grids, crop boxes, stability score, crop-edge filter,
small-region cleanup, RLE; torchvision's `batched_nms`) with SAM's defaults. Two things differ,
both for cost, neither in what is kept:

- the filters run on the decoder's low-res logits: the predicted IoU needs no mask, and the
  stability score is computed on the S/4 logits over the image (SAM computes it after resizing
  every candidate to the full image, ~70 ms a candidate for a 2048 px image on 2 CPU cores);
- a surviving candidate is brought to full resolution only inside the window where it can be
  set (`mask_window`: the same values as `decoder.masks_from_logits`), so a small object on a
  large image costs its own size, and a crop's mask needs no padding to the image.

`ProposalRun.step()` does at most one batch of points (or, at the end, a time slice of the
cleanup and encoding), so a server can compute proposals while idle and a click waits for at
most one step; `propose()` runs it to the end with a progress callback and cancellation.
Batches adapt to `batch_seconds` (measured per batch) within a memory cap from S
(`max_points_per_batch`). `settings_record` is what made a set of proposals, `settings_key`
its stable digest: other settings show other proposals.
"""

from .batches import DECODER_BYTES_PER_TOKEN, PointDecoder, decoder_memory_budget, max_points_per_batch, segmenter_decoder
from .mask_window import MaskWindow, mask_window, window_rle
from .run import ProposalRun, ProposalsCancelled, propose
from .seeds import prompts_from_mask
from .settings import ALGORITHM_VERSION, Proposal, ProposalSet, ProposalSettings, RunProgress, settings_key, settings_record

__all__ = [
    "ALGORITHM_VERSION", "DECODER_BYTES_PER_TOKEN", "MaskWindow", "PointDecoder", "Proposal", "ProposalRun",
    "ProposalSet", "ProposalSettings", "ProposalsCancelled", "RunProgress", "decoder_memory_budget",
    "mask_window", "max_points_per_batch", "prompts_from_mask", "propose", "segmenter_decoder", "settings_key",
    "settings_record", "window_rle",
]  # fmt: skip
