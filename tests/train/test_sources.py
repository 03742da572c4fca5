import torch

from activeseg.features import FeatureCache
from activeseg.models import ModelConfig, build_model
from activeseg.train.sources import FeatureSource, ImageSource, crop_box
from activeseg.train.trainer import make_batches


def test_crop_box_aligned_and_inside():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        y0, y1, x0, x1 = crop_box((180, 240), (100, 130), 32, g)
        assert (y1 - y0, x1 - x0) == (96, 128)  # rounded down to the stride
        assert y0 % 32 == 0 and x0 % 32 == 0 and y1 <= 192 and x1 <= 256  # may pass the border by < 32


def test_every_row_is_reachable_by_some_crop():
    g = torch.Generator().manual_seed(0)
    rows = torch.zeros(180, dtype=torch.bool)
    for _ in range(200):
        y0, y1, _, _ = crop_box((180, 240), (128, 128), 32, g)
        rows[y0:min(y1, 180)] = True
    assert rows.all()


def test_crop_past_the_border_is_padded_unlabelled_and_zero():
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="tiny"), 3)
    images = torch.randint(0, 255, (1, 3, 48, 64), dtype=torch.uint8)
    labels = torch.ones(1, 48, 64, dtype=torch.uint8)
    bank = FeatureCache(model, torch.device("cpu"), "t", None, progress=False).bank(images)
    box = [(32, 64, 0, 64)]  # rows 32..63 of a 48-row image
    feats, lab = FeatureSource(bank, labels, model.encoder.strides).inputs(torch.tensor([0]), torch.tensor([False]), box)
    assert (lab[0, :16] == 1).all() and (lab[0, 16:] == 255).all()
    assert [tuple(f.shape[-2:]) for f in feats] == [(8, 16), (4, 8), (2, 4), (1, 2)]
    assert (feats[0][0, :, 4:] == 0).all() and (feats[0][0, :, :4] != 0).any()
    img, ilab = ImageSource(images, labels).inputs(torch.tensor([0]), torch.tensor([False]), box)
    assert img.shape == (1, 3, 32, 64) and (img[0, :, 16:] == 0).all() and torch.equal(ilab, lab)


def test_crop_box_keeps_region_inside():
    g = torch.Generator().manual_seed(0)
    region = (135, 180, 200, 240)  # bottom-right 45 x 40 region of a 180 x 240 image
    for _ in range(30):
        y0, y1, x0, x1 = crop_box((180, 240), (96, 96), 32, g, keep=region)
        assert y0 <= 135 and 180 <= y1  # aligned windows may pass the border: the region fits
        assert x0 <= 200 and 240 <= x1


def test_crop_larger_than_image_is_whole_side():
    assert crop_box((50, 70), (64, 64), 32, torch.Generator()) == (0, 50, 0, 64)


def test_feature_and_image_sources_cut_the_same_labels():
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="tiny"), 3)
    images = torch.randint(0, 255, (4, 3, 64, 96), dtype=torch.uint8)
    labels = torch.randint(0, 4, (4, 64, 96), dtype=torch.uint8)
    bank = FeatureCache(model, torch.device("cpu"), "t", None, progress=False).bank(images)
    fsrc, isrc = FeatureSource(bank, labels, model.encoder.strides), ImageSource(images, labels)
    idx, flip = torch.tensor([1, 3]), torch.tensor([True, False])
    boxes = [(0, 32, 32, 96), (32, 64, 0, 64)]
    (feats, flab), (imgs, ilab) = fsrc.inputs(idx, flip, boxes), isrc.inputs(idx, flip, boxes)
    assert torch.equal(flab, ilab) and imgs.shape == (2, 3, 32, 64)
    assert torch.equal(ilab[0], labels[1].flip(-1)[0:32, 32:96])
    assert [tuple(f.shape[-2:]) for f in feats] == [(8, 16), (4, 8), (2, 4), (1, 2)]
    assert model(feats, out_size=(32, 64)).shape == (2, 3, 32, 64)


def test_batches_cover_every_item_once():
    labels = torch.zeros(10, 8, 8, dtype=torch.uint8)
    src = ImageSource(torch.zeros(10, 3, 8, 8, dtype=torch.uint8), labels)
    sizes = [y.shape[0] for _, y in make_batches(src, torch.arange(10), 4, torch.Generator().manual_seed(0))]
    assert sizes == [4, 4, 2]
    sizes = [y.shape[0] for _, y in make_batches(src, torch.arange(9), 4, torch.Generator().manual_seed(0))]
    assert sizes == [4, 5]  # no batch of one
