"""MAE, IoU, Dice and the sigmoid on tiny arrays whose answers are worked out by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from basam_ui.metrics import dice, iou, mae, probability


def test_mae_hand_computed():
    prob = np.array([[0.0, 0.5], [1.0, 0.25]])
    gt = np.array([[False, True], [True, False]])
    # |0-0| + |0.5-1| + |1-1| + |0.25-0| = 0.75, over 4 pixels
    assert mae(prob, gt) == pytest.approx(0.1875)


def test_mae_extremes_and_uint8_truth():
    gt = np.array([[0, 1, 1]], dtype=np.uint8)  # any nonzero value is the object
    assert mae(gt.astype(float), gt) == 0.0
    assert mae(1.0 - gt, gt) == 1.0


def test_mae_of_logits_through_sigmoid():
    logits = np.array([[0.0, math.log(3.0)]], dtype=np.float32)
    gt = np.array([[False, True]])
    # sigmoid(0) = 0.5 against 0; sigmoid(ln 3) = 3/4 against 1: (0.5 + 0.25) / 2
    assert mae(probability(logits), gt) == pytest.approx(0.375, abs=1e-7)


def test_probability_is_stable_for_huge_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would warn
        p = probability(np.array([-1e4, -30.0, 0.0, 30.0, 1e4], dtype=np.float32))
    assert p.dtype == np.float32
    assert p[0] == 0.0 and p[-1] == 1.0 and p[2] == 0.5
    assert 0 < p[1] < 1e-12 and 1 - 1e-6 < p[3] <= 1


def test_iou_and_dice_hand_computed():
    pred = np.array([1, 1, 0, 0], dtype=bool)
    gt = np.array([0, 1, 1, 0], dtype=bool)
    assert iou(pred, gt) == pytest.approx(1 / 3)  # 1 shared pixel, 3 in the union
    assert dice(pred, gt) == pytest.approx(0.5)  # 2*1 / (2 + 2)
    assert iou(gt, gt) == 1.0 and dice(gt, gt) == 1.0


def test_both_empty_counts_as_perfect():
    empty = np.zeros((3, 4), dtype=bool)
    assert iou(empty, empty) == 1.0
    assert dice(empty, empty) == 1.0


def test_one_side_empty_scores_zero():
    empty = np.zeros((2, 2), dtype=bool)
    full = np.ones((2, 2), dtype=bool)
    assert iou(empty, full) == 0.0 and iou(full, empty) == 0.0
    assert dice(empty, full) == 0.0 and dice(full, empty) == 0.0


@pytest.mark.parametrize("metric", [mae, iou, dice])
def test_shape_mismatch_is_a_clear_error(metric):
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*\(3, 2\)"):
        metric(np.zeros((2, 3)), np.zeros((3, 2), dtype=bool))
