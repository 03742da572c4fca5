"""Fixed region embeddings (spec misical.md section 3): shapes, unit encoder parts, positions, pooling
against hand computations, handcrafted known answers, and the section 9 oracle "embeddings are computed
once" (counted forward passes)."""

import math

import pytest
import torch

from activeseg.features import FeatureCache
from activeseg.methods.misical.embeddings import (
    EmbeddingCache, cell_bounds, handcrafted_features, pool_cells, position_columns, region_embeddings,
)
from activeseg.models.segmenter import ModelConfig, build_model
from activeseg.regions import RegionGrid
from activeseg.train.sources import FeatureSource, ImageSource

H, W = 96, 128
GRID = RegionGrid.from_counts(H, W, 4, 6)  # 24 x 22 px; the last column is clipped to 18 px
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=16), num_classes=5)
    # non-trivial batch-norm statistics, so that eval mode matters
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (5, 3, H, W), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


@pytest.fixture(scope="module")
def source(images):
    return ImageSource(images, torch.zeros(len(images), H, W, dtype=torch.uint8))


class ForwardCounter:
    """Counts forward calls of every module of a model, and calls of the decoder's ``embed``."""

    def __init__(self, model, monkeypatch):
        self.calls = 0
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()]
        embed = model.decoder.embed

        def counted_embed(*args, **kwargs):
            self.calls += 1
            return embed(*args, **kwargs)

        monkeypatch.setattr(model.decoder, "embed", counted_embed)

    def _hook(self, *_):
        self.calls += 1

    def take(self) -> int:
        n, self.calls = self.calls, 0
        return n

    def remove(self):
        for h in self.handles:
            h.remove()


# --- pooling -----------------------------------------------------------------------------------

def test_cell_bounds_floor_and_ceil_of_the_scaled_box():
    grid = RegionGrid.from_counts(180, 240, 4, 6)  # 45 x 40 cells; stride-32 map 6 x 8
    bounds = cell_bounds(grid, 32, (6, 8))
    rows = [bounds[r * 6][:2] for r in range(4)]
    cols = [bounds[c][2:] for c in range(6)]
    assert rows == [(0, 2), (1, 3), (2, 5), (4, 6)]
    assert cols == [(0, 2), (1, 3), (2, 4), (3, 5), (5, 7), (6, 8)]
    # every cell covers at least one feature cell, even on a map coarser than the grid
    for a, b, c, d in cell_bounds(grid, 64, (3, 4)):
        assert b > a and d > c and b <= 3 and d <= 4


def test_pooled_values_equal_a_hand_computation():
    grid = RegionGrid(48, 64, 24, 32)  # 2 x 2 cells on a stride-32 map of 2 x 2
    fmap = torch.tensor([[1.0, 2.0], [3.0, 5.0]])[None, None].repeat(1, 2, 1, 1)  # [1, 2, 2, 2]
    fmap[0, 1] *= -1
    pooled = pool_cells(fmap, grid, 32)  # [1, 4, 2]
    # rows: 0..24 -> feature row 0; 24..48 -> floor 0 .. ceil 1.5 = rows 0..1. cols: 0..32 -> 0, 32..64 -> 1
    expected = torch.tensor([1.0, 2.0, (1.0 + 3.0) / 2, (2.0 + 5.0) / 2])
    assert torch.allclose(pooled[0, :, 0], expected)
    assert torch.allclose(pooled[0, :, 1], -expected)


def test_position_columns_are_row_over_3_and_col_over_5():
    pos = position_columns(GRID)
    assert pos.shape == (24, 2)
    for rid in range(24):
        row, col = divmod(rid, 6)
        assert torch.allclose(pos[rid], torch.tensor([row / 3, col / 5]))


# --- the kinds ------------------------------------------------------------------------------------

def test_imagenet_embeddings_pool_the_deepest_map(model, source, images):
    emb = region_embeddings("imagenet", source, GRID, model, CPU, batch_size=2)
    assert emb.shape == (5, 24, 16 + 2) and emb.dtype == torch.float32
    assert torch.allclose(emb[..., :16].norm(dim=-1), torch.ones(5, 24), atol=1e-5)
    assert torch.allclose(emb[..., 16:], position_columns(GRID).expand(5, -1, -1))
    # hand computation for region rid 11 (row 1, col 5: y 24..48, x 110..128) on the 3 x 4 stride-32 map
    with torch.no_grad():
        deep = model.encode(images)[-1]  # [5, 16, 3, 4]
    cell = deep[:, :, 0:2, 3:4].mean(dim=(-2, -1))  # floor(24/32)=0 .. ceil(48/32)=2; floor(110/32)=3 .. 4
    assert torch.allclose(emb[:, 11, :16], cell / cell.norm(dim=-1, keepdim=True), atol=1e-5)
    no_pos = region_embeddings("imagenet", source, GRID, model, CPU, add_position=False)
    assert torch.allclose(no_pos, emb[..., :16], atol=1e-6)
    assert torch.allclose(region_embeddings("imagenet", None, GRID, model, CPU, images=images), emb, atol=1e-6)


def test_seg_start_embeddings_pool_the_decoder_features(model, source, images):
    model.train()
    emb = region_embeddings("seg_start", source, GRID, model, CPU, batch_size=3)
    assert model.training  # the caller's mode is restored
    model.eval()
    assert emb.shape == (5, 24, 8 + 2)
    assert torch.allclose(emb[..., :8].norm(dim=-1), torch.ones(5, 24), atol=1e-5)
    with torch.no_grad():
        fused = model.decoder.embed(model.encode(images))  # [5, 8, 24, 32] at stride 4
    cell = fused[:, :, 6:12, 5:11].mean(dim=(-2, -1))  # region 7 (row 1, col 1): y 24..48 -> 6..12, x 22..44 -> 5..11
    assert torch.allclose(emb[:, 7, :8], cell / cell.norm(dim=-1, keepdim=True), atol=1e-5)
    # from cached (float16) encoder features: the same embeddings up to the cache's precision
    bank = FeatureCache(model, CPU, "test", None, progress=False).bank(images)
    from_cache = region_embeddings("seg_start", FeatureSource(bank, source.labels, model.encoder.strides), GRID,
                                   model, CPU)
    assert torch.allclose(from_cache, emb, atol=2e-2)


def test_handcrafted_known_answers():
    img = torch.zeros(1, 3, H, W, dtype=torch.uint8)
    img[..., :, 66:] = 255  # a vertical step inside column 3 (x 66..88)
    img[:, 0] = torch.arange(W, dtype=torch.uint8)  # red: a ramp 0..127 -> bins 0..3
    feats = handcrafted_features(img, GRID)  # [1, 24, 25]
    assert feats.shape == (1, 24, 25)
    assert torch.allclose(feats[..., :24].reshape(1, 24, 3, 8).sum(-1), torch.ones(1, 24, 3))
    # green: region 0 (x 0..22) all 0 -> bin 0; region 5 (x 110..128) all 255 -> bin 7
    assert feats[0, 0, 8:16].tolist() == [1.0] + [0.0] * 7
    assert feats[0, 5, 8:16].tolist() == [0.0] * 7 + [1.0]
    # red in region 0: values 0..21 -> 22 columns, 0..21 // 32 = bin 0
    assert feats[0, 0, :8].tolist() == [1.0] + [0.0] * 7
    # gradient: grey = (x + g + b) / 3 / 255; inside region 1 (x 22..44) only the ramp: gx = 4 * 2/3/255
    assert math.isclose(float(feats[0, 1, 24]), 4 * 2 / 3 / 255 / (4 * math.sqrt(2)), rel_tol=1e-4)
    assert float(feats[0, 3, 24]) > float(feats[0, 1, 24])  # the step is in region 3
    assert 0.0 <= float(feats[..., 24].min()) and float(feats[..., 24].max()) <= 1.0


def test_handcrafted_embeddings_from_a_source_or_images(source, images):
    emb = region_embeddings("handcrafted", source, GRID, batch_size=2)
    assert emb.shape == (5, 24, 25 + 2)
    assert torch.allclose(emb[..., :25], handcrafted_features(images, GRID))
    assert torch.equal(region_embeddings("handcrafted", None, GRID, images=images), emb)


def test_errors_name_the_remedy(model, source, images):
    with pytest.raises(ValueError, match="handcrafted"):
        region_embeddings("resnet", source, GRID, model)
    with pytest.raises(ValueError, match="model="):
        region_embeddings("imagenet", source, GRID)
    bank = FeatureCache(model, CPU, "test", None, progress=False).bank(images)
    with pytest.raises(ValueError, match="ImageSource"):
        region_embeddings("handcrafted", FeatureSource(bank, source.labels, model.encoder.strides), GRID)
    with pytest.raises(ValueError, match="grid"):
        region_embeddings("imagenet", source, RegionGrid.from_counts(48, 64, 4, 6), model)


# --- computed once ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["imagenet", "seg_start"])
def test_embeddings_are_computed_once(kind, model, source, tmp_path, monkeypatch):
    counter = ForwardCounter(model, monkeypatch)
    try:
        cache = EmbeddingCache(tmp_path)
        first = cache.get(kind, source, GRID, model, CPU)
        assert counter.take() > 0 and cache.misses == 1
        second = cache.get(kind, source, GRID, model, CPU)
        assert counter.take() == 0 and cache.hits == 1
        assert torch.equal(first, second)
        second += 1  # a copy: the cache is intact
        assert torch.equal(cache.get(kind, source, GRID, model, CPU), first)
        # a fresh cache object reads the disk entry: still no forward pass
        fresh = EmbeddingCache(tmp_path)
        assert torch.equal(fresh.get(kind, source, GRID, model, CPU), first)
        assert counter.take() == 0 and fresh.misses == 0
        # another setting is another entry
        fresh.get(kind, source, GRID, model, CPU, add_position=False)
        assert counter.take() > 0
    finally:
        counter.remove()


def test_the_key_follows_the_part_of_the_model_used(model, source):
    cache = EmbeddingCache()
    other = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=16), num_classes=5)
    other.load_state_dict(model.state_dict())
    key = {kind: cache.key(kind, source, GRID, model, True) for kind in ("imagenet", "seg_start")}
    with torch.no_grad():
        other.decoder.classifier.weight.add_(1.0)  # a retrained decoder: new seg_start key, same imagenet key
    assert cache.key("seg_start", source, GRID, other, True) != key["seg_start"]
    assert cache.key("imagenet", source, GRID, other, True) == key["imagenet"]
    changed = ImageSource(source.images.clone(), source.labels)
    changed.images[2, 0, 0, 0] ^= 1
    assert cache.key("imagenet", changed, GRID, model, True) != key["imagenet"]
    assert cache.key("imagenet", source, RegionGrid.from_counts(H, W, 2, 3), model, True) != key["imagenet"]
    assert cache.key("handcrafted", source, GRID, None, True) == cache.key("handcrafted", source, GRID, other, True)
