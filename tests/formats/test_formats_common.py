import zipfile

import numpy as np
import pytest

from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.common import (
    Box,
    label_values,
    merge_layers,
    open_safe_zip,
    rasterise_polygon,
    read_zip_entry,
    value_of,
)

CAMVID = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign_symbol", "fence", "car",
          "pedestrian", "bicyclist"]


def test_box_geometry():
    b = Box(240, 90, 320, 180)
    assert (b.width, b.height, b.area) == (80, 90, 7200)
    a = np.zeros((360, 480))
    a[b.slices] = 1
    assert a.sum() == 7200 and a[90, 240] == 1 and a[179, 319] == 1 and a[180, 320] == 0
    assert b.inside(480, 360) and not Box(400, 0, 481, 10).inside(480, 360)
    assert not Box(5, 5, 5, 6).inside(10, 10)  # empty
    assert b.shifted(-220, -67) == Box(20, 23, 100, 113)


def test_label_values_void_is_number_of_classes():
    values = label_values(CAMVID)
    assert values["sky"] == 0 and values["bicyclist"] == 10 and values["void"] == 11
    with pytest.raises(ConfigError, match="reserved"):
        label_values(["sky", "void"])
    with pytest.raises(ConfigError, match="distinct"):
        label_values(["sky", "sky"])


def test_unknown_or_miscased_name_is_an_error_naming_file_and_item():
    values = label_values(CAMVID)
    assert value_of("road", values, "x.json", "task 1") == 3
    for bad in ("Road", "background", "", None):
        with pytest.raises(DatasetError) as err:
            value_of(bad, values, "x.json", "task 1")
        assert "x.json" in str(err.value) and "task 1" in str(err.value) and "Remedy" in str(err.value)


def test_merge_layers_overlap_policies():
    a = np.zeros((2, 3), bool)
    a[0, :2] = True
    b = np.zeros((2, 3), bool)
    b[0, 1:] = True
    same = a.copy()
    labels, conflicts = merge_layers([(3, a), (8, b), (3, same)], 2, 3, "ignore")
    assert labels.tolist() == [[3, 255, 8], [255, 255, 255]] and conflicts == 1
    labels, conflicts = merge_layers([(3, a), (8, b)], 2, 3, "last_wins")
    assert labels.tolist() == [[3, 8, 8], [255, 255, 255]] and conflicts == 1
    labels, conflicts = merge_layers([(3, a), (3, a)], 2, 3)
    assert conflicts == 0 and labels[0, 0] == 3
    with pytest.raises(ConfigError, match="overlap_policy"):
        merge_layers([], 2, 3, "first_wins")


def test_polygon_of_a_half_open_box_covers_exactly_the_box():
    x0, y0, x1, y1 = 240, 90, 320, 180
    mask = rasterise_polygon(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), 360, 480)
    expected = np.zeros((360, 480), bool)
    expected[y0:y1, x0:x1] = True
    assert np.array_equal(mask, expected)


def _centre_inside(px, py, poly):
    # plain even-odd crossing test, one point at a time
    inside = False
    n = len(poly)
    for i in range(n):
        (xa, ya), (xb, yb) = poly[i], poly[(i + 1) % n]
        if (ya > py) != (yb > py) and px < xa + (py - ya) * (xb - xa) / (yb - ya):
            inside = not inside
    return inside


def test_polygon_uses_the_pixel_centre_rule():
    poly = [(1.2, 0.3), (11.7, 2.1), (6.4, 9.6), (3.3, 5.05), (0.2, 8.9)]  # concave, no centre on an edge
    mask = rasterise_polygon(np.array(poly), 10, 12)
    expected = np.array([[_centre_inside(x + 0.5, y + 0.5, poly) for x in range(12)] for y in range(10)])
    assert mask.any() and np.array_equal(mask, expected)


def test_polygon_outside_the_image_is_clipped():
    mask = rasterise_polygon(np.array([[-5, -5], [3, -5], [3, 2], [-5, 2]]), 4, 4)
    assert mask.sum() == 6 and mask[:2, :3].all()


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../b.png", "/etc/passwd", "\\abs.txt", "C:/x.txt",
                                  "a\\..\\b.txt"])
def test_zip_with_unsafe_entry_is_rejected(tmp_path, name):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("annotations.xml", "<annotations/>")
        zf.writestr(zipfile.ZipInfo(name), "x")
    with pytest.raises(DatasetError, match="absolute path or a '..'") as err:
        open_safe_zip(path)
    assert str(path) in str(err.value)


def test_safe_zip_reads_entries_and_reports_missing_ones(tmp_path):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images/a..b.png", "dots inside a name are fine")
    with open_safe_zip(path) as zf:
        assert read_zip_entry(zf, "images/a..b.png", path) == b"dots inside a name are fine"
        with pytest.raises(DatasetError, match="no entry 'annotations.xml'"):
            read_zip_entry(zf, "annotations.xml", path)
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(DatasetError, match="cannot open as a zip"):
        open_safe_zip(tmp_path / "bad.zip")
