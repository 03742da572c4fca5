import numpy as np

from activeseg.data.synthetic import make_sample, write_synthetic


def test_same_seed_same_bytes(tmp_path):
    a = write_synthetic(tmp_path / "a", {"train": 3}, seed=7)
    b = write_synthetic(tmp_path / "b", {"train": 3}, seed=7)
    for f in sorted((a / "train" / "labels").iterdir()):
        assert f.read_bytes() == (b / "train" / "labels" / f.name).read_bytes()


def test_frequencies_strongly_unbalanced():
    rng = np.random.default_rng(0)
    labels = np.stack([make_sample(rng, 48, 64)[1] for _ in range(50)])
    freq = np.bincount(labels.reshape(-1), minlength=6)[:5] / labels.size
    assert freq[0] > 0.4 and freq[4] < 0.01 and freq[0] / freq[4] > 50
    assert np.all(freq > 0)
