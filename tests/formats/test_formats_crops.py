import numpy as np
import pytest

from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.common import Box
from activeseg.formats.crops import (
    CropSpec,
    ImportPolicy,
    crop_answer_to_image,
    crop_for_query,
    crop_pixels,
    merge_answer,
)
from activeseg.regions import RegionGrid

H, W, C = 360, 480, 11
REGION_9 = Box(240, 90, 320, 180)


def _empty():
    return np.full((H, W), 255, np.uint8), np.zeros((H, W), np.uint8)


# ---- crops (§7) ----------------------------------------------------------------------------------


def test_region_9_crop_example():
    crop = crop_for_query(REGION_9, W, H)
    assert crop.box == Box(220, 67, 340, 203) and (crop.box.width, crop.box.height) == (120, 136)
    assert crop.offset == (220, 67) and crop.target_in_crop == Box(20, 23, 100, 113)
    assert crop.to_manifest("crops/q.png") == {"path": "crops/q.png", "offset_x": 220, "offset_y": 67,
                                               "target_in_crop": [20, 23, 100, 113], "width": 120, "height": 136}
    image = np.arange(H * W * 3).reshape(H, W, 3)
    assert np.array_equal(crop_pixels(image, crop), image[67:203, 220:340])


def test_crop_is_clipped_to_the_image_and_margins_round_up():
    corner = crop_for_query(Box(0, 0, 80, 90), W, H)
    assert corner.box == Box(0, 0, 100, 113) and corner.target_in_crop == Box(0, 0, 80, 90)
    assert crop_for_query(Box(400, 270, 480, 360), W, H).box == Box(380, 247, 480, 360)
    assert crop_for_query(Box(100, 100, 130, 110), W, H, margin=0.1).box == Box(97, 99, 133, 111)
    assert crop_for_query(REGION_9, W, H, margin=0).box == REGION_9
    with pytest.raises(ConfigError, match="crop_margin"):
        crop_for_query(REGION_9, W, H, margin=-0.1)
    with pytest.raises(DatasetError, match="not inside"):
        crop_for_query(Box(400, 0, 481, 10), W, H)


def test_every_grid_region_crop_contains_its_target():
    for height, width in [(180, 240), (360, 480)]:
        grid = RegionGrid.from_counts(height, width)
        for rid in range(grid.regions_per_image):
            y0, y1, x0, x1 = grid.box(rid)
            crop = crop_for_query(Box(x0, y0, x1, y1), width, height)
            t = crop.target_in_crop
            assert crop.box.inside(width, height) and t.inside(crop.box.width, crop.box.height)
            assert t.shifted(*crop.offset) == (x0, y0, x1, y1)


def test_crop_answer_is_pasted_at_its_offset_and_context_discarded():
    crop = crop_for_query(REGION_9, W, H)
    rng = np.random.default_rng(0)
    answer = rng.integers(0, 12, size=(136, 120)).astype(np.uint8)  # painted everywhere, context too
    full = crop_answer_to_image(answer, crop, W, H)
    labels, bitmap = _empty()
    result = merge_answer(labels, bitmap, full, REGION_9, C)
    expected = np.full((H, W), 255, np.uint8)
    expected[90:180, 240:320] = answer[23:113, 20:100]
    assert np.array_equal(result.labels, expected)
    assert (result.bitmap[90:180, 240:320] == 255).all() and result.bitmap.sum() == 255 * 80 * 90
    assert result.outside == 120 * 136 - 80 * 90 and result.coverage == 1.0 and result.status == "labelled"
    assert (labels == 255).all() and (bitmap == 0).all()  # inputs untouched
    with pytest.raises(DatasetError, match="the crop is 136x120"):
        crop_answer_to_image(answer.T, crop, W, H)


# ---- import contract (§2) ------------------------------------------------------------------------


def test_random_imports_change_only_their_boxes_and_the_bitmap_is_the_union():
    rng = np.random.default_rng(1)
    grid = RegionGrid.from_counts(H, W)
    labels, bitmap = _empty()
    union = np.zeros((H, W), bool)
    for rid in rng.choice(grid.regions_per_image, size=10, replace=True):
        y0, y1, x0, x1 = grid.box(int(rid))
        box = Box(x0, y0, x1, y1)
        answer = rng.choice([*range(12), 255], size=(H, W)).astype(np.uint8)
        result = merge_answer(labels, bitmap, answer, box, C)
        outside = np.ones((H, W), bool)
        outside[box.slices] = False
        assert np.array_equal(result.labels[outside], labels[outside])
        assert np.array_equal(result.bitmap[outside], bitmap[outside])
        union[box.slices] = True
        labels, bitmap = result.labels, result.bitmap
        assert np.array_equal(bitmap != 0, union)
        assert not ((labels != 255) & (bitmap == 0)).any()  # label != 255 => bitmap != 0
    again = merge_answer(labels, bitmap, answer, box, C)  # re-importing is idempotent
    assert np.array_equal(again.labels, labels) and np.array_equal(again.bitmap, bitmap)


def test_void_and_unlabelled_survive():
    labels, bitmap = _empty()
    answer = np.full((H, W), 255, np.uint8)
    answer[90:135, 240:320] = 11
    result = merge_answer(labels, bitmap, answer, REGION_9, C)
    assert (result.labels[90:135, 240:320] == 11).all() and (result.labels[135:180, 240:320] == 255).all()
    assert result.unpainted == 45 * 80 and result.coverage == 0.5


def test_unpainted_policies():
    labels, bitmap = _empty()
    answer = np.full((H, W), 255, np.uint8)
    answer[90:180, 240:316] = 3  # 95% painted
    assert merge_answer(labels, bitmap, answer, REGION_9, C).notes == []
    answer[90:180, 300:320] = 255  # 75% painted
    default = merge_answer(labels, bitmap, answer, REGION_9, C)
    assert default.status == "labelled" and (default.labels[90:180, 300:320] == 255).all()
    assert default.coverage == 0.75 and default.notes
    void = merge_answer(labels, bitmap, answer, REGION_9, C, ImportPolicy(unpainted_policy="void"))
    assert (void.labels[90:180, 300:320] == 11).all() and (void.labels[90:180, 240:300] == 3).all()
    rejected = merge_answer(labels, bitmap, answer, REGION_9, C, ImportPolicy(unpainted_policy="reject"))
    assert rejected.status == "rejected" and (rejected.labels == 255).all() and (rejected.bitmap == 0).all()
    lenient = ImportPolicy(unpainted_policy="reject", min_coverage=0.7)
    assert merge_answer(labels, bitmap, answer, REGION_9, C, lenient).status == "labelled"


def test_labelled_pixels_are_kept_unless_overwrite():
    labels, bitmap = _empty()
    first = np.full((H, W), 3, np.uint8)
    second = np.full((H, W), 8, np.uint8)
    second[90:100, 240:320] = 255  # unpainted never erases
    base = merge_answer(labels, bitmap, first, REGION_9, C)
    kept = merge_answer(base.labels, base.bitmap, second, REGION_9, C)
    assert (kept.labels[REGION_9.slices] == 3).all()
    over = merge_answer(base.labels, base.bitmap, second, REGION_9, C, ImportPolicy(overwrite=True))
    assert (over.labels[90:100, 240:320] == 3).all() and (over.labels[100:180, 240:320] == 8).all()


def test_keep_outside_box_adds_bonus_labels_without_the_bitmap():
    labels, bitmap = _empty()
    answer = np.full((H, W), 255, np.uint8)
    answer[80:190, 230:330] = 5
    result = merge_answer(labels, bitmap, answer, REGION_9, C, ImportPolicy(keep_outside_box=True))
    assert (result.labels[80:190, 230:330] == 5).all()
    assert result.bitmap.sum() == 255 * REGION_9.area and result.outside == 110 * 100 - REGION_9.area


def test_invalid_input_is_rejected():
    labels, bitmap = _empty()
    with pytest.raises(DatasetError, match="answer is 240x180, the image 480x360") as err:
        merge_answer(labels, bitmap, np.zeros((180, 240), np.uint8), REGION_9, C, item="query r003-x")
    assert "query r003-x" in str(err.value)
    with pytest.raises(DatasetError, match="not inside the 480x360 image"):
        merge_answer(labels, bitmap, labels, Box(400, 300, 481, 360), C)
    bad = np.full((H, W), 12, np.uint8)
    with pytest.raises(DatasetError, match=r"label values \[12\]"):
        merge_answer(labels, bitmap, bad, REGION_9, C)
    for kwargs in ({"unpainted_policy": "paint"}, {"min_coverage": 1.5}, {"overlap_policy": "first"}):
        with pytest.raises(ConfigError):
            ImportPolicy(**kwargs)
    assert isinstance(CropSpec(REGION_9, REGION_9).target_in_crop, Box)
