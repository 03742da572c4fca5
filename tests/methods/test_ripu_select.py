"""RIPU's per-image budgets and greedy selection: the spec's oracles (ripu.md sections 2 and 10)."""

import math

import pytest
import torch

from activeseg.methods.ripu.select import (
    pixels_per_round,
    select_pixels,
    select_squares,
    squares_per_round,
)


def _chebyshev(centres: torch.Tensor) -> torch.Tensor:
    """Pairwise Chebyshev distances, diagonal set high. [M, 2] -> [M, M]."""
    d = (centres[:, None, :] - centres[None, :, :]).abs().amax(-1)  # [M, M]
    return d + torch.eye(len(centres), dtype=d.dtype) * 10**6


def _cover_count(centres: torch.Tensor, shape: tuple[int, int], k: int) -> torch.Tensor:
    """How many clipped squares cover each pixel. -> [H, W]."""
    cover = torch.zeros(shape, dtype=torch.long)
    for y, x in centres.tolist():
        cover[max(y - k, 0):y + k + 1, max(x - k, 0):x + k + 1] += 1
    return cover


@pytest.mark.parametrize(("size", "ratio_bp", "expected"), [
    ((360, 480), 220, 85), ((360, 480), 500, 192),
    ((180, 240), 220, 22), ((180, 240), 500, 48),
    ((2048, 1024), 220, 1026),
])
def test_squares_per_round_table(size, ratio_bp, expected):
    assert squares_per_round(*size, ratio_bp) == expected


def test_squares_per_round_spends_the_budget():
    r = squares_per_round(360, 480, 220)
    assert 5 * r * 9 == 3825 and round(100 * 3825 / (360 * 480), 2) == 2.21
    assert squares_per_round(180, 240, 220) * 5 * 9 == 990


def test_float_arithmetic_would_overshoot():
    naive = math.ceil(75 * 240 * 0.07 / 5 / 9)  # 28.000000000000007 in floating point
    assert naive == 29 and squares_per_round(75, 240, 700) == 28


@pytest.mark.parametrize(("size", "defined_at", "expected"), [
    ((2048, 1024), (1280, 640), 21), ((360, 480), (360, 480), 8), ((180, 240), (360, 480), 2),
])
def test_pixels_per_round_table(size, defined_at, expected):
    assert pixels_per_round(*size, 40, defined_at) == expected


def test_budget_arguments_are_checked():
    with pytest.raises(ValueError, match="basis points"):
        squares_per_round(360, 480, 20_000)
    with pytest.raises(ValueError, match="positive integer"):
        squares_per_round(360, 480, 2.2)
    with pytest.raises(ValueError, match="positive integer"):
        pixels_per_round(360, 480, 40, (0, 480))


def test_ra_one_round_at_360x480():
    h, w = 360, 480
    count = squares_per_round(h, w, 220)
    score = torch.rand(h, w, generator=torch.Generator().manual_seed(0))
    new, centres = select_squares(score, torch.zeros(h, w, dtype=torch.bool), count)
    assert count == 85 and centres.shape == (85, 2) and centres.dtype == torch.long
    assert _chebyshev(centres).min() >= 3
    cover = _cover_count(centres, (h, w), 1)
    assert cover.max() == 1  # the squares are pairwise disjoint
    assert torch.equal(new, cover > 0) and int(new.sum()) == int(cover.sum())


def test_ra_five_rounds_never_reselect():
    h, w = 360, 480
    count = squares_per_round(h, w, 220)
    gen = torch.Generator().manual_seed(1)
    annotated = torch.zeros(h, w, dtype=torch.bool)
    total = 0
    for _ in range(5):
        score = torch.rand(h, w, generator=gen)
        new, centres = select_squares(score, annotated, count)
        assert len(centres) == count
        assert not annotated[centres[:, 0], centres[:, 1]].any()  # no centre on an annotated pixel
        assert not (new & annotated).any()  # nothing returned twice
        before = int(annotated.sum())
        annotated |= new
        assert int(annotated.sum()) == before + int(new.sum())
        total += len(centres)
    assert total == 425


def test_ra_squares_are_clipped_at_the_border():
    score = torch.zeros(6, 8)
    score[0, 0] = 1.0
    new, centres = select_squares(score, torch.zeros(6, 8, dtype=torch.bool), 1)
    assert centres.tolist() == [[0, 0]] and int(new.sum()) == 4 and bool(new[:2, :2].all())
    score = torch.zeros(6, 8)
    score[5, 3] = 1.0  # bottom edge: 2 x 3 pixels
    new, _ = select_squares(score, torch.zeros(6, 8, dtype=torch.bool), 1)
    assert int(new.sum()) == 6


def test_ties_break_at_the_first_index_and_blocking_has_radius_2k():
    _, centres = select_squares(torch.zeros(10, 12), torch.zeros(10, 12, dtype=torch.bool), 3)
    assert centres.tolist() == [[0, 0], [0, 3], [0, 6]]
    again = select_squares(torch.zeros(10, 12), torch.zeros(10, 12, dtype=torch.bool), 3)[1]
    assert torch.equal(centres, again)


def test_square_overlapping_earlier_labels_returns_only_new_pixels():
    annotated = torch.zeros(5, 5, dtype=torch.bool)
    annotated[1, 1] = True
    score = torch.zeros(5, 5)
    score[1, 1], score[2, 2] = 5.0, 1.0  # the annotated maximum is skipped
    new, centres = select_squares(score, annotated, 1)
    assert centres.tolist() == [[2, 2]] and int(new.sum()) == 8 and not new[1, 1]


def test_selection_stops_when_nothing_is_left():
    full = torch.ones(4, 4, dtype=torch.bool)
    new, centres = select_squares(torch.zeros(4, 4), full, 3)
    assert centres.shape == (0, 2) and not new.any()
    _, centres = select_squares(torch.zeros(4, 4), torch.zeros(4, 4, dtype=torch.bool), 10)
    assert centres.tolist() == [[0, 0], [0, 3], [3, 0], [3, 3]]  # then every pixel is blocked


def test_pa_one_round_at_360x480():
    h, w = 360, 480
    count = pixels_per_round(h, w, 40, (360, 480))
    score = torch.rand(h, w, generator=torch.Generator().manual_seed(2))
    new, centres = select_pixels(score, torch.zeros(h, w, dtype=torch.bool), count)
    assert count == 8 and centres.shape == (8, 2) and int(new.sum()) == 8
    assert bool(new[centres[:, 0], centres[:, 1]].all())
    assert _chebyshev(centres).min() >= 33


def test_pa_five_rounds_never_reselect():
    h, w = 360, 480
    gen = torch.Generator().manual_seed(3)
    annotated = torch.zeros(h, w, dtype=torch.bool)
    for _ in range(5):
        new, centres = select_pixels(torch.rand(h, w, generator=gen), annotated, 8)
        assert len(centres) == 8 and not (new & annotated).any()
        assert _chebyshev(centres).min() >= 33
        annotated |= new
    assert int(annotated.sum()) == 40


def test_selection_rejects_batched_maps():
    with pytest.raises(ValueError, match="loop over the images"):
        select_squares(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool), 1)
    with pytest.raises(ValueError, match="NaN"):
        select_pixels(torch.full((3, 3), float("nan")), torch.zeros(3, 3, dtype=torch.bool), 1)
