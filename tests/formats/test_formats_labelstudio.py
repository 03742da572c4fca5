import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.brush_rle import encode_brush
from activeseg.formats.common import Box
from activeseg.formats.crops import crop_for_query
from activeseg.formats.labelstudio import (
    prediction_score,
    QUERY_LABEL,
    box_to_percent,
    labelling_config,
    local_files_url,
    make_task,
    parse_export,
    parse_task,
    percent_to_box,
    points_to_percent,
)
from activeseg.regions import RegionGrid

CAMVID = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign_symbol", "fence", "car",
          "pedestrian", "bicyclist"]


# ---- percent coordinates -------------------------------------------------------------------------


def test_region_9_percent_example_and_rounding():
    assert box_to_percent(Box(240, 90, 320, 180), 480, 360) == {
        "x": 50.0, "y": 25.0, "width": 16.666666666666668, "height": 25.0}
    x = box_to_percent(Box(79, 0, 80, 1), 480, 360)["x"]
    assert x == 16.458333333333332 and x * 480 / 100 == 78.99999999999999
    assert percent_to_box(x, 0, 100 / 480, 100 / 360, 480, 360).x0 == 79


@pytest.mark.parametrize("height, width", [(180, 240), (360, 480)])
def test_percent_round_trip_for_every_grid_region(height, width):
    grid = RegionGrid.from_counts(height, width, rows=4, cols=6)
    for rid in range(grid.regions_per_image):
        y0, y1, x0, x1 = grid.box(rid)
        box = Box(x0, y0, x1, y1)
        p = box_to_percent(box, width, height)
        assert percent_to_box(p["x"], p["y"], p["width"], p["height"], width, height) == box


def test_every_one_pixel_offset_round_trips():
    for x0 in range(480):
        p = box_to_percent(Box(x0, x0 % 360, x0 + 1, x0 % 360 + 1), 480, 360)
        assert percent_to_box(p["x"], p["y"], p["width"], p["height"], 480, 360) == (
            x0, x0 % 360, x0 + 1, x0 % 360 + 1)


# ---- export --------------------------------------------------------------------------------------


def test_labelling_config_lists_every_class_plus_void():
    root = ET.fromstring(labelling_config(CAMVID, [[128, 128, 128]] * 11))
    assert root.find("Image").attrib == {"name": "image", "value": "$image", "zoom": "true"}
    query = root.find("RectangleLabels")
    assert query.attrib["name"] == "query" and query.attrib["toName"] == "image"
    assert [lab.attrib["value"] for lab in query] == [QUERY_LABEL]
    brush = root.find("BrushLabels")
    assert brush.attrib["toName"] == "image"
    assert [lab.attrib["value"] for lab in brush] == CAMVID + ["void"]
    assert brush[0].attrib["background"] == "#808080"
    poly = ET.fromstring(labelling_config(CAMVID, tool="polygon")).find("PolygonLabels")
    assert len(poly) == 12
    with pytest.raises(ConfigError, match="choose one of"):
        labelling_config(CAMVID, tool="ellipse")


def _task(crop=None):
    return make_task(
        image_url=local_files_url("train/images/0016E5_07200.jpg"), query_id="r003-0016E5_07200-240-90-320-180",
        box=Box(240, 90, 320, 180), image_size=(480, 360), al_round=3, strategy="ralis", acq_score=0.873,
        model_version="run42-step003", crop=crop)


def test_task_json_holds_the_query_and_a_readonly_box():
    task = json.loads(json.dumps(_task()))
    assert task["data"] == {
        "image": "/data/local-files/?d=train/images/0016E5_07200.jpg",
        "query_id": "r003-0016E5_07200-240-90-320-180",
        "region_px": {"x0": 240, "y0": 90, "x1": 320, "y1": 180},
        "al_round": 3, "strategy": "ralis", "acq_score": 0.873}
    (pred,) = task["predictions"]
    assert pred["model_version"] == "run42-step003" and pred["score"] == pytest.approx(1 / (1 + math.exp(-0.873)))
    assert 0 < prediction_score(-1e9) < prediction_score(0.1) < prediction_score(5.0) < prediction_score(1e9) <= 1
    (rect,) = pred["result"]
    assert rect["from_name"] == "query" and rect["to_name"] == "image" and rect["type"] == "rectanglelabels"
    assert rect["readonly"] is True and rect["image_rotation"] == 0
    assert (rect["original_width"], rect["original_height"]) == (480, 360)
    assert rect["value"] == {"x": 50.0, "y": 25.0, "width": 16.666666666666668, "height": 25.0,
                             "rotation": 0, "rectanglelabels": [QUERY_LABEL]}


def test_crop_task_uses_crop_pixels():
    crop = crop_for_query(Box(240, 90, 320, 180), 480, 360)
    rect = _task(crop)["predictions"][0]["result"][0]
    assert (rect["original_width"], rect["original_height"]) == (120, 136)
    v = rect["value"]
    assert percent_to_box(v["x"], v["y"], v["width"], v["height"], 120, 136) == Box(20, 23, 100, 113)


# ---- import --------------------------------------------------------------------------------------


def _brush(label, mask, rid="b"):
    h, w = mask.shape
    return {"id": rid, "from_name": "mask", "to_name": "image", "type": "brushlabels",
            "original_width": w, "original_height": h, "image_rotation": 0,
            "value": {"format": "rle", "rle": encode_brush(mask), "brushlabels": [label]}}


def _polygon(label, points_px, w, h, rid="p"):
    return {"id": rid, "from_name": "mask", "to_name": "image", "type": "polygonlabels",
            "original_width": w, "original_height": h,
            "value": {"points": points_to_percent(np.array(points_px), w, h), "polygonlabels": [label]}}


def _export_task(results, annotations_extra=(), tid=1):
    query = _task()["predictions"][0]["result"][0]
    ann = {"id": 10, "was_cancelled": False, "updated_at": "2024-05-02T10:00:00.000000Z",
           "result": [query, *results]}
    return {"id": tid, "data": {"query_id": "q1"}, "annotations": [ann, *annotations_extra]}


def test_export_with_brush_and_polygon_decodes_to_a_class_map():
    road = np.zeros((360, 480), bool)
    road[90:180, 240:300] = True
    task = _export_task([_brush("road", road), _polygon("void", [[300, 90], [320, 90], [320, 180], [300, 180]],
                                                         480, 360)])
    (answer,) = parse_export([task], CAMVID, expected_sizes={"q1": (480, 360)})
    assert answer.task_id == 1 and answer.query_id == "q1" and answer.annotation_id == 10
    expected = np.full((360, 480), 255, np.uint8)
    expected[90:180, 240:300] = 3
    expected[90:180, 300:320] = 11  # void survives as 11, unpainted as 255
    assert np.array_equal(answer.labels, expected) and answer.conflicts == 0


def test_latest_non_cancelled_annotation_wins():
    old_mask, new_mask = np.zeros((4, 5), bool), np.zeros((4, 5), bool)
    old_mask[0, 0], new_mask[1, 1] = True, True
    older = {"id": 9, "was_cancelled": False, "updated_at": "2024-05-01T10:00:00.000000Z",
             "result": [_brush("sky", old_mask)]}
    cancelled = {"id": 11, "was_cancelled": True, "updated_at": "2024-05-03T10:00:00.000000Z",
                 "result": [_brush("car", old_mask)]}
    task = {"id": 2, "data": {"query_id": "q2"},
            "annotations": [older, {"id": 10, "was_cancelled": False, "updated_at": "2024-05-02T10:00:00.000000Z",
                                    "result": [_brush("tree", new_mask)]}, cancelled]}
    answer = parse_task(task, CAMVID)
    assert answer.annotation_id == 10 and answer.labels[1, 1] == 5 and (answer.labels == 255).sum() == 19
    none = parse_task({"id": 3, "data": {}, "annotations": [cancelled]}, CAMVID)
    assert none.labels is None and none.annotation_id is None


def test_overlapping_layers_follow_the_overlap_policy():
    a, b = np.zeros((2, 2), bool), np.zeros((2, 2), bool)
    a[0, :], b[:, 1] = True, True
    task = {"id": 4, "data": {}, "annotations": [{"id": 1, "result": [_brush("car", a, "1"), _brush("road", b, "2")]}]}
    ignore = parse_task(task, CAMVID)
    assert ignore.labels.tolist() == [[8, 255], [255, 3]] and ignore.conflicts == 1
    assert parse_task(task, CAMVID, overlap_policy="last_wins").labels.tolist() == [[8, 3], [255, 3]]


def _bad(result, **kwargs):
    task = {"id": 5, "data": {"query_id": "q5"}, "annotations": [{"id": 1, "result": [result]}]}
    return pytest.raises(DatasetError, **kwargs), task


def test_unknown_or_miscased_label_name_is_rejected():
    for name in ("Road", "unknown"):
        raises, task = _bad(_brush(name, np.ones((2, 2), bool)))
        with raises as err:
            parse_task(task, CAMVID, source="export.json")
        msg = str(err.value)
        assert "export.json" in msg and "task 5 (query q5)" in msg and repr(name) in msg and "Remedy" in msg


def test_rotated_rectangle_is_rejected():
    rect = {"id": "r", "from_name": "mask", "to_name": "image", "type": "rectanglelabels", "original_width": 10,
            "original_height": 10, "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 15,
                                             "rectanglelabels": ["car"]}}
    raises, task = _bad(rect, match="rotated by 15")
    with raises:
        parse_task(task, CAMVID)
    rect["value"]["rotation"] = 0  # an unrotated class rectangle is painted
    labels = parse_task({"id": 6, "data": {}, "annotations": [{"id": 1, "result": [rect]}]}, CAMVID).labels
    assert (labels == 8).sum() == 4 and labels[1:3, 1:3].tolist() == [[8, 8], [8, 8]]


def test_alpha_threshold_is_validated_up_front():
    with pytest.raises(ConfigError, match="brush_alpha_threshold"):
        parse_task({"id": 1, "annotations": []}, CAMVID, alpha_threshold=300)


def test_size_mismatch_and_bad_exports_are_rejected(tmp_path):
    raises, task = _bad(_brush("car", np.ones((4, 4), bool)), match="differs from the task image's 5x4")
    with raises:
        parse_task(task, CAMVID, expected_size=(5, 4))
    with pytest.raises(DatasetError, match="JSON_MIN"):
        parse_export([{"id": 1, "image": "x.jpg", "mask": []}], CAMVID)
    raises, task = _bad({"id": "k", "type": "keypointlabels", "value": {"keypointlabels": ["car"]},
                         "original_width": 4, "original_height": 4}, match="not supported")
    with raises:
        parse_task(task, CAMVID)
    path = tmp_path / "export.json"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="export.json: cannot read as JSON"):
        parse_export(path, CAMVID)
    path.write_text(json.dumps([_export_task([_brush("car", np.ones((360, 480), bool))])]))
    assert (parse_export(path, CAMVID)[0].labels == 8).all()
