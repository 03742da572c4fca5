"""Known rankings: a policy picks what its scores say, per pool or globally."""

import numpy as np
import pytest
import torch

from activeseg.al.state import LabelledState
from activeseg.al.strategies import ScoredPolicy, SelectionContext
from activeseg.errors import ConfigError
from activeseg.methods import Method, build_policy, lookup, names, register
from activeseg.regions import RegionGrid

GRID = RegionGrid(4, 4, 2, 2)  # 4 regions of 2 x 2 pixels


def _policy_with_pixel_map(pixel_map):
    return ScoredPolicy(lambda ctx, images: pixel_map[images])


def _ctx(state, selection, k, n=2):
    return SelectionContext(model=torch.nn.Identity(), pool=None, state=state, device=torch.device("cpu"),
                            rng=np.random.default_rng(0), generator=torch.Generator().manual_seed(0), k=k, n=n,
                            selection=selection)


def test_global_topk_follows_region_means_and_skips_labelled():
    pixel = torch.zeros(2, 4, 4, dtype=torch.float64)
    pixel[0, :2, :2] = 5.0  # image 0 region 0: mean 5
    pixel[1, 2:, 2:] = 3.0  # image 1 region 3: mean 3
    pixel[1, 0, 0] = 4.0  # image 1 region 0: mean 1
    state = LabelledState(2, GRID)
    policy = _policy_with_pixel_map(pixel)
    picked, scores = ScoredPolicy.select(_as_no_model(policy), _ctx(state, "global_topk", 3))
    assert picked.tolist() == [0, 7, 4] and scores.tolist() == [5.0, 3.0, 1.0]
    state.label([0], 1)
    picked, _ = ScoredPolicy.select(_as_no_model(policy), _ctx(state, "global_topk", 1))
    assert picked.tolist() == [7]


def _as_no_model(policy):
    """region_scores without model.eval(): the fake pixel map needs no network."""

    class NoModel(ScoredPolicy):
        def region_scores(self, ctx, images):
            return ctx.state.grid.pool(self.pixel_scores(ctx, images).double())

    return NoModel(policy.pixel_scores)


def test_pools_pick_each_pool_maximum():
    pixel = torch.arange(2 * 16, dtype=torch.float64).reshape(2, 4, 4)
    state = LabelledState(2, GRID)
    policy = _as_no_model(_policy_with_pixel_map(pixel))
    picked, scores = policy.select(_ctx(state, "pools", k=2, n=2))
    assert len(picked) == 2 and len(set(picked.tolist())) == 2
    all_scores = GRID.pool(pixel).reshape(-1)
    assert torch.equal(scores, all_scores[picked])


def test_registry_lists_valid_names():
    assert set(names()) >= {"random", "entropy", "margin", "bald", "ralis"}
    with pytest.raises(ConfigError, match="valid names"):
        build_policy("coreset")


def test_each_home_registers_itself_and_al_names_no_method():
    """al/ reaches methods through the registry only: no method module is imported by name there."""
    import pathlib

    import activeseg.al

    al_dir = pathlib.Path(activeseg.al.__file__).parent
    for path in al_dir.glob("*.py"):
        text = path.read_text()
        assert "activeseg.methods.ralis" not in text and "activeseg.methods.baselines" not in text, path
    assert lookup("ralis").needs_agent and lookup("ralis").needs_state_set
    assert not lookup("bald").needs_agent
    with pytest.raises(ValueError, match="registered twice"):
        register(Method("random", lambda agent: None))
