"""RIPU's per-image budgets and greedy selection (spec section 2).

Selection is **per image**: every target image receives the same number of squares (RA) or pixels
(PA) per round, and there is no ranking across images. The functions here take one image's score map;
callers loop over the images, passing each the same ``count`` (from :func:`squares_per_round` or
:func:`pixels_per_round`) and that image's annotated mask from all earlier rounds.

Greedy rule: scores are -inf on annotated pixels; each pick takes the first arg-max (row-major order
on ties), labels the pixels around it, and sets -inf on a larger window around it so that later picks
of the same round keep their distance. A round stops early when nothing selectable is left.
"""

from __future__ import annotations

import torch

BASIS_POINTS = 10_000  # 1 % = 100 basis points


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer (exact budget arithmetic), got {value!r}")


def _ceil_div(num: int, den: int) -> int:
    return -(-num // den)


def squares_per_round(height: int, width: int, ratio_bp: int, rounds: int = 5, k: int = 1) -> int:
    """RA squares per image per round: R = ceil(H W rho / rounds / (2k+1)^2), in exact integers.

    Floating point can land just above an integer and round up one square too many (e.g.
    75 x 240 at 7 %: 28.000000000000007 -> 29 instead of 28).

    Args:
        height: Image height at the resolution where pixels are selected and counted.
        width: Image width.
        ratio_bp: Total budget ratio rho over all rounds, in basis points (2.2 % = 220).
        rounds: Number of selection rounds.
        k: Square radius; a square is (2k+1) x (2k+1).

    Returns:
        R; 360 x 480 at 220 bp gives 85, at 500 bp 192; 180 x 240 gives 22 and 48.
    """
    for name, value in (("height", height), ("width", width), ("ratio_bp", ratio_bp), ("rounds", rounds)):
        _positive_int(name, value)
    if ratio_bp > BASIS_POINTS:
        raise ValueError(f"ratio_bp is in basis points (2.2 % = 220) and at most {BASIS_POINTS}, got {ratio_bp}")
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    side = 2 * k + 1
    return _ceil_div(height * width * ratio_bp, BASIS_POINTS * rounds * side * side)


def pixels_per_round(height: int, width: int, pixels_per_image: int, defined_at: tuple[int, int],
                     rounds: int = 5) -> int:
    """PA pixels per image per round: ceil(pixels_per_image / rounds * (H W) / (h0 w0)), exactly.

    The budget is defined at a reference size (h0, w0) and rescaled by area to the size at which
    pixels are selected: 40 px defined at 1280 x 640 gives 21 per round on a 2048 x 1024 image;
    40 px defined at 360 x 480 gives 8 per round there and 2 at 180 x 240.

    Args:
        height: Image height at the resolution where pixels are selected and counted.
        width: Image width.
        pixels_per_image: Total pixels per image over all rounds, at the reference size.
        defined_at: The reference size (h0, w0) at which ``pixels_per_image`` is defined.
        rounds: Number of selection rounds.
    """
    h0, w0 = defined_at
    for name, value in (("height", height), ("width", width), ("pixels_per_image", pixels_per_image),
                        ("defined_at[0]", h0), ("defined_at[1]", w0), ("rounds", rounds)):
        _positive_int(name, value)
    return _ceil_div(pixels_per_image * height * width, rounds * h0 * w0)


def _greedy(score: torch.Tensor, annotated: torch.Tensor, count: int, label_radius: int,
            block_radius: int, blocked: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy picks on one image: label a square of ``label_radius``, block one of ``block_radius``.

    Shape:
        score ``[H, W]``, annotated ``[H, W]`` -> (new pixels ``[H, W]`` bool, centres ``[count', 2]``).
    """
    if score.dim() != 2 or score.shape != annotated.shape:
        raise ValueError("score and annotated must be single-image maps of the same shape [H, W], got "
                         f"{tuple(score.shape)} and {tuple(annotated.shape)}; loop over the images")
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    work = score.detach().to(torch.float64 if score.dtype == torch.float64 else torch.float32).clone()
    if torch.isnan(work).any():
        raise ValueError("score contains NaN; check the logits that produced it")
    annotated = annotated.bool()
    work[annotated] = float("-inf")
    if blocked is not None:
        work[blocked.bool()] = float("-inf")
    width = work.shape[1]
    labelled = torch.zeros_like(annotated)
    centres: list[tuple[int, int]] = []
    for _ in range(count):
        flat = int(work.argmax())  # first maximum in row-major order
        y, x = divmod(flat, width)
        if work[y, x] == float("-inf"):
            break  # nothing selectable left in this image
        centres.append((y, x))
        r = label_radius
        labelled[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1] = True
        b = block_radius
        work[max(y - b, 0):y + b + 1, max(x - b, 0):x + b + 1] = float("-inf")
    centre_tensor = torch.tensor(centres, dtype=torch.long, device=score.device).reshape(-1, 2)  # [count', 2]
    return labelled & ~annotated, centre_tensor


def select_squares(score: torch.Tensor, annotated: torch.Tensor, count: int,
                   k: int = 1, blocked: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RA: ``count`` greedy (2k+1) x (2k+1) squares on one image.

    Each pick is the arg-max of the score outside annotated and blocked pixels; it labels the square
    centred there (clipped at the border: a corner square of k = 1 has 4 pixels) and blocks the
    (4k+1) x (4k+1) window around it (radius 2k), so squares of one round are disjoint and their
    centres lie at Chebyshev distance >= 2k + 1. A square may touch pixels annotated in earlier rounds;
    those are not returned as new.

    Args:
        score: Acquisition map A of the image (higher = label first).
        annotated: Pixels annotated in earlier rounds (never picked as centres).
        count: Squares to pick (fewer when the image runs out of selectable pixels).
        k: Square radius.
        blocked: Pixels no centre may be picked on besides the annotated ones (the blocking windows of
            earlier rounds, the reference's "active" mask); they may still be labelled by a square.

    Returns:
        (new, centres): the square pixels that were not annotated before, and the picked centres as
        (y, x) in pick order.

    Shape:
        score ``[H, W]``, annotated ``[H, W]`` bool -> (``[H, W]`` bool, ``[count', 2]`` long).
    """
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    return _greedy(score, annotated, count, label_radius=k, block_radius=2 * k, blocked=blocked)


def select_pixels(score: torch.Tensor, annotated: torch.Tensor, count: int,
                  window_k: int = 32, blocked: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PA: ``count`` greedy single pixels on one image.

    Each pick labels one pixel and blocks the (2 window_k + 1)^2 window around it, so picks of one
    round lie at Chebyshev distance >= window_k + 1 (33 for the default 65 x 65 window).

    Args:
        score: Acquisition map A of the image (higher = label first).
        annotated: Pixels annotated in earlier rounds (never picked).
        count: Pixels to pick (fewer when the image runs out of selectable pixels).
        window_k: Blocking radius.
        blocked: Pixels that may not be picked besides the annotated ones (earlier rounds' windows).

    Returns:
        (new, centres): the picked pixels as a mask and as (y, x) in pick order.

    Shape:
        score ``[H, W]``, annotated ``[H, W]`` bool -> (``[H, W]`` bool, ``[count', 2]`` long).
    """
    if not isinstance(window_k, int) or window_k < 0:
        raise ValueError(f"window_k must be an integer >= 0, got {window_k!r}")
    return _greedy(score, annotated, count, label_radius=0, block_radius=window_k, blocked=blocked)
