import pytest
import torch

from activeseg.errors import ConfigError
from activeseg.regions import RegionGrid


def test_camvid_default_grid():
    g = RegionGrid.from_counts(180, 240)
    assert (g.rows, g.cols, g.region_h, g.region_w, g.regions_per_image) == (4, 6, 45, 40, 24)
    assert g.box(9) == (45, 90, 120, 160)  # row 1, col 3
    full = RegionGrid.from_counts(360, 480)
    assert full.box(9) == (90, 180, 240, 320)  # the spec's example


def test_region_map_and_masks_agree():
    g = RegionGrid(180, 240, 45, 40)
    rmap = g.region_map()
    for rid in (0, 5, 9, 23):
        assert torch.equal(rmap == rid, g.mask(rid))
        y0, y1, x0, x1 = g.box(rid)
        assert g.region_of(y0, x0) == rid and g.region_of(y1 - 1, x1 - 1) == rid


def test_non_divisible_size_clips_last_row_and_column():
    g = RegionGrid(100, 70, 45, 40)
    assert (g.rows, g.cols) == (3, 2)
    assert g.box(5) == (90, 100, 40, 70)  # last region: 10 x 30 pixels
    counts = torch.bincount(g.region_map().reshape(-1), minlength=6)
    assert counts.tolist() == [45 * 40, 45 * 30, 45 * 40, 45 * 30, 10 * 40, 10 * 30]
    assert counts.sum() == 100 * 70  # every pixel in exactly one region


def test_pool_means_per_region():
    g = RegionGrid(4, 6, 2, 3)
    scores = torch.arange(24, dtype=torch.float64).reshape(1, 4, 6)
    # region 0 holds pixels (0..1, 0..2): values 0,1,2,6,7,8 -> mean 4
    assert g.pool(scores)[0].tolist() == [4.0, 7.0, 16.0, 19.0]


def test_global_ids_round_trip():
    g = RegionGrid.from_counts(180, 240)
    assert g.global_id(3, 7) == 79 and g.split_id(79) == (3, 7)


def test_bad_grid_is_rejected_with_remedy():
    with pytest.raises(ConfigError, match="smaller region size"):
        RegionGrid(40, 40, 50, 10)
