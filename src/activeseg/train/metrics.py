"""Segmentation metrics as pure functions of a confusion matrix.

``confusion[t, p]`` counts pixels of true class t predicted as p. Pixels whose label is not a class
(void, unlabelled) are not counted. A class with TP + FP + FN = 0 has no IoU (NaN) and is left out of
the mean.
"""

from __future__ import annotations

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (true, predicted) pairs over pixels whose target is a class.

    Shape:
        pred, target ``[...]`` (same shape) -> ``[num_classes, num_classes]`` int64.
    """
    t, p = target.reshape(-1).long(), pred.reshape(-1).long()
    keep = (t >= 0) & (t < num_classes)
    idx = t[keep] * num_classes + p[keep]
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """IoU_c = TP / (TP + FP + FN); NaN where the denominator is 0. Shape: ``[C]`` float64."""
    cm = confusion.double()
    tp = cm.diag()
    denom = cm.sum(0) + cm.sum(1) - tp
    return torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean IoU over classes that occur in the target or the prediction."""
    iou = iou_per_class(confusion)
    valid = ~iou.isnan()
    return float(iou[valid].mean()) if valid.any() else float("nan")


def pixel_accuracy(confusion: torch.Tensor) -> float:
    """Correct pixels / counted pixels."""
    total = confusion.sum()
    return float(confusion.diag().sum() / total) if total > 0 else float("nan")


def summarize(confusion: torch.Tensor, class_names: tuple[str, ...]) -> dict:
    """mIoU, pixel accuracy and per-class IoU as a JSON-ready dict."""
    iou = iou_per_class(confusion)
    return {
        "miou": mean_iou(confusion),
        "pixel_accuracy": pixel_accuracy(confusion),
        "iou": {n: (None if v != v else float(v)) for n, v in zip(class_names, iou.tolist())},
    }


def auroc(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for telling ``positives`` from the rest: the probability
    that a random positive scores above a random negative (ties count one half). Rank-based
    (Mann-Whitney U) with tied scores given their average rank; NaN when a group is empty.

    Shape:
        scores ``[M]``, positives ``[M]`` bool.
    """
    s, pos = scores.reshape(-1).double(), positives.reshape(-1).bool()
    n_pos = int(pos.sum())
    n_neg = s.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(s)
    sorted_s = s[order]
    _, counts = torch.unique_consecutive(sorted_s, return_counts=True)
    ends = counts.cumsum(0).double()  # 1-based rank of each tie group's last member
    average = ends - (counts.double() - 1) / 2  # the group's mean rank
    ranks = torch.empty_like(s)
    ranks[order] = torch.repeat_interleave(average, counts)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
