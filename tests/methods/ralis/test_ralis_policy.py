"""RALIS observation and greedy policy on a tiny model and hand-made labels."""

import numpy as np
import pytest
import torch

from activeseg.al.candidates import sample_pools
from activeseg.al.oracle import GroundTruthOracle
from activeseg.al.state import LabelledState
from activeseg.al.strategies import SelectionContext
from activeseg.errors import ConfigError
from activeseg.al.loop import ALConfig
from activeseg.methods import build_policy
from activeseg.methods.ralis.features import DescriptorConfig, kl_histogram
from activeseg.methods.ralis.policy import RalisPolicy, load_agent, observe, save_agent
from activeseg.methods.ralis.qnet import QueryNetwork
from activeseg.models.segmenter import ModelConfig, build_model
from activeseg.regions import RegionGrid
from activeseg.train.sources import ImageSource

GRID = RegionGrid.from_counts(32, 64, 2, 4)  # 8 regions of 16 x 16
C = 3


def _setup(num_pool=6, num_state=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=16), C)
    images = torch.randint(0, 256, (num_pool + num_state, 3, 32, 64), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, C + 1, (num_pool + num_state, 32, 64), generator=g, dtype=torch.uint8)  # C = void
    pool = ImageSource(images[:num_pool], labels[:num_pool])
    state_set = ImageSource(images[num_pool:], labels[num_pool:])
    return model, pool, state_set, GroundTruthOracle(labels[:num_pool])


def test_region_class_counts_by_hand():
    labels = torch.zeros(2, 32, 64, dtype=torch.uint8)
    labels[1, 0:16, 16:32] = 2  # image 1, rid 1
    labels[1, 0:4, 16:32] = 7  # void (>= C) goes to the last bin
    counts = GroundTruthOracle(labels).region_class_counts(torch.tensor([9, 0]), GRID, C)
    assert counts.tolist() == [[0, 0, 192, 64], [256, 0, 0, 0]]


def test_fixed_kl_range_keeps_scale():
    h = kl_histogram(torch.tensor([[0.0, 5.0, 30.0], [1.0, 1.0, 1.0]], dtype=torch.float64), bins=4, fixed_max=20.0)
    assert h.tolist() == [[1 / 3, 1 / 3, 0.0, 1 / 3], [1.0, 0.0, 0.0, 0.0]]  # 30 lands in the last bin


def test_observation_shapes_and_labelled_histogram():
    model, pool, state_set, oracle = _setup()
    state = LabelledState(len(pool), GRID)
    pools = sample_pools(state.available(), 4, 3, np.random.default_rng(0))
    desc = DescriptorConfig()
    obs = observe(model, pool, state_set, state, oracle, pools, C, torch.device("cpu"), desc)
    assert obs.state.shape == (16, C + 1 + 192)
    assert [c.shape for c in obs.candidates] == [(3, C + 1 + 192 + 64)] * 4
    psi = torch.cat(obs.candidates)
    assert torch.count_nonzero(psi[:, -64:-32]) == 0  # nothing labelled yet: h_lab is all zeros
    assert torch.allclose(psi[:, -32:].sum(1), torch.ones(12))
    assert torch.allclose(psi[:, :C + 1].sum(1), torch.full((12,), 256 + (C + 1) * 1e-7))

    state.label(torch.tensor([0, 9, 20]), 1)
    obs = observe(model, pool, state_set, state, oracle, pools, C, torch.device("cpu"),
                  DescriptorConfig(class_hist_void_bin=False, class_hist_normalise=True))
    psi = torch.cat(obs.candidates)
    assert psi.shape[1] == C + 192 + 64
    assert torch.allclose(psi[:, -64:-32].sum(1), torch.ones(12))  # three labelled regions: h_lab sums to 1
    assert torch.allclose(psi[:, :C].sum(1), torch.ones(12), atol=1e-5)  # fractions of the region


def test_greedy_policy_picks_one_region_per_pool_by_q(tmp_path):
    model, pool, state_set, oracle = _setup()
    state = LabelledState(len(pool), GRID)
    state.label(torch.tensor([1, 2, 3]), 1)
    qnet = QueryNetwork(16, C + 1 + 192, 64)
    path = tmp_path / "agent.pt"
    save_agent(path, qnet, DescriptorConfig(), C, {"note": "untrained"})
    policy = build_policy("ralis", ALConfig(strategy="ralis", agent=path))
    assert isinstance(policy, RalisPolicy)
    ctx = SelectionContext(model, pool, state, torch.device("cpu"), np.random.default_rng(3),
                           torch.Generator().manual_seed(0), k=4, n=3, revealed=oracle, state_set=state_set)
    picked, scores = policy.select(ctx)
    pools = sample_pools(state.available(), 4, 3, np.random.default_rng(3))  # the pools the policy saw
    assert len(picked) == 4 and len(set(picked.tolist())) == 4
    assert state.available().reshape(-1)[picked].all()
    obs = observe(model, pool, state_set, state, oracle, pools, C, torch.device("cpu"), DescriptorConfig())
    q = policy.q_values(obs)
    for p, qi, pick, score in zip(pools, q, picked, scores):
        assert pick == p[int(qi.argmax())] and torch.isclose(score.float(), qi.max())


def test_agent_checkpoint_errors(tmp_path):
    with pytest.raises(ConfigError, match="activeseg agent train"):
        load_agent(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not an activeseg RALIS agent"):
        load_agent(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="needs a trained agent"):
        build_policy("ralis")
    qnet, desc, c = QueryNetwork(8, C + 1 + 192, 64), DescriptorConfig(entropy_pool="adaptive"), C
    save_agent(tmp_path / "a.pt", qnet, desc, c, {})
    back, desc_back, c_back = load_agent(tmp_path / "a.pt")
    assert desc_back == desc and c_back == C and back.state_regions == 8
    assert all(torch.equal(a, b) for a, b in zip(qnet.state_dict().values(), back.state_dict().values()))
    model, pool, state_set, oracle = _setup()  # 16 state regions, but the agent expects 8
    ctx = SelectionContext(model, pool, LabelledState(len(pool), GRID), torch.device("cpu"),
                           np.random.default_rng(0), torch.Generator(), k=2, n=2, revealed=oracle,
                           state_set=state_set)
    with pytest.raises(ConfigError, match="state of 8 regions"):
        RalisPolicy.load(tmp_path / "a.pt").select(ctx)
