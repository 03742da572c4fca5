import numpy as np
import pytest

from activeseg.errors import DatasetError
from activeseg.formats.coco import (
    categories,
    counts_to_string,
    decode,
    decode_counts,
    encode,
    encode_counts,
    semantic_annotations,
    string_to_counts,
)
from activeseg.regions import RegionGrid

CAMVID = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign_symbol", "fence", "car",
          "pedestrian", "bicyclist"]


def test_spec_2x3_example():
    mask = np.array([[0, 1, 1], [0, 0, 1]], bool)
    assert encode_counts(mask) == [2, 1, 1, 2]
    assert encode(mask) == {"size": [2, 3], "counts": "2111"}
    assert encode(mask, compressed=False) == {"size": [2, 3], "counts": [2, 1, 1, 2]}
    assert string_to_counts("2111") == [2, 1, 1, 2]
    assert np.array_equal(decode({"size": [2, 3], "counts": "2111"}), mask)


def test_negative_difference_example():
    assert string_to_counts("231N") == [2, 3, 1, 1]  # last value stored as 1 - 3 = -2
    assert counts_to_string([2, 3, 1, 1]) == "231N"


def test_region_9_string():
    mask = RegionGrid.from_counts(360, 480).mask(9).numpy()
    counts = [86490] + [90, 270] * 79 + [90, 57780]
    assert len(counts) == 161 and encode_counts(mask) == counts
    text = counts_to_string(counts)
    assert len(text) == 169 and text.startswith("j^d2j2^8") and text.endswith("VUh1")
    assert set(text[8:-4]) == {"0"}  # the repeated deltas encode as '0'
    assert string_to_counts(text) == counts
    assert np.array_equal(decode({"size": [360, 480], "counts": text}), mask)


def test_column_major_on_a_non_symmetric_mask():
    mask = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]], bool)  # 3 x 4
    # columns top to bottom: (1,1,0) (0,1,0) (0,0,0) (0,0,1)
    assert encode_counts(mask) == [0, 2, 2, 1, 6, 1]
    assert encode_counts(mask.T) != encode_counts(mask)
    assert np.array_equal(decode_counts([0, 2, 2, 1, 6, 1], 3, 4), mask)


def test_random_round_trips_both_forms():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 3), (45, 40), (360, 480)]:
        mask = rng.random(shape) < 0.2
        for compressed in (True, False):
            assert np.array_equal(decode(encode(mask, compressed=compressed)), mask)
    big = [70000, 3, 1, 123456, 0, 5]  # large values and large negative deltas
    assert string_to_counts(counts_to_string(big)) == big


def test_bad_rle_is_rejected():
    with pytest.raises(DatasetError, match="counts sum to 5") as err:
        decode({"size": [2, 3], "counts": [2, 1, 1, 1]}, source="instances.json", item="annotation 4")
    assert "instances.json" in str(err.value) and "annotation 4" in str(err.value)
    with pytest.raises(DatasetError, match="character"):
        string_to_counts("21~1")
    with pytest.raises(DatasetError, match="ends inside a value"):
        string_to_counts("2j")  # 'j' announces another group
    with pytest.raises(DatasetError, match="'size'"):
        decode({"size": [2], "counts": "2111"})


def test_semantic_annotations_export_classes_in_answered_boxes_only():
    labels = np.full((4, 5), 255, np.uint8)
    labels[0, 0:2] = 3  # road
    labels[1:3, 3] = 8  # car
    labels[3, 4] = 11  # void: never exported
    labels[2, 0] = 5  # tree, outside the answered region
    bitmap = np.zeros((4, 5), np.uint8)
    bitmap[:, 1:] = 255
    anns = semantic_annotations(labels, bitmap, 11, image_id=7, first_id=100)
    assert [(a["id"], a["category_id"], a["area"], a["bbox"]) for a in anns] == [
        (100, 4, 1, [1, 0, 1, 1]), (101, 9, 2, [3, 1, 1, 2])]
    assert all(a["image_id"] == 7 and a["iscrowd"] == 0 for a in anns)
    assert np.array_equal(decode(anns[1]["segmentation"]), labels == 8)
    assert semantic_annotations(labels, bitmap, 11, 7, compressed=False)[0]["iscrowd"] == 1
    assert categories(CAMVID)[0] == {"id": 1, "name": "sky"} and len(categories(CAMVID)) == 11
