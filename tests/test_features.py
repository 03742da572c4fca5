import torch

from activeseg.features import FeatureCache
from activeseg.models import ModelConfig, build_model


def _setup(tmp_path, seed=0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(encoder="tiny"), 3)
    images = torch.randint(0, 255, (5, 3, 64, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return model, images, FeatureCache(model, torch.device("cpu"), "toy", tmp_path, batch_size=2, progress=False)


def test_bank_holds_float16_features_of_image_and_mirror(tmp_path):
    model, images, cache = _setup(tmp_path)
    bank = cache.bank(images)
    assert [tuple(l.shape) for l in bank.levels] == [(5, 2, 8, 16, 24), (5, 2, 12, 8, 12), (5, 2, 16, 4, 6), (5, 2, 16, 2, 3)]
    assert bank.levels[0].dtype == torch.float16
    model.eval()
    with torch.no_grad():
        direct = model.encode(images[2:3])
        mirror = model.encode(images[2:3].flip(-1))
    got = bank.get(torch.tensor([2, 2]), torch.tensor([False, True]))
    for lvl, d, m in zip(got, direct, mirror):
        torch.testing.assert_close(lvl[0].float(), d[0], atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(lvl[1].float(), m[0], atol=2e-2, rtol=1e-2)


def test_memory_then_disk_hits(tmp_path):
    model, images, cache = _setup(tmp_path)
    first = cache.bank(images)
    assert (cache.hits, cache.misses) == (0, 5)
    cache.bank(images[:3])
    assert (cache.hits, cache.misses) == (3, 5)
    fresh = FeatureCache(model, torch.device("cpu"), "toy", tmp_path, progress=False)
    again = fresh.bank(images)
    assert (fresh.hits, fresh.misses) == (5, 0)
    assert all(torch.equal(a, b) for a, b in zip(first.levels, again.levels))
    assert not list(tmp_path.rglob(".tmp-*"))  # nothing half-written


def test_key_change_invalidates(tmp_path):
    model, images, cache = _setup(tmp_path)
    cache.bank(images)
    changed = images.clone()
    changed[0, 0, 0, 0] ^= 1  # one pixel of one image
    c2 = FeatureCache(model, torch.device("cpu"), "toy", tmp_path, progress=False)
    c2.bank(changed)
    assert (c2.hits, c2.misses) == (4, 1)
    with torch.no_grad():  # new encoder weights: nothing may be reused
        next(model.encoder.parameters()).mul_(1.5)
    c3 = FeatureCache(model, torch.device("cpu"), "toy", tmp_path, progress=False)
    c3.bank(images)
    assert (c3.hits, c3.misses) == (0, 5)
    c4 = FeatureCache(model, torch.device("cpu"), "toy", tmp_path, progress=False)
    c4.bank(torch.nn.functional.interpolate(images.float(), size=(32, 48)).to(torch.uint8))  # new resolution
    assert c4.hits == 0


def test_corrupt_disk_entry_is_recomputed(tmp_path):
    model, images, cache = _setup(tmp_path)
    cache.bank(images)
    victim = sorted(tmp_path.rglob("*.pt"))[0]
    victim.write_bytes(b"garbage")
    c2 = FeatureCache(model, torch.device("cpu"), "toy", tmp_path, progress=False)
    c2.bank(images)
    assert (c2.hits, c2.misses) == (4, 1)
