import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.common import Box
from activeseg.formats.cvat import (
    CvatTaskImage,
    decode_runs,
    encode_runs,
    labelmap_text,
    mask_to_cvat,
    parse_cvat_xml,
    parse_labelmap,
    read_cvat_xml_zip,
    read_segmask_zip,
    write_cvat_xml,
    write_segmask_zip,
)

CAMVID = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign_symbol", "fence", "car",
          "pedestrian", "bicyclist"]
COLORS = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [0, 0, 192], [128, 128, 0],
          [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]]
BOX_MASK = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 0]], dtype=bool)


def _xml(shapes: str, width=480, height=360, name="0016E5_07200.png") -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta/>'
            f'<image id="0" name="{name}" width="{width}" height="{height}">{shapes}</image></annotations>')


# ---- runs ----------------------------------------------------------------------------------------


def test_spec_runs_example():
    assert encode_runs(BOX_MASK) == [1, 2, 1, 4, 2, 1, 1]
    assert np.array_equal(decode_runs([1, 2, 1, 4, 2, 1, 1], 4, 3), BOX_MASK)
    assert encode_runs(np.array([[1, 1], [0, 1]], bool)) == [0, 2, 1, 1]  # foreground first -> leading 0


def test_runs_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (13, 15), (90, 80)]:
        mask = rng.random(shape) < 0.4
        assert np.array_equal(decode_runs(encode_runs(mask), shape[1], shape[0]), mask)
    assert sum(encode_runs(rng.random((15, 13)) < 0.5)) == 195


@pytest.mark.parametrize("runs", [[1, 2, 1, 4, 2, 1], [1, 2, 1, 4, 2, 1, 2], [1, -2, 5, 4, 2, 1, 1]])
def test_runs_that_do_not_add_up_are_rejected(runs):
    with pytest.raises(DatasetError, match="has 12 pixels"):
        decode_runs(runs, 4, 3, source="annotations.xml", item="image 'a', mask #0")


def test_mask_to_cvat_uses_the_tight_box():
    full = np.zeros((360, 480), bool)
    full[50:53, 100:104] = BOX_MASK
    runs, box = mask_to_cvat(full)
    assert runs == [1, 2, 1, 4, 2, 1, 1] and box == Box(100, 50, 104, 53)
    assert mask_to_cvat(np.zeros((3, 3), bool)) is None


# ---- XML -----------------------------------------------------------------------------------------


def test_xml_mask_polygon_and_box_are_painted_in_image_pixels():
    shapes = ('<box label="query_region" source="manual" occluded="0" xtl="100.00" ytl="50.00" '
              'xbr="120.00" ybr="60.00" z_order="0"/>'
              '<mask label="car" source="manual" occluded="0" rle="1, 2, 1, 4, 2, 1, 1" left="100" top="50" '
              'width="4" height="3" z_order="0"/>'
              '<polygon label="void" occluded="0" points="110.0,50.0;114.0,50.0;114.0,52.0;110.0,52.0" z_order="0"/>'
              '<box label="road" occluded="0" xtl="115.00" ytl="55.00" xbr="117.00" ybr="56.00" z_order="0"/>')
    answers = parse_cvat_xml(_xml(shapes), CAMVID, expected_sizes={"0016E5_07200.png": (480, 360)})
    answer = answers["0016E5_07200.png"]
    assert answer.shapes == 3 and answer.conflicts == 0  # the query box is not a shape
    expected = np.full((360, 480), 255, np.uint8)
    expected[50:53, 100:104][BOX_MASK] = 8
    expected[50:52, 110:114] = 11
    expected[55, 115:117] = 3
    assert np.array_equal(answer.labels, expected)


def test_rotated_box_is_rejected():
    shape = '<box label="car" xtl="1" ytl="1" xbr="5" ybr="5" rotation="30.0"/>'
    with pytest.raises(DatasetError, match="rotated by 30.0 degrees"):
        parse_cvat_xml(_xml(shape), CAMVID)


@pytest.mark.parametrize(
    "shape, match",
    [
        ('<mask label="car" rle="1, 2, 1, 4, 2, 1" left="0" top="0" width="4" height="3"/>', "has 12 pixels"),
        ('<mask label="car" rle="12" left="478" top="0" width="4" height="3"/>', "leaves the 480x360 image"),
        ('<box label="Car" xtl="1" ytl="1" xbr="5" ybr="5"/>', "label 'Car' is not a class name"),
        ('<polygon label="road" points="1,1;4,4"/>', "malformed polygon"),
        ('<polyline label="road" points="1,1;4,4;5,5"/>', "<polyline> is not supported"),
    ],
)
def test_bad_shapes_are_rejected_naming_file_and_item(shape, match):
    with pytest.raises(DatasetError, match=match) as err:
        parse_cvat_xml(_xml(shape), CAMVID, source="annotations.xml")
    assert "annotations.xml" in str(err.value) and "image '0016E5_07200.png'" in str(err.value)


def test_wrong_version_size_or_xml_is_rejected():
    with pytest.raises(DatasetError, match="version"):
        parse_cvat_xml(_xml("").replace("1.1", "2.0", 1), CAMVID)
    with pytest.raises(DatasetError, match="not well-formed"):
        parse_cvat_xml("<annotations>", CAMVID)
    with pytest.raises(DatasetError, match="is 480x360, the exported image 120x136"):
        parse_cvat_xml(_xml(""), CAMVID, expected_sizes={"0016E5_07200.png": (120, 136)})


def test_export_xml_round_trips_query_boxes():
    images = [CvatTaskImage("crops/r003-0016E5_07200-240-90-320-180.png", 120, 136, (Box(20, 23, 100, 113),))]
    xml = write_cvat_xml(images, CAMVID, COLORS)
    assert 'label="query_region"' in xml and 'xtl="20.00" ytl="23.00" xbr="100.00" ybr="113.00"' in xml
    assert "<name>void</name>" in xml and "<name>bicyclist</name>" in xml
    answers = parse_cvat_xml(xml, CAMVID)
    answer = answers["crops/r003-0016E5_07200-240-90-320-180.png"]
    assert answer.labels.shape == (136, 120) and (answer.labels == 255).all() and answer.shapes == 0


def test_xml_zip_is_read_safely(tmp_path):
    path = tmp_path / "task.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("annotations.xml", _xml('<box label="car" xtl="0" ytl="0" xbr="2" ybr="1"/>', 4, 2, "a.png"))
        zf.writestr("images/a.png", b"")
    assert read_cvat_xml_zip(path, CAMVID)["a.png"].labels.tolist() == [[8, 8, 255, 255], [255] * 4]
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../../outside.xml", "x")
    with pytest.raises(DatasetError, match="'../../outside.xml' has an absolute path"):
        read_cvat_xml_zip(path, CAMVID)


# ---- Segmentation mask zip -----------------------------------------------------------------------


def test_labelmap_matches_the_spec():
    lines = labelmap_text(CAMVID, COLORS).splitlines()
    assert lines[1:] == ["background:0,0,0::", "sky:128,128,128::", "building:128,0,0::", "pole:192,192,128::",
                         "road:128,64,128::", "sidewalk:0,0,192::", "tree:128,128,0::", "sign_symbol:192,128,128::",
                         "fence:64,64,128::", "car:64,0,128::", "pedestrian:64,64,0::", "bicyclist:0,128,192::",
                         "void:32,32,32::"]
    colors = parse_labelmap("\n".join(lines), CAMVID)
    assert colors[0] == 255 and colors[128 << 16 | 64 << 8 | 128] == 3 and colors[32 << 16 | 32 << 8 | 32] == 11
    with pytest.raises(ConfigError, match="colours must differ"):
        labelmap_text(CAMVID, COLORS, void_color=(128, 128, 128))


def test_segmask_round_trip_keeps_void_and_unlabelled():
    rng = np.random.default_rng(0)
    maps = {"0016E5_07200": rng.choice([*range(12), 255], size=(36, 48)).astype(np.uint8),
            "seq/0001TP_006690": np.full((10, 12), 255, np.uint8)}
    data = write_segmask_zip(maps, CAMVID, COLORS)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("ImageSets/Segmentation/default.txt").decode() == "0016E5_07200\nseq/0001TP_006690\n"
        assert Image.open(io.BytesIO(zf.read("SegmentationClass/0016E5_07200.png"))).mode == "RGB"
    back = read_segmask_zip(data, CAMVID, expected_sizes={"0016E5_07200": (48, 36)})
    assert back.keys() == maps.keys()
    for name, labels in maps.items():
        assert np.array_equal(back[name], labels)


def _zip(tmp_path, labelmap: str, png: Image.Image, extra: str | None = None):
    buf = io.BytesIO()
    png.save(buf, format="PNG")
    path = tmp_path / "segmask.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("labelmap.txt", labelmap)
        zf.writestr("SegmentationClass/img.png", buf.getvalue())
        if extra:
            zf.writestr(extra, "x")
    return path


def test_segmask_palette_png_is_read_as_rgb(tmp_path):
    png = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), mode="P")
    png.putpalette([0, 0, 0, 64, 0, 128, 32, 32, 32] + [0] * (253 * 3))
    labels = read_segmask_zip(_zip(tmp_path, labelmap_text(CAMVID, COLORS), png), CAMVID)["img"]
    assert labels.tolist() == [[255, 8], [11, 8]]


def test_segmask_rejects_undeclared_colours_unknown_names_and_unsafe_entries(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    path = _zip(tmp_path, labelmap_text(CAMVID, COLORS), Image.fromarray(rgb))
    with pytest.raises(DatasetError, match=r"colours \['1,2,3'\] are not declared") as err:
        read_segmask_zip(path, CAMVID)
    assert str(path) in str(err.value) and "SegmentationClass/img.png" in str(err.value)
    black = Image.fromarray(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(DatasetError, match="labelmap.txt line 2: label 'Car' is not a class name"):
        read_segmask_zip(_zip(tmp_path, "background:0,0,0::\nCar:64,0,128::\n", black), CAMVID)
    with pytest.raises(DatasetError, match="not 'name:R,G,B:parts:actions'"):
        read_segmask_zip(_zip(tmp_path, "background:0,0::\n", black), CAMVID)
    with pytest.raises(DatasetError, match="absolute path or a '..'"):
        read_segmask_zip(_zip(tmp_path, labelmap_text(CAMVID, COLORS), black, "/abs/evil.png"), CAMVID)
    with pytest.raises(DatasetError, match="label values \\[12\\]"):
        write_segmask_zip({"x": np.full((2, 2), 12, np.uint8)}, CAMVID, COLORS)
