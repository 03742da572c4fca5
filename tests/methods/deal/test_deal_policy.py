"""DEAL's policies: whole images per step, the scores they pick by, the random candidate subset."""

import numpy as np
import pytest
import torch

from activeseg.al.state import LabelledState
from activeseg.al.strategies import SelectionContext
from activeseg.data.folder import load_split
from activeseg.methods import build_policy
from activeseg.methods.deal import DealConfig, DealImagePolicy, DealRegionPolicy
from activeseg.methods.deal.scores import difficulty_entropy, difficulty_score
from activeseg.models import ModelConfig, build_model
from activeseg.regions import RegionGrid
from activeseg.train.sources import ImageSource

GRID = RegionGrid.from_counts(48, 64, 4, 6)  # 24 regions, as CamVid's grid


@pytest.fixture(scope="module")
def setup(synthetic_dir):
    torch.manual_seed(0)
    split = load_split(synthetic_dir, "train", (48, 64), progress=False)
    model = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=16), 5,
                        {"difficulty": DealConfig(pam_gamma_init=0.5).head_spec()}).eval()
    return model, ImageSource(split.images, split.labels)


def _ctx(model, pool, state, k, seed=0, content=None):
    return SelectionContext(model, pool, state, torch.device("cpu"), np.random.default_rng(seed),
                            torch.Generator().manual_seed(seed), k=k, n=3, batch_size=5, content=content)


def _outputs(model, pool):
    with torch.no_grad():
        return model.outputs(pool.images)


def test_image_unit_labels_whole_images(setup):
    model, pool = setup
    state = LabelledState(len(pool), GRID)
    policy = build_policy("deal_de_image")
    assert isinstance(policy, DealImagePolicy)
    images = set()
    for s in range(1, 6):
        picked, scores = policy.select(_ctx(model, pool, state, 24, seed=s))
        state.label(picked, s)
        assert state.num_labelled == 24 * s
        images |= set((picked // 24).tolist())
        assert len(images) == s and state.labelled_step[sorted(images)].gt(0).all()
        assert len(set(scores.tolist())) == 1


@pytest.mark.parametrize("score", ["ds", "de"])
def test_image_unit_picks_the_best_scored_image(setup, score):
    model, pool = setup
    state = LabelledState(len(pool), GRID)
    state.label(torch.arange(24, 48), 1)  # image 1 is done: never a candidate
    out = _outputs(model, pool)
    one = torch.zeros(48, 64, dtype=torch.long)
    per_image = (difficulty_score(out["difficulty"], one, 1) if score == "ds"
                 else difficulty_entropy(out["difficulty"], one, 1, 8))[:, 0]
    per_image[1] = -1
    policy = DealImagePolicy(score, DealConfig(sub_ratio=1.0))
    picked, scores = policy.select(_ctx(model, pool, state, 24))
    best = int(per_image.argmax())
    assert picked.tolist() == list(range(best * 24, best * 24 + 24))
    assert torch.isclose(scores[0], per_image[best])
    # half of the 11 open images are scored: the pick is the best of those drawn
    half = DealImagePolicy(score, DealConfig(sub_ratio=0.5))
    rng = np.random.default_rng(7)
    drawn = np.sort(rng.choice(11, size=6, replace=False))
    open_images = torch.tensor([i for i in range(12) if i != 1])[torch.as_tensor(drawn)]
    picked, _ = half.select(_ctx(model, pool, state, 24, seed=7))
    assert int(picked[0] // 24) == int(open_images[per_image[open_images].argmax()])


def test_region_unit_scores_every_region_by_the_map(setup):
    model, pool = setup
    state = LabelledState(len(pool), GRID)
    out = _outputs(model, pool)
    policy = build_policy("deal_ds")
    assert isinstance(policy, DealRegionPolicy)
    expected = difficulty_score(out["difficulty"], GRID.region_map(), 24)
    images = torch.tensor([0, 3, 7])
    assert torch.allclose(policy.region_scores(_ctx(model, pool, state, 4), images), expected[images])
    picked, scores = policy.select(_ctx(model, pool, state, 4))  # pools: one pick per pool
    assert len(picked) == 4 and torch.allclose(scores, expected.reshape(-1)[picked])


def test_global_topk_subset(setup):
    model, pool = setup
    state = LabelledState(len(pool), GRID)
    state.label(torch.arange(0, 30), 1)
    out = _outputs(model, pool)
    de = difficulty_entropy(out["difficulty"], GRID.region_map(), 24, 8).reshape(-1)
    full = DealRegionPolicy("de", DealConfig(region_selection="global_topk_subset", sub_ratio=1.0))
    picked, _ = full.select(_ctx(model, pool, state, 5))
    avail = state.available().reshape(-1)
    assert picked.tolist() == torch.where(avail, de, torch.tensor(-1.0, dtype=torch.float64)).topk(5).indices.tolist()
    half = DealRegionPolicy("de", DealConfig(region_selection="global_topk_subset", sub_ratio=0.5))
    picked, scores = half.select(_ctx(model, pool, state, 5, seed=3))
    ids = avail.nonzero().reshape(-1)
    drawn = ids[torch.as_tensor(np.sort(np.random.default_rng(3).choice(len(ids), size=(len(ids) + 1) // 2,
                                                                        replace=False)))]
    assert set(picked.tolist()) <= set(drawn.tolist())
    assert picked.tolist() == drawn[de[drawn].topk(5).indices].tolist()


def test_padding_is_not_scored(setup):
    model, pool = setup
    state = LabelledState(len(pool), GRID)
    content = torch.ones(len(pool), 48, 64, dtype=torch.bool)
    content[:, :, 60:] = False
    out = _outputs(model, pool)
    expected = difficulty_score(out["difficulty"], GRID.region_map(), 24, content)
    got = DealRegionPolicy("ds", DealConfig()).region_scores(_ctx(model, pool, state, 4, content=content),
                                                              torch.arange(len(pool)))
    assert torch.allclose(got, expected)
    assert not torch.allclose(got, difficulty_score(out["difficulty"], GRID.region_map(), 24))


def test_model_without_difficulty_head_is_refused(setup):
    _, pool = setup
    plain = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=16), 5)
    with pytest.raises(ValueError, match="no difficulty head"):
        build_policy("deal_de").select(_ctx(plain, pool, LabelledState(len(pool), GRID), 4))


def test_region_level_deal_refuses_unlabelled_as_correct():
    """Spec 7: with region labels, unlabelled pixels must stay out of L_dif (else 'unlabelled = easy')."""
    from activeseg.errors import ConfigError

    with pytest.raises(ConfigError, match="dif_unlabelled must be 'exclude'"):
        DealRegionPolicy("de", DealConfig(dif_unlabelled="as_correct"))
    DealImagePolicy("de", DealConfig(dif_unlabelled="as_correct"))  # whole images: allowed
