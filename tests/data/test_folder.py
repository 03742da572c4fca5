"""Loading the folder format, and one test per kind of bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from activeseg.data.folder import class_pixel_counts, load_split
from activeseg.errors import DatasetError


def test_loads_split_at_working_size(synthetic_dir):
    s = load_split(synthetic_dir, "train", (32, 40), progress=False)
    assert s.images.shape == (12, 3, 32, 40) and s.labels.shape == (12, 32, 40)
    assert s.stems == sorted(s.stems)
    assert set(s.labels.unique().tolist()) <= {0, 1, 2, 3, 4, 5}


def test_stem_subset_keeps_requested_order(synthetic_dir):
    s = load_split(synthetic_dir, "train", (48, 64), stems=["train_0003", "train_0001"], progress=False)
    assert s.stems == ["train_0003", "train_0001"]


def test_class_frequencies_are_unbalanced(synthetic_dir):
    s = load_split(synthetic_dir, "train", (48, 64), progress=False)
    counts = class_pixel_counts(s.labels, 5)
    assert counts[0] > counts[1] > counts[3] and counts[0] > 10 * counts[4] > 0


def _add_image(root, split, stem, size=(64, 48), label_size=None, values=(0,)):
    Image.new("RGB", size).save(root / split / "images" / f"{stem}.png")
    lab = np.full(label_size[::-1] if label_size else size[::-1], values[0], np.uint8)
    lab.flat[: len(values)] = values
    Image.fromarray(lab).save(root / split / "labels" / f"{stem}.png")


def _error(root, split="train", **kw):
    with pytest.raises(DatasetError) as info:
        load_split(root, split, (48, 64), progress=False, **kw)
    return info.value


def test_image_without_label(synthetic_copy):
    (synthetic_copy / "train/labels/train_0002.png").unlink()
    err = _error(synthetic_copy)
    assert "train_0002.png" in str(err.path) and "no label" in err.problem and "labels" in err.remedy


def test_label_without_image(synthetic_copy):
    (synthetic_copy / "train/images/train_0002.png").unlink()
    err = _error(synthetic_copy)
    assert err.path.name == "train_0002.png" and "no image" in err.problem


def test_size_mismatch(synthetic_copy):
    _add_image(synthetic_copy, "train", "zz_bad", size=(64, 48), label_size=(60, 48))
    err = _error(synthetic_copy)
    assert err.path.name == "zz_bad.png" and "differs from image size" in err.problem


def test_label_value_neither_class_nor_ignore(synthetic_copy):
    _add_image(synthetic_copy, "train", "zz_bad", values=(0, 9))
    err = _error(synthetic_copy)
    assert err.path.name == "zz_bad.png" and "[9]" in err.problem and "ignore_index" in err.remedy


def test_truncated_image(synthetic_copy):
    p = synthetic_copy / "train/images/train_0004.png"
    p.write_bytes(p.read_bytes()[:200])
    err = _error(synthetic_copy)
    assert err.path == p and "truncated" in err.problem


def test_unreadable_image(synthetic_copy):
    (synthetic_copy / "train/images/train_0004.png").write_text("not an image")
    assert "unreadable" in _error(synthetic_copy).problem


def test_rgb_label_rejected(synthetic_copy):
    Image.new("RGB", (64, 48)).save(synthetic_copy / "train/labels/train_0001.png")
    err = _error(synthetic_copy)
    assert "class-index" in err.problem


def test_empty_split(synthetic_copy):
    for d in ("images", "labels"):
        (synthetic_copy / "empty" / d).mkdir(parents=True)
    assert "empty" in _error(synthetic_copy, split="empty").problem


def test_missing_split_lists_known(synthetic_copy):
    err = _error(synthetic_copy, split="nope")
    assert "not found" in err.problem and "train" in err.remedy


def test_malformed_classes_json(synthetic_copy):
    (synthetic_copy / "classes.json").write_text(json.dumps({"classes": "road"}))
    assert _error(synthetic_copy).path.name == "classes.json"


def test_dataset_without_ignore_index(synthetic_copy):
    (synthetic_copy / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c", "d", "e", "void"]}))
    s = load_split(synthetic_copy, "val", (48, 64), progress=False)
    assert s.classes.ignore_index is None and s.classes.num_classes == 6


def test_mixed_sizes_and_portrait_stretch_and_pad(synthetic_copy):
    # a portrait image (48 wide x 96 high) whose label is class 1 everywhere
    Image.new("RGB", (48, 96), (255, 0, 0)).save(synthetic_copy / "val/images/portrait.png")
    Image.fromarray(np.ones((96, 48), np.uint8)).save(synthetic_copy / "val/labels/portrait.png")
    stretched = load_split(synthetic_copy, "val", (48, 64), "stretch", stems=["portrait"], progress=False)
    assert (stretched.labels == 1).all()
    padded = load_split(synthetic_copy, "val", (48, 64), "pad", stems=["portrait"], progress=False)
    # scaled to 48 high x 24 wide, centred: columns 20..43 hold the image, the rest is unlabelled
    lab = padded.labels[0]
    assert (lab[:, 20:44] == 1).all() and (lab[:, :20] == 255).all() and (lab[:, 44:] == 255).all()
    assert padded.images[0, 0, :, 30].min() == 255 and padded.images[0, :, :, 5].max() == 0


def test_exif_rotation_is_applied(synthetic_copy):
    img = Image.new("RGB", (48, 64))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display: stored 48x64 shows as 64x48
    img.save(synthetic_copy / "val/images/rotated.jpg", exif=exif)
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(synthetic_copy / "val/labels/rotated.png")
    s = load_split(synthetic_copy, "val", (48, 64), stems=["rotated"], progress=False)
    assert s.images.shape == (1, 3, 48, 64)
