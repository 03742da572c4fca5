"""The DQN stays stable on pure-noise rewards, and the runaway guard stops a diverging training."""

from dataclasses import replace

import pytest

from activeseg.methods.ralis.agent import AgentDivergedError, DQNConfig, runaway
from activeseg.methods.ralis.stability import noise_training

SIZES = {"state_regions": 48, "pools": 24, "candidates": 20}  # the smallest setting where the reference diverges


def _bounded(records):
    first = max(r["loss"] for r in records[:5])
    return max(r["loss"] for r in records) <= 10 * first and max(r["q_abs_max"] for r in records) <= 2 * 20 * 3.0


@pytest.mark.slow  # about a minute on 2 free cores
def test_default_dqn_stays_bounded_on_noise_rewards():
    """With rewards N(0, 0.75) no action can earn anything: the TD loss stays within 10x its first five
    episodes' and |Q| within what 20 steps of such rewards could return (fails with the reference's
    eval-mode batch norm in the targets, which grows the loss from 0.13 to > 10^4 in 30 episodes)."""
    records = noise_training(DQNConfig(), episodes=14, **SIZES)
    assert _bounded(records), [round(r["loss"], 2) for r in records]


@pytest.mark.slow
def test_reference_targets_diverge_on_noise_rewards():
    ref = replace(DQNConfig(), target_bn_mode="eval", policy_next_bn_mode="eval")
    records = noise_training(ref, episodes=14, **SIZES)
    assert not _bounded(records)


def _episode(loss, q_max, rewards=(0.5, -0.5)):
    return {"loss": loss, "q_abs_max": q_max, "rewards": list(rewards)}


def test_runaway_guard_by_hand():
    dqn = DQNConfig()
    calm = [_episode(0.2 + 0.01 * i, 1.0) for i in range(5)]
    assert runaway(calm + [_episode(2.3, 1.0)], dqn, 20) is None  # 2.3 < 10 x 0.24
    why = runaway(calm + [_episode(2.5, 1.0)], dqn, 20)
    assert why is not None and "10 x 0.24" in why
    # |Q| bound: 2 x 20 steps x largest |reward| 0.5 = 20
    assert runaway([_episode(0.2, 19.0)], dqn, 20) is None
    assert "above 20" in runaway([_episode(0.2, 21.0)], dqn, 20)
    assert runaway([_episode(0.2, 1e6)], replace(dqn, runaway_q_factor=0), 20) is None


def test_runaway_guard_stops_agent_training(agent_yaml):
    """A forced divergence (a huge DQN learning rate) stops training with a message naming the remedies."""
    from activeseg.config import load_yaml
    from activeseg.methods.ralis.agent import AgentConfig, train_agent

    cfg = load_yaml(agent_yaml, AgentConfig)
    cfg = replace(cfg, episodes=8, dqn=replace(cfg.dqn, lr=50.0, momentum=0.0, runaway_q_factor=0.5))
    with pytest.raises(AgentDivergedError, match="dqn.grad_clip") as info:
        train_agent(cfg, progress=False)
    assert "stopped after episode" in str(info.value)
    assert (cfg.out / "history.json").is_file() and (cfg.out / "agent_training.png").is_file()
