"""Agent training end to end on synthetic data: episodes, checkpoints, resume, and the trained agent
used by `activeseg run --strategy ralis`."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import yaml

from activeseg.config import load_yaml
from activeseg.errors import ConfigError
from activeseg.methods.ralis.agent import AgentConfig, train_agent
from activeseg.methods.ralis.policy import load_agent


def test_episodes_checkpoints_and_resume(agent_yaml):
    cfg = load_yaml(agent_yaml, AgentConfig)
    one = train_agent(cfg, progress=False)
    ep = one["episodes"][0]
    assert len(one["episodes"]) == 1 and len(ep["rewards"]) == 4  # 16 regions, 4 per step
    assert ep["labelled_class_pixels"] and sum(ep["labelled_class_pixels"]) == 16 * 24 * 16  # 16 regions of 24x16
    first = ep["step_miou"][0]
    assert ep["rewards"][0] == pytest.approx(100 * (first - one["start_miou"]))  # Q1 default: a gain
    assert ep["rewards"][1] == pytest.approx(100 * (ep["step_miou"][1] - first))
    out = cfg.out
    for name in ("agent_last.pt", "agent_best.pt", "resume.pt", "history.json", "agent_training.png"):
        assert (out / name).is_file(), name
    assert load_agent(out / "agent_last.pt")[0].state_regions == 16  # 2 state images x 8 regions

    two = train_agent(replace(cfg, episodes=2), progress=False)  # resumes after episode 1
    assert len(two["episodes"]) == 2 and two["episodes"][0] == json.loads(json.dumps(ep))
    resume = torch.load(out / "resume.pt", weights_only=False)
    assert resume["learner"]["t"] == 8 and len(resume["learner"]["replay"]["items"]) == 12  # FIFO at capacity
    with pytest.raises(ConfigError, match="another configuration"):
        train_agent(replace(cfg, budget=8, episodes=3), progress=False)


def test_reference_first_reward_is_the_whole_miou(agent_yaml):
    cfg = load_yaml(agent_yaml, AgentConfig)
    cfg = replace(cfg, dqn=replace(cfg.dqn, first_reward_baseline="zero", lr_decay=0.97))
    ep = train_agent(cfg, progress=False)["episodes"][0]
    assert ep["rewards"][0] == pytest.approx(100 * ep["step_miou"][0])
    assert ep["dqn_lr"] == pytest.approx(1e-3 * 0.97 ** 5)  # 4 steps + the end of the episode


def _cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "activeseg.cli", *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def test_cli_agent_train_then_ralis_run(tmp_path, agent_yaml, al_config_cli):
    p = _cli("agent", "train", agent_yaml, "--quiet")
    assert "1 episodes" in p.stdout and "agent_last.pt" in p.stdout
    agent = tmp_path / "agent" / "agent_last.pt"
    cfg = yaml.safe_load(al_config_cli.read_text())
    cfg["state_images"] = str(tmp_path / "state.txt")  # the agent's state set (disjoint from the pool)
    al_config_cli.write_text(yaml.safe_dump(cfg))
    run = _cli("run", "--config", al_config_cli, "--strategy", "ralis", "--agent", agent, "--seed", 1, "--quiet")
    assert "ralis-s1: 8 regions -> test mIoU" in run.stdout and "ralis-s1: 16 regions" in run.stdout
    best = _cli("run", "--config", al_config_cli, "--strategy", "ralis", "--agent", tmp_path / "agent" / "agent_best.pt",
                "--name", "ralis_best", "--seed", 1, "--quiet")
    assert "ralis_best-s1: 16 regions" in best.stdout  # a second agent, side by side in the same store
    table = _cli("plot", tmp_path / "runs" / "store.sqlite").stdout
    assert "| ralis |" in table and "| ralis_best |" in table
    missing = _cli("run", "--config", al_config_cli, "--strategy", "ralis", check=False)
    assert missing.returncode == 2 and "activeseg agent train" in missing.stderr


def test_reward_over_a_random_pick_cancels_the_fine_tuning_noise(agent_yaml):
    """gain_over_random: a policy that picks what the random twin picks earns exactly 0 at every step
    (same model, same regions, same randomness); the step mIoU still follows the chosen regions."""
    from activeseg.methods.ralis.agent import prepare_env, run_episode

    cfg = replace(load_yaml(agent_yaml, AgentConfig), reward="gain_over_random")
    env = prepare_env(cfg, progress=False)
    import numpy as np

    episode = 0
    twin = np.random.default_rng([cfg.seed, episode, 1])  # the twin's stream, replayed

    def same_as_twin(obs, step, rng):
        return [int(twin.integers(len(p))) for p in obs.pools], 0.0

    record = run_episode(cfg, env, episode, same_as_twin)
    assert record["rewards"] == pytest.approx([0.0] * len(record["rewards"]), abs=1e-9)
    other = run_episode(cfg, env, episode, lambda obs, step, rng: ([0] * len(obs.pools), 0.0))
    assert any(abs(r) > 1e-6 for r in other["rewards"])
