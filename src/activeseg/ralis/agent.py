"""Agent training (spec 3.1 and 5): simulated active-learning episodes on D_T, rewarded by the gain in
D_R mIoU, teach the query network by double DQN.

Every episode restarts the segmentation model from the same weak start model; the query network, its
target copy, the DQN optimizer, the replay buffer and the exploration clock carry over. The agent is
saved after every step (``agent_last.pt``), at the best episode end (``agent_best.pt``), and with
everything needed to resume after every episode (``resume.pt``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from activeseg.al.candidates import sample_pools
from activeseg.al.loop import Pool, fine_tune_step, labelled_images, partial_source
from activeseg.al.oracle import GroundTruthOracle
from activeseg.al.state import LabelledState
from activeseg.config import DataConfig, to_dict
from activeseg.data.folder import load_split
from activeseg.data.roots import resolve_dataset_dir
from activeseg.device import resolve_device, seed_everything
from activeseg.errors import ConfigError
from activeseg.experiment import config_hash, resolve_images
from activeseg.features import FeatureCache
from activeseg.fileio import atomic_torch_save
from activeseg.models.segmenter import ModelConfig, Segmenter, build_model
from activeseg.pipeline import coarsest_stride, default_cache_dir, make_source
from activeseg.ralis.dqn import ReplayBuffer, Transition, dqn_update, epsilon
from activeseg.ralis.features import DescriptorConfig
from activeseg.ralis.policy import Observation, RalisPolicy, observe, save_agent
from activeseg.ralis.qnet import QueryNetwork
from activeseg.regions import RegionGrid
from activeseg.train.checkpoint import load_checkpoint, save_checkpoint
from activeseg.train.metrics import mean_iou
from activeseg.train.sources import FeatureSource, ImageSource
from activeseg.train.trainer import (
    TrainConfig,
    evaluate,
    fit,
    make_batches,
    make_optimizer,
    train_one_epoch,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DQNConfig:
    """The DQN (spec 5). Options named Q1..Q6 are the reference code's quirks (spec 8)."""

    gamma: float = 0.999
    """Discount."""
    batch_size: int = 16
    """Transitions per update (one update per active-learning step)."""
    replay_capacity: int = 600
    """FIFO replay buffer size in transitions."""
    target_sync_steps: int = 5
    """Copy the query network into the target every this many steps of an episode."""
    lr: float = 1e-3
    """SGD learning rate."""
    momentum: float = 0.95
    weight_decay: float = 1e-3
    lr_decay: float = 1.0
    """Q2: factor applied to the DQN learning rate after every step and episode end (reference 0.97,
    which leaves < 0.2 % of the rate after 10 episodes; default 1.0: a constant rate)."""
    epsilon_start: float = 0.9
    epsilon_end: float = 0.05
    epsilon_tau_steps: float = 10.0
    """Q3: time constant of eps = end + (start - end) exp(-t / tau), in steps."""
    epsilon_clock: Literal["global", "per_episode"] = "global"
    """Q3: t counts steps over all episodes (reference) or restarts every episode."""
    first_reward_baseline: Literal["zero", "start_miou"] = "start_miou"
    """Q1: the 'previous' D_R mIoU of an episode's first reward: 0 (reference: the first reward is the
    whole mIoU, tens of points) or the start model's (default: every reward is a gain)."""
    target_bn_mode: Literal["eval", "train"] = "eval"
    """Batch-norm mode of the target network in updates."""
    qnet_first_relu: bool = True
    """Q6: ReLU on the batch-normalised raw input of the first blocks (reference)."""

    def __post_init__(self) -> None:
        if self.epsilon_clock not in ("global", "per_episode"):
            raise ConfigError(f"dqn.epsilon_clock is {self.epsilon_clock!r}; use 'global' or 'per_episode'")
        if self.first_reward_baseline not in ("zero", "start_miou"):
            raise ConfigError(f"dqn.first_reward_baseline is {self.first_reward_baseline!r}; use 'zero' or 'start_miou'")
        if self.target_bn_mode not in ("eval", "train"):
            raise ConfigError(f"dqn.target_bn_mode is {self.target_bn_mode!r}; use 'eval' or 'train'")
        if self.batch_size < 1 or self.replay_capacity < self.batch_size or self.target_sync_steps < 1:
            raise ConfigError("dqn: need batch_size >= 1, replay_capacity >= batch_size, target_sync_steps >= 1")


@dataclass(frozen=True)
class AgentConfig:
    """Training a RALIS agent on simulated episodes (`activeseg agent train CONFIG.yaml`)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    descriptors: DescriptorConfig = field(default_factory=DescriptorConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    split: str = "train"
    """Split holding the state set and the agent's pool."""
    state_images: str = "ralis:d_s"
    """State set D_S: 'ralis:d_s' or a file of stems (sorted order is used)."""
    pool_images: str = "ralis:d_t"
    """The agent's pool D_T."""
    start_every: int = 10
    """Weak start model: every n-th image of the sorted pool (10: d_t[0], d_t[10], ... d_t[90])."""
    start_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_epochs=20, patience=0, batch_size=8, lr=2e-3))
    """Weak start model training (no validation, no early stopping)."""
    start_seed: int = 0
    reward_split: str = "val"
    """D_R: the reward is 100 x the gain of mIoU on this split."""
    reward_subset: int | None = None
    """Use a fixed seeded subset of this many D_R images (None: all)."""
    episodes: int = 20
    budget: int = 480
    """Regions labelled per episode (B_train)."""
    regions_per_step: int = 24
    """K: pools per step (one region labelled from each)."""
    candidates_per_pool: int = 20
    """N: candidates per pool during agent training."""
    step_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_epochs=1, patience=0, batch_size=32, lr=5e-4, crop=(128, 128)))
    """Fine-tuning after each step (same as the test phase's al.step_train)."""
    episode_end_batch_size: int = 16
    """Batch size of the end-of-episode epoch over every labelled image (the step optimizer continues)."""
    region_rows: int = 4
    region_cols: int = 6
    seed: int = 20
    """Seed of the agent (its initial weights, exploration, pools, crops)."""
    out: Path = Path("runs/ralis_agent")
    """Folder of the agent's checkpoints, history and plot."""
    device: str = "auto"
    cache_dir: Path | None = field(default_factory=default_cache_dir)

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.budget < 1 or self.start_every < 1:
            raise ConfigError("episodes, budget and start_every must be >= 1")

    @property
    def steps_per_episode(self) -> int:
        return math.ceil(self.budget / self.regions_per_step)


@dataclass
class AgentEnv:
    """Everything an episode needs that does not change between episodes."""

    pool: Pool
    state_set: FeatureSource | ImageSource
    start_model: Segmenter
    start_miou: float
    device: torch.device
    align: int


def prepare_env(cfg: AgentConfig, progress: bool = True) -> AgentEnv:
    """Loads D_S, D_T and D_R, and trains (or reloads) the weak start model."""
    device = resolve_device(cfg.device)
    generator = seed_everything(cfg.start_seed)
    ddir = resolve_dataset_dir(cfg.data.dataset, cfg.data.data_root)
    split = load_split(ddir, cfg.split, cfg.data.size, cfg.data.fit, progress=progress)
    state_split = split.subset(sorted(resolve_images(cfg.state_images, ddir, split)))
    pool_split = split.subset(sorted(resolve_images(cfg.pool_images, ddir, split)))
    if set(state_split.stems) & set(pool_split.stems):
        raise ConfigError("state images and pool images overlap; choose disjoint sets")
    reward = load_split(ddir, cfg.reward_split, cfg.data.size, cfg.data.fit, progress=progress)
    if cfg.reward_subset is not None and cfg.reward_subset < len(reward):
        keep = np.random.default_rng(cfg.seed).choice(len(reward), cfg.reward_subset, replace=False)
        reward = reward.subset([reward.stems[i] for i in sorted(keep)])
    classes = split.classes
    model = build_model(cfg.model, classes.num_classes).to(device)
    cache = (FeatureCache(model, device, ddir.name, cfg.cache_dir, progress=progress)
             if cfg.model.freeze_encoder else None)
    reward_src = make_source(model, reward, cache)
    grid = RegionGrid.from_counts(*cfg.data.size, cfg.region_rows, cfg.region_cols)
    need = cfg.budget + cfg.regions_per_step * cfg.candidates_per_pool
    if len(pool_split) * grid.regions_per_image < need:
        raise ConfigError(f"the agent pool has {len(pool_split) * grid.regions_per_image} regions; budget + K*N "
                          f"needs {need}. Lower budget or candidates_per_pool, or use more pool images")
    pool = Pool(make_source(model, pool_split, cache), GroundTruthOracle(pool_split.labels), grid, reward_src,
                reward_src, classes.num_classes, classes.names)

    start = split.subset(list(pool_split.stems[::cfg.start_every]))
    key = config_hash({"data": to_dict(cfg.data), "model": to_dict(cfg.model), "seed": cfg.start_seed,
                       "train": to_dict(cfg.start_train), "images": start.stems, "reward": reward.stems})
    path = Path(cfg.out) / f"weak_start-{key}.pt"
    if path.is_file():
        model, meta = load_checkpoint(path, device)
        start_miou = meta["extra"]["reward_miou"]
    else:
        fit(model, make_source(model, start, cache), None, classes.num_classes, cfg.start_train, device, generator,
            align=coarsest_stride(model), progress=progress)
        start_miou = mean_iou(evaluate(model, reward_src, classes.num_classes, device))
        save_checkpoint(path, model, cfg.model, classes, cfg.data.size, {"reward_miou": start_miou,
                                                                         "images": start.stems})
    log.info("weak start model: %d images, D_R mIoU %.4f", len(start), start_miou)
    return AgentEnv(pool, make_source(model, state_split, cache), model, start_miou, device, coarsest_stride(model))


@dataclass
class Learner:
    """The DQN side, carried across episodes."""

    qnet: QueryNetwork
    target: QueryNetwork
    optimizer: torch.optim.Optimizer
    replay: ReplayBuffer
    t: int = 0
    """Active-learning steps taken over all episodes (the global exploration clock)."""

    def decay_lr(self, factor: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] *= factor

    def state_dict(self) -> dict:
        return {"qnet": self.qnet.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "replay": self.replay.state_dict(), "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.qnet.load_state_dict(state["qnet"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.t = state["t"]


def make_learner(cfg: AgentConfig, state_regions: int, num_classes: int) -> Learner:
    torch.manual_seed(cfg.seed)
    qnet = QueryNetwork(state_regions, cfg.descriptors.phi_dim(num_classes), 64, cfg.dqn.qnet_first_relu)
    target = copy.deepcopy(qnet)
    opt = torch.optim.SGD(qnet.parameters(), lr=cfg.dqn.lr, momentum=cfg.dqn.momentum,
                          weight_decay=cfg.dqn.weight_decay)
    return Learner(qnet, target, opt, ReplayBuffer(cfg.dqn.replay_capacity))


Chooser = Callable[[Observation, int, np.random.Generator], tuple[list[int], float]]
"""(observation, step of the episode, rng) -> (the index picked in each pool, exploration rate used)."""


def epsilon_greedy(cfg: AgentConfig, learner: Learner, num_classes: int) -> Chooser:
    """One coin per step for all pools: a uniform index in each pool, or the argmax of Q."""
    dqn = cfg.dqn
    policy = RalisPolicy(learner.qnet, cfg.descriptors, num_classes)

    def choose(obs: Observation, step: int, rng: np.random.Generator) -> tuple[list[int], float]:
        clock = learner.t if dqn.epsilon_clock == "global" else step
        eps = epsilon(clock, dqn.epsilon_start, dqn.epsilon_end, dqn.epsilon_tau_steps)
        if rng.random() < eps:
            return [int(rng.integers(len(p))) for p in obs.pools], eps
        return [int(q.argmax()) for q in policy.q_values(obs)], eps

    return choose


def run_episode(cfg: AgentConfig, env: AgentEnv, episode: int, choose: Chooser, learner: Learner | None = None,
                on_step: Callable[[dict], None] | None = None) -> dict:
    """One simulated active-learning episode on D_T; returns its record.

    With a ``learner``, every step pushes the K transitions and makes one DQN update (agent training);
    without, the episode only measures the policy ``choose`` (same pools and seeds per episode).
    """
    t_start = time.perf_counter()
    pool, device, dqn = env.pool, env.device, cfg.dqn
    num_classes = pool.num_classes
    rng = np.random.default_rng([cfg.seed, episode])
    torch.manual_seed(cfg.seed * 100_003 + episode)
    generator = torch.Generator().manual_seed(cfg.seed * 100_003 + episode)
    model = copy.deepcopy(env.start_model).to(device)
    seg_opt = make_optimizer(model, cfg.step_train)
    state = LabelledState(len(pool.oracle.labels), pool.grid)

    def look() -> Observation:
        pools = sample_pools(state.available(), cfg.regions_per_step, cfg.candidates_per_pool, rng)
        return observe(model, pool.features, env.state_set, state, pool.oracle, pools, num_classes, device,
                       cfg.descriptors)

    prev = 0.0 if dqn.first_reward_baseline == "zero" else env.start_miou
    obs = look()
    rewards, losses, epsilons, mious = [], [], [], []
    for i in range(cfg.steps_per_episode):
        actions, eps = choose(obs, i, rng)
        picked = torch.tensor([int(p[a]) for p, a in zip(obs.pools, actions)], dtype=torch.long)
        state.label(picked, i + 1)
        fine_tune_step(model, seg_opt, pool, state, picked, cfg.step_train, device, generator, env.align)
        miou = mean_iou(evaluate(model, pool.val, num_classes, device))
        reward = 100.0 * (miou - prev)
        prev = miou
        done = state.num_labelled >= cfg.budget
        nxt = None if done else look()
        if learner is not None:
            for k, a in enumerate(actions):
                learner.replay.push(Transition(obs.state, obs.candidates[k], a, reward, None if done else nxt.state,
                                               None if done else nxt.candidates[k], done))
            if len(learner.replay) >= dqn.batch_size:
                losses.append(dqn_update(learner.qnet, learner.target, learner.optimizer,
                                         learner.replay.sample(dqn.batch_size, rng), dqn.gamma, dqn.target_bn_mode))
            learner.decay_lr(dqn.lr_decay)
            if i % dqn.target_sync_steps == 0:
                learner.target.load_state_dict(learner.qnet.state_dict())
            learner.t += 1
            save_agent(Path(cfg.out) / "agent_last.pt", learner.qnet, cfg.descriptors, num_classes,
                       {"episode": episode, "step": i + 1})
        rewards.append(reward)
        mious.append(miou)
        epsilons.append(eps)
        if on_step is not None:
            on_step({"episode": episode, "step": i + 1, "epsilon": eps, "reward": reward, "miou": miou})
        obs = nxt
    # the end-of-episode epoch over every labelled image (crops around one of its labelled regions)
    images, keep = labelled_images(pool, state)
    batches = make_batches(partial_source(pool, state), images, cfg.episode_end_batch_size, generator,
                           cfg.step_train.flip, cfg.step_train.crop, env.align, keep)
    train_one_epoch(model, batches, seg_opt, device)
    final = mean_iou(evaluate(model, pool.val, num_classes, device))
    if learner is not None:
        learner.decay_lr(dqn.lr_decay)
    return {"episode": episode, "return": float(sum(rewards)), "rewards": rewards, "step_miou": mious,
            "final_miou": final, "epsilons": epsilons, "mean_loss": float(np.mean(losses)) if losses else None,
            "dqn_lr": learner.optimizer.param_groups[0]["lr"] if learner is not None else None,
            "labelled_class_pixels": pool.oracle.class_histogram(state, num_classes).tolist(),
            "seconds": time.perf_counter() - t_start}


def _resume_config(cfg: AgentConfig) -> dict:
    d = to_dict(cfg)
    for k in ("episodes", "device", "cache_dir", "out"):
        d.pop(k)
    return d


def train_agent(cfg: AgentConfig, progress: bool = True) -> dict:
    """Trains (or resumes) an agent for ``cfg.episodes`` episodes; returns the summary it writes."""
    out = Path(cfg.out)
    env = prepare_env(cfg, progress)
    regions = len(env.state_set) * env.pool.grid.regions_per_image
    learner = make_learner(cfg, regions, env.pool.num_classes)
    history, best = [], -math.inf
    resume_path = out / "resume.pt"
    if resume_path.is_file():
        saved = torch.load(resume_path, map_location="cpu", weights_only=False)
        if saved["config"] != _resume_config(cfg):
            raise ConfigError(f"{out} holds an agent trained with another configuration; use another out folder "
                              "(out: in the config) or the same configuration")
        learner.load_state_dict(saved["learner"])
        history, best = saved["history"], saved["best"]
        log.info("resuming agent training after episode %d", len(history))
    steps = cfg.steps_per_episode
    bar = tqdm(total=cfg.episodes * steps, initial=min(len(history), cfg.episodes) * steps, desc="agent",
               disable=not progress)
    running = {"return": 0.0}

    def on_step(info: dict) -> None:
        running["return"] = info["reward"] + (running["return"] if info["step"] > 1 else 0.0)
        bar.set_postfix(episode=f"{info['episode'] + 1}/{cfg.episodes}", eps=f"{info['epsilon']:.3f}",
                        ret=f"{running['return']:.2f}", DR_miou=f"{info['miou']:.4f}")
        bar.update(1)

    try:
        for episode in range(len(history), cfg.episodes):
            learner.qnet.to(env.device)
            learner.target.to(env.device)
            record = run_episode(cfg, env, episode, epsilon_greedy(cfg, learner, env.pool.num_classes), learner,
                                 on_step)
            history.append(record)
            extra = {"episode": episode, "final_miou": record["final_miou"]}
            if record["final_miou"] > best:
                best = record["final_miou"]
                save_agent(out / "agent_best.pt", learner.qnet, cfg.descriptors, env.pool.num_classes, extra)
            atomic_torch_save({"config": _resume_config(cfg), "learner": learner.state_dict(), "history": history,
                               "best": best}, resume_path)
            write_history(out, history, env.start_miou)
            bar.write(f"episode {episode + 1}: return {record['return']:.2f}, D_R mIoU at budget "
                      f"{record['step_miou'][-1]:.4f}, after end epoch {record['final_miou']:.4f}, "
                      f"{record['seconds']:.0f} s")
    finally:
        bar.close()
    return write_history(out, history, env.start_miou)


def write_history(out: Path, history: list[dict], start_miou: float) -> dict:
    """history.json (every episode) and agent_training.png (return and D_R mIoU per episode)."""
    from activeseg.report import plot_agent_history

    summary = {"start_miou": start_miou, "episodes": history,
               "total_seconds": sum(h["seconds"] for h in history)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(summary, indent=1))
    plot_agent_history(summary, out / "agent_training.png")
    return summary
