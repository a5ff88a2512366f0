"""Helpers for the team's tests (proposals, review): discs, and a stand-in for a computed
proposal set shaped like `basam_ui.proposals.ProposalSet`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def disc(h: int, w: int, cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


@dataclass
class FakeProposal:
    rle: dict
    bbox: list
    area: int
    predicted_iou: float
    stability_score: float
    point: tuple
    crop_box: list


@dataclass
class FakeSet:
    record: dict
    key: str
    proposals: list
    points: int = 16
    seconds: float = 1.5


def fake_set(h: int, w: int, key: str = "k1", nsf: bool = True) -> FakeSet:
    from basam_ui.project.objects import encode_mask

    found = []
    for k, (iou, r) in enumerate([(0.97, 10), (0.91, 6), (0.89, 4)]):
        cx, cy = 8 + k * (w - 16) // 2, h // 2
        rle = encode_mask(disc(h, w, cx, cy, r))
        found.append(FakeProposal({"size": rle["size"], "counts": rle["counts"]}, rle["bbox"], rle["area"], iou,
                                  0.96, (float(cx), float(cy)), [0, 0, w, h]))
    record = {"model": "vit_t:" + "ab" * 8, "input_size": 1024, "nsf": nsf, "bmam": nsf, "beta": 0.1,
              "precision": "bf16", "points_per_side": 4}
    return FakeSet(record, key, found)
