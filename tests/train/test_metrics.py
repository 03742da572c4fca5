import math

import torch

from activeseg.train.metrics import (
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    summarize,
)


def test_four_pixel_example_by_hand():
    target = torch.tensor([[0, 0], [1, 2]])
    pred = torch.tensor([[0, 1], [1, 1]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    # class 0: TP1 FP0 FN1 -> 1/2; class 1: TP1 FP2 FN0 -> 1/3; class 2: TP0 FP0 FN1 -> 0
    assert torch.allclose(iou_per_class(cm), torch.tensor([0.5, 1 / 3, 0.0], dtype=torch.float64))
    assert math.isclose(mean_iou(cm), (0.5 + 1 / 3) / 3)
    assert pixel_accuracy(cm) == 0.5


def test_ignored_values_not_counted_and_absent_class_is_nan():
    target = torch.tensor([0, 0, 11, 255, 1])
    pred = torch.tensor([0, 0, 1, 2, 1])
    cm = confusion_matrix(pred, target, 3)
    assert cm.sum() == 3
    iou = iou_per_class(cm)
    assert iou[:2].tolist() == [1.0, 1.0] and math.isnan(iou[2])
    assert mean_iou(cm) == 1.0
    s = summarize(cm, ("a", "b", "c"))
    assert s["iou"] == {"a": 1.0, "b": 1.0, "c": None} and s["miou"] == 1.0


def test_empty_confusion():
    cm = torch.zeros(2, 2, dtype=torch.long)
    assert math.isnan(mean_iou(cm)) and math.isnan(pixel_accuracy(cm))
