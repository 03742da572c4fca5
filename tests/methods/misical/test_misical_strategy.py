"""The misical strategy in the active-learning loop (spec misical.md section 5.1 and the section 9 oracle
"embeddings are computed once"): one-shot selection takes the static top B over the steps, rollout continues
from the regions labelled so far, the pool is embedded by the first selection only, and the policy file is
checked against the run before any data is read."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from activeseg.al.loop import ALConfig
from activeseg.commands import load_experiment
from activeseg.errors import ConfigError
from activeseg.experiment import prepare, run_config, run_one
from activeseg.methods.misical import strategy as misical_strategy
from activeseg.methods.misical.config import MisicalConfig
from activeseg.methods.misical.embeddings import EmbeddingCache, model_fingerprint, region_embeddings
from activeseg.methods.misical.policy import ClassQNet, oneshot_topB, rollout, save_policy
from activeseg.methods.misical.strategy import MisicalPolicy
from activeseg.store import RunStore

OPTIONS = MisicalConfig(target_class="disc", episode_len=8, pool_size=8)


@pytest.fixture
def setup(tmp_path, al_config, monkeypatch):
    """The prepared synthetic experiment, its pool embeddings (seg_start, [64, 10]) and a saved policy
    (a fixed random Q-network) of class 'disc' for this start model. Embeddings are remembered in a fresh
    cache, so the runs of this test compute them."""
    monkeypatch.setattr(misical_strategy, "SHARED_EMBEDDINGS", EmbeddingCache())
    cfg = load_experiment(al_config)
    exp = prepare(cfg, progress=False)
    emb = region_embeddings("seg_start", exp.pool.features, exp.pool.grid, exp.start_model)
    emb = emb.reshape(-1, emb.shape[-1])  # [8 images * 8 regions, 10]
    torch.manual_seed(0)
    qnet = ClassQNet(emb.shape[-1])
    path = tmp_path / "policy.pt"
    save_policy(path, qnet, OPTIONS, {"seed": 0, "history": [],
                                      "embedding_model": model_fingerprint("seg_start", exp.start_model)})
    return cfg, exp, emb, qnet, path


class SelectCounter:
    """Forward passes of the start model's modules during each call of MisicalPolicy.select."""

    def __init__(self, model, monkeypatch):
        self.calls, self.per_select = 0, []
        for m in model.modules():
            m.register_forward_hook(self._hook)
        select = MisicalPolicy.select

        def counted(policy, ctx):
            before = self.calls
            out = select(policy, ctx)
            self.per_select.append(self.calls - before)
            return out

        monkeypatch.setattr(MisicalPolicy, "select", counted)

    def _hook(self, *_):
        self.calls += 1


def _run(cfg, exp, al):
    run_id = run_one(exp, al, progress=False)
    store = RunStore(cfg.store)
    try:
        return store.steps(run_id), store.evaluations(run_id)
    finally:
        store.close()


def test_oneshot_run_takes_the_static_top_B_and_embeds_the_pool_once(setup, monkeypatch):
    cfg, exp, emb, qnet, path = setup
    counter = SelectCounter(exp.start_model, monkeypatch)
    al = replace(cfg.al, strategy="misical", budgets=(8, 14), misical=replace(cfg.al.misical, policy=path))
    steps, evals = _run(cfg, exp, al)
    assert [len(s["selected"]) for s in steps] == [4, 4, 4, 2]  # K = 4, the last step stops at 14
    picked = [g for s in steps for g in s["selected"]]
    everything = torch.ones(len(emb), dtype=torch.bool)
    assert picked == oneshot_topB(qnet, emb, everything, 14, OPTIONS.episode_len).tolist()  # same ranking, same order
    scores = [x for s in steps for x in s["scores"]]
    assert scores == sorted(scores, reverse=True)  # Q(s_0, a) of each pick, decreasing
    assert counter.per_select[0] > 0 and counter.per_select[1:] == [0, 0, 0]  # embedded by the first selection only
    assert misical_strategy.SHARED_EMBEDDINGS.misses == 1
    assert [e["budget"] for e in evals if e["split"] == "test"] == [8, 14]


def test_rollout_run_continues_from_the_regions_labelled_so_far(setup):
    cfg, exp, emb, qnet, path = setup
    al = replace(cfg.al, strategy="misical", seed=3, budgets=(12,),
                 misical=replace(cfg.al.misical, policy=path, deploy="rollout"))
    steps, _ = _run(cfg, exp, al)
    available = torch.ones(len(emb), dtype=torch.bool)
    for s in steps:  # each step: greedy picks over pools of 8 from rng (seed, step), sigma from everything before it
        before = torch.tensor([g for t in steps if t["step"] < s["step"] for g in t["selected"]], dtype=torch.long)
        expected = rollout(qnet, emb, available, len(s["selected"]), OPTIONS.pool_size, OPTIONS.episode_len,
                           np.random.default_rng([3, s["step"]]), acquired=before)
        assert s["selected"] == expected.tolist()
        available[expected] = False
    assert len({g for s in steps for g in s["selected"]}) == 12


def test_the_run_records_the_misical_section_and_other_runs_do_not(setup, al_config):
    cfg, _, _, _, path = setup
    mine = run_config(cfg, replace(cfg.al, strategy="misical", misical=replace(cfg.al.misical, policy=path)))
    assert mine["al"]["misical"]["policy"] == str(path) and mine["al"]["misical"]["deploy"] == "oneshot_topB"
    other = run_config(cfg, replace(cfg.al, strategy="entropy", misical=MisicalConfig(episodes=5)))
    assert "misical" not in other["al"]
    assert "misical" not in json.dumps(run_config(cfg, cfg.al))  # stores written before the section: unchanged


def test_the_policy_file_is_checked_against_the_run(setup, tmp_path):
    cfg, exp, _, qnet, path = setup
    with pytest.raises(ConfigError, match="activeseg misical train"):
        ALConfig(strategy="misical")
    with pytest.raises(ConfigError, match="is not a file"):
        ALConfig(strategy="misical", misical=MisicalConfig(policy=tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match="trained for 'disc'"):
        ALConfig(strategy="misical", misical=MisicalConfig(policy=path, target_class="box"))
    with pytest.raises(ConfigError, match="al.misical.encoder"):
        ALConfig(strategy="misical", misical=MisicalConfig(policy=path, encoder="handcrafted"))
    assert ALConfig(strategy="misical", misical=MisicalConfig(policy=path, target_class="disc")).misical.policy == path
    # a policy trained on another start model's embeddings is refused at the first selection
    other = tmp_path / "other.pt"
    save_policy(other, qnet, OPTIONS, {"seed": 0, "history": [], "embedding_model": "another-model"})
    al = replace(cfg.al, strategy="misical", budgets=(4,), misical=replace(cfg.al.misical, policy=other))
    with pytest.raises(ConfigError, match="another model"):
        run_one(exp, al, progress=False)


def test_cli_run_without_a_policy_names_the_training_command_and_writes_nothing(tmp_path, al_config_cli):
    cfg = load_experiment(al_config_cli)
    p = subprocess.run([sys.executable, "-m", "activeseg.cli", "run", "--config", str(al_config_cli), "--strategy",
                        "misical", "--target-class", "disc", "--quiet"], capture_output=True, text=True)
    assert p.returncode == 2 and "activeseg misical train" in p.stderr and "Traceback" not in p.stderr
    assert not cfg.store.exists()
