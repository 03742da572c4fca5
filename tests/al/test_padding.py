"""Letterboxed datasets (data.fit: pad): padding is never selected, scored or counted as labels."""

import pytest
import torch
import yaml

from activeseg.al.oracle import GroundTruthOracle
from activeseg.data.folder import load_split
from activeseg.data.synthetic import write_synthetic
from activeseg.regions import RegionGrid


def test_pool_over_valid_pixels_only():
    grid = RegionGrid(2, 4, 2, 2)  # two regions side by side
    scores = torch.tensor([[[1.0, 3.0, 10.0, 10.0], [5.0, 7.0, 10.0, 10.0]]], dtype=torch.float64)
    valid = torch.tensor([[[True, False, False, False], [True, True, False, False]]])
    assert grid.pool(scores, valid).tolist() == [[(1 + 5 + 7) / 3, 0.0]]
    assert grid.pool(scores).tolist() == [[4.0, 10.0]]


def test_oracle_selectable_regions_and_padding_bin():
    grid = RegionGrid(2, 4, 2, 2)
    labels = torch.tensor([[[0, 1, 255, 255], [7, 1, 255, 255]]], dtype=torch.uint8)  # 7 = void (C = 2)
    content = torch.tensor([[[True, True, False, False], [True, False, False, False]]])
    oracle = GroundTruthOracle(labels, content)
    state = oracle.new_state(grid)
    assert state.selectable.tolist() == [[True, False]] and state.available().tolist() == [[True, False]]
    with pytest.raises(ValueError, match="hold no image pixels"):
        state.label([1], 1)
    state.label([0], 1)
    # classes 0 and 1, then void (the 7), then padding (the one padded pixel of region 0)
    assert oracle.class_histogram(state, 2).tolist() == [1, 1, 1, 1]
    assert GroundTruthOracle(labels).class_histogram(state, 2).tolist() == [1, 2, 1]  # no mask: no padding bin


def test_portrait_images_are_letterboxed_with_a_content_mask(tmp_path):
    root = write_synthetic(tmp_path / "tall", {"train": 2}, size=(96, 48), seed=1)
    split = load_split(root, "train", (48, 64), "pad", progress=False)
    assert split.content is not None and split.content.shape == (2, 48, 64)
    assert split.content[0, :, 20:44].all() and not split.content[0, :, :20].any()  # 24 px wide, centred
    assert (split.labels[0][~split.content[0]] == 255).all()
    assert load_split(root, "train", (48, 64), "stretch", progress=False).content is None


@pytest.mark.parametrize("strategy", ["entropy", "bald"])
def test_uncertainty_never_selects_pure_padding(tmp_path, al_config, strategy):
    from activeseg.commands import load_experiment, run_al
    from activeseg.store import RunStore

    root = write_synthetic(tmp_path / "tall", {"train": 12, "val": 4, "test": 4}, size=(96, 48), seed=2)
    cfg = yaml.safe_load(al_config.read_text())
    cfg["data"].update(dataset=str(root), fit="pad")
    cfg["al"].update(strategy=strategy, budgets=[16, 32])  # 8 pool images x 4 regions with image pixels
    al_config.write_text(yaml.safe_dump(cfg))
    run_al(load_experiment(al_config), progress=False)

    grid = RegionGrid.from_counts(48, 64, 2, 4)  # columns 0 and 3 (x < 16, x >= 48) are pure padding
    store = RunStore.open_existing(cfg["store"])
    steps = store.steps(f"{strategy}-s1")
    evals = [e for e in store.evaluations() if e["split"] == "test"]
    store.close()
    picked = [g for s in steps for g in s["selected"]]
    assert len(picked) == 32
    assert all(grid.split_id(g)[1] % 4 in (1, 2) for g in picked)
    hist = evals[-1]["class_histogram"]
    assert len(hist) == 5 + 2  # 5 classes, void, padding
    # 32 regions of 24 x 16 px; columns 1 and 2 span x 16..48 of which 20..44 is image: a quarter is padding
    assert hist[-1] == 32 * 24 * 16 // 4
    assert sum(hist[:-1]) == 32 * 24 * 16 * 3 // 4
