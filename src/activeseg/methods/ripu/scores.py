"""RIPU's acquisition score (spec section 1) as pure functions of model outputs.

Two maps, both from fixed (non-learned) box filters over the (2k+1) x (2k+1) window N_k(i) with zero
padding, so a window at the border holds only the pixels that exist:

- region impurity P_i: normalised entropy of the predicted-label histogram over N_k(i);
- prediction uncertainty U_i: normalised pixel entropy, averaged over N_k(i) in RA, per pixel in PA.

The score A = P * U lies in [0, 1]; higher = label first. Entropies are divided by
ln(``norm_classes``), which defaults to the number of classes C (19 replicates the reference code).
"""

from __future__ import annotations

import math
from typing import Literal

import torch


def _check_k(k: int, name: str = "k") -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f"{name} must be an integer >= 0 (window side 2k+1), got {k!r}")


def _log_norm(num_classes: int, norm_classes: int | None) -> float:
    """ln of the normalising class count; it must be >= C so that entropies stay in [0, 1]."""
    norm = num_classes if norm_classes is None else norm_classes
    if norm < max(num_classes, 2):
        raise ValueError(f"norm_classes must be >= max(C, 2) = {max(num_classes, 2)}, got {norm}; "
                         "leave it None to divide by ln C")
    return math.log(norm)


def _box_sum_along(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sum of ``x`` over the 2k+1 entries centred on each entry along ``dim``, zero padding.

    Uses a running (cumulative) sum, so the cost does not depend on k. Shape: unchanged.
    """
    size = x.shape[dim]
    pad_shape = list(x.shape)
    pad_shape[dim] = k + 1
    before = x.new_zeros(pad_shape)  # k padding zeros + 1 so that c[j] = sum of everything before j
    pad_shape[dim] = k
    after = x.new_zeros(pad_shape)
    c = torch.cat([before, x, after], dim).cumsum(dim)  # length size + 2k + 1 along dim
    return c.narrow(dim, 2 * k + 1, size) - c.narrow(dim, 0, size)


def box_sum(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sum of every channel over the (2k+1) x (2k+1) window around each pixel, zero padding.

    Equals a depthwise ``conv2d`` with an all-ones kernel (``groups=C``, ``padding=k``) but runs as
    two separable running sums (rows, then columns), so k = 32 costs the same as k = 1. Floating
    inputs are accumulated in float64 (integer-valued inputs such as one-hot counts come out exact)
    and returned in their own dtype; integer and bool inputs are accumulated in int64.

    Args:
        x: Values to sum.
        k: Window radius; the window side is 2k + 1.

    Shape:
        x ``[N, C, H, W]`` -> ``[N, C, H, W]``.
    """
    _check_k(k)
    if x.dim() != 4:
        raise ValueError(f"box_sum expects [N, C, H, W], got shape {tuple(x.shape)}")
    work = torch.float64 if x.is_floating_point() else torch.int64
    out_dtype = x.dtype if x.is_floating_point() else torch.int64
    y = _box_sum_along(x.to(work), k, dim=3)  # rows: [N, C, H, W]
    y = _box_sum_along(y, k, dim=2)  # then columns
    return y.to(out_dtype)


def window_count(height: int, width: int, k: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Number of image pixels in each pixel's (2k+1) x (2k+1) window (border windows hold fewer).

    Shape:
        -> ``[H, W]`` float32.
    """
    ones = torch.ones(1, 1, height, width, device=device)
    return box_sum(ones, k)[0, 0]


def _normalised_entropy(q: torch.Tensor, log_norm: float) -> torch.Tensor:
    """-sum_c q ln q / log_norm with 0 ln 0 := 0, clamped to [0, 1] against rounding.

    Shape:
        q ``[N, C, H, W]`` -> ``[N, H, W]``.
    """
    return (-torch.special.xlogy(q, q).sum(1) / log_norm).clamp_(0.0, 1.0)


def region_impurity(pred: torch.Tensor, num_classes: int, k: int, norm_classes: int | None = None) -> torch.Tensor:
    """Region impurity P: entropy of the predicted-label counts in each pixel's window, / ln(norm).

    n_{i,c} counts the window's pixels predicted as c (only pixels inside the image, and only labels
    in [0, num_classes): any other value is not counted); q = n / sum_c n. A window without any
    counted pixel scores 0.

    Args:
        pred: Predicted class ids (argmax of the logits).
        num_classes: C.
        k: Window radius (1 for RA, ``pa_window_k`` = 32 for PA).
        norm_classes: Class count whose ln normalises the entropy; None = C.

    Shape:
        pred ``[N, H, W]`` -> ``[N, H, W]`` float32 in [0, 1].
    """
    _check_k(k)
    if pred.dim() != 3 or pred.is_floating_point():
        raise ValueError(f"pred must be integer class ids of shape [N, H, W], got {pred.dtype} {tuple(pred.shape)}")
    log_norm = _log_norm(num_classes, norm_classes)
    pred = pred.long()
    valid = (pred >= 0) & (pred < num_classes)
    n, height, width = pred.shape
    one_hot = torch.zeros(n, num_classes, height, width, device=pred.device)  # [N, C, H, W]
    one_hot.scatter_(1, pred.clamp(0, num_classes - 1).unsqueeze(1), valid.unsqueeze(1).float())
    counts = box_sum(one_hot, k)  # [N, C, H, W], exact integers
    total = counts.sum(1, keepdim=True)  # [N, 1, H, W]
    q = counts / total.clamp(min=1.0)
    return _normalised_entropy(q, log_norm)


def pixel_entropy(probs: torch.Tensor, norm_classes: int | None = None) -> torch.Tensor:
    """H_i = -sum_c p ln p / ln(norm), 0 ln 0 := 0; a uniform softmax over C = norm classes gives 1.

    Shape:
        probs ``[N, C, H, W]`` -> ``[N, H, W]`` in [0, 1].
    """
    if probs.dim() != 4:
        raise ValueError(f"probs must have shape [N, C, H, W], got {tuple(probs.shape)}")
    return _normalised_entropy(probs, _log_norm(probs.shape[1], norm_classes))


def prediction_uncertainty(probs: torch.Tensor, k: int | None, norm_classes: int | None = None) -> torch.Tensor:
    """Prediction uncertainty U: pixel entropy, averaged over each pixel's window when k is given.

    The window mean divides by the number of pixels that lie inside the image (exact at borders).

    Args:
        probs: Softmax probabilities.
        k: Window radius (RA); None = per-pixel entropy (PA).
        norm_classes: Class count whose ln normalises the entropy; None = C.

    Shape:
        probs ``[N, C, H, W]`` -> ``[N, H, W]`` in [0, 1].
    """
    h = pixel_entropy(probs, norm_classes)  # [N, H, W]
    if k is None:
        return h
    _check_k(k)
    height, width = h.shape[-2:]
    mean = box_sum(h.unsqueeze(1), k)[:, 0] / window_count(height, width, k, h.device)  # [N, H, W]
    return mean.clamp_(0.0, 1.0)


def ripu_score(logits: torch.Tensor, mode: Literal["RA", "PA"], k: int = 1, pa_window_k: int = 32,
               norm_classes: int | None = None, use_impurity: bool = True,
               use_uncertainty: bool = True) -> dict[str, torch.Tensor]:
    """The acquisition map A = P * U of RA or PA, with its two factors.

    RA: P over the (2k+1)^2 window and U = window mean of the pixel entropy over the same window.
    PA: P over the (2 pa_window_k + 1)^2 window and U = the pixel entropy itself. The ablations
    switch a factor off: ``use_impurity=False`` sets P = 1 ("uncertainty only"),
    ``use_uncertainty=False`` sets U = 1 ("impurity only"). No gradient is tracked.

    Args:
        logits: Segmentation logits at the resolution at which pixels are selected.
        mode: "RA" (region-based) or "PA" (pixel-based annotating).
        k: RA window radius (1: 3 x 3 squares).
        pa_window_k: PA impurity window radius (32: 65 x 65).
        norm_classes: Class count whose ln normalises both entropies; None = C.
        use_impurity: False: P = 1.
        use_uncertainty: False: U = 1.

    Returns:
        ``{"impurity": P, "uncertainty": U, "score": A}``.

    Shape:
        logits ``[N, C, H, W]`` -> each map ``[N, H, W]`` float32.
    """
    if mode not in ("RA", "PA"):
        raise ValueError(f"mode must be 'RA' or 'PA', got {mode!r}")
    if not (use_impurity or use_uncertainty):
        raise ValueError("at least one of use_impurity / use_uncertainty must be True "
                         "(a selector with neither is random squares, not RIPU)")
    if logits.dim() != 4:
        raise ValueError(f"logits must have shape [N, C, H, W], got {tuple(logits.shape)}")
    with torch.no_grad():
        logits = logits.float()
        num_classes = logits.shape[1]
        ones = torch.ones(logits.shape[0], *logits.shape[2:], device=logits.device)  # [N, H, W]
        if use_impurity:
            impurity = region_impurity(logits.argmax(1), num_classes, k if mode == "RA" else pa_window_k,
                                       norm_classes)
        else:
            impurity = ones
        if use_uncertainty:
            uncertainty = prediction_uncertainty(logits.softmax(1), k if mode == "RA" else None, norm_classes)
        else:
            uncertainty = ones
        return {"impurity": impurity, "uncertainty": uncertainty, "score": impurity * uncertainty}
