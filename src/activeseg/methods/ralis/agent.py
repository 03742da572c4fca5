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
from activeseg.al.loop import STEP_DATA, Pool, StepData, fine_tune_step, labelled_images, partial_source
from activeseg.al.oracle import GroundTruthOracle
from activeseg.al.state import LabelledState
from activeseg.config import ADDED, DataConfig, to_dict
from activeseg.data.folder import load_split
from activeseg.data.roots import resolve_dataset_dir
from activeseg.device import random_state, resolve_device, restore_random_state, seed_everything
from activeseg.errors import ActiveSegError, ConfigError
from activeseg.data.subsets import resolve_images
from activeseg.experiment import config_hash
from activeseg.features import FeatureCache
from activeseg.fileio import atomic_torch_save
from activeseg.methods.ralis.dqn import ReplayBuffer, Transition, dqn_update, epsilon
from activeseg.methods.ralis.features import DescriptorConfig
from activeseg.methods.ralis.policy import Observation, RalisPolicy, observe, save_agent
from activeseg.methods.ralis.qnet import QueryNetwork
from activeseg.models.segmenter import ModelConfig, Segmenter, build_model
from activeseg.pipeline import coarsest_stride, default_cache_dir, make_source
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
    target_bn_mode: Literal["eval", "train"] = "train"
    """Batch-norm mode of the target network when it evaluates the next state: 'train' (batch statistics,
    the way Q(S, a) is fitted) or 'eval' (running statistics: the reference, which diverges, see
    docs/results.md section 6)."""
    policy_next_bn_mode: Literal["eval", "train"] = "train"
    """Batch-norm mode of the query network when it chooses the next state's action ('eval': reference)."""
    qnet_first_relu: bool = True
    """Q6: ReLU on the batch-normalised raw input of the first blocks (reference)."""
    grad_clip: float | None = None
    """Clip the gradient norm of every DQN update to this value (reference: None, no clipping)."""
    lr_decay_every: Literal["step", "episode"] = "step"
    """Q2: apply lr_decay after every step and the episode end (reference), or once per episode."""
    epsilon_unit: Literal["step", "episode"] = "step"
    """Q3: the exploration clock t (and epsilon_tau_steps) counts steps (reference) or episodes."""
    runaway_loss_factor: float = 10.0
    """Stop training when an episode's mean TD loss exceeds this many times the largest of the first
    five episodes' (0: never)."""
    runaway_q_factor: float = 2.0
    """Stop training when a chosen action's |Q| exceeds this many times the largest return an episode
    can have (steps per episode x the largest |reward| seen so far): a value estimate no reward sequence
    can justify (0: never)."""

    def __post_init__(self) -> None:
        if self.epsilon_clock not in ("global", "per_episode"):
            raise ConfigError(f"dqn.epsilon_clock is {self.epsilon_clock!r}; use 'global' or 'per_episode'")
        if self.first_reward_baseline not in ("zero", "start_miou"):
            raise ConfigError(f"dqn.first_reward_baseline is {self.first_reward_baseline!r}; use 'zero' or 'start_miou'")
        for key in ("target_bn_mode", "policy_next_bn_mode"):
            if getattr(self, key) not in ("eval", "train"):
                raise ConfigError(f"dqn.{key} is {getattr(self, key)!r}; use 'eval' or 'train'")
        for key in ("lr_decay_every", "epsilon_unit"):
            if getattr(self, key) not in ("step", "episode"):
                raise ConfigError(f"dqn.{key} is {getattr(self, key)!r}; use 'step' or 'episode'")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"dqn.grad_clip is {self.grad_clip}; use a positive norm, or leave it unset")
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
    reward: Literal["gain", "gain_over_random"] = field(default="gain", metadata=ADDED)
    """'gain': 100 x the D_R mIoU gain of the step (spec); 'gain_over_random': 100 x (D_R mIoU after
    fine-tuning on the chosen regions - after fine-tuning a copy of the same model, with the same
    randomness, on one random candidate per pool): what the choice added, with the fine-tuning's own
    noise and drift cancelled (one more fine-tune and D_R evaluation per step)."""
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
    step_train_on: StepData = field(default="new_only", metadata=ADDED)
    """Q11, what each step's fine-tuning epoch covers (as the test phase's al.step_train_on): 'new_only'
    (reference), 'all_labelled', or 'all_labelled_and_start' (plus the weak start model's images)."""
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
        if self.reward not in ("gain", "gain_over_random"):
            raise ConfigError(f"reward is {self.reward!r}; use 'gain' or 'gain_over_random'")
        if self.step_train_on not in STEP_DATA:
            raise ConfigError(f"step_train_on is {self.step_train_on!r}; use one of {', '.join(STEP_DATA)}")
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
    state = sorted(resolve_images(cfg.state_images, "state_images", ddir, split.stems, seed=cfg.start_seed))
    pool = sorted(resolve_images(cfg.pool_images, "pool_images", ddir, split.stems, set(state), cfg.start_seed))
    if set(state) & set(pool):
        raise ConfigError("state_images and pool_images overlap; choose disjoint sets (pool_images: rest takes "
                          "every image the state set leaves)")
    state_split, pool_split = split.subset(state), split.subset(pool)
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
    start = split.subset(list(pool_split.stems[::cfg.start_every]))
    pool = Pool(make_source(model, pool_split, cache), GroundTruthOracle(pool_split.labels, pool_split.content), grid, reward_src,
                reward_src, classes.num_classes, classes.names, start=make_source(model, start, cache))
    key = config_hash({"data": to_dict(cfg.data), "model": to_dict(cfg.model), "seed": cfg.start_seed,
                       "train": to_dict(cfg.start_train), "images": start.stems, "reward": reward.stems})
    path = Path(cfg.out) / f"weak_start-{key}.pt"
    if path.is_file():
        model, meta = load_checkpoint(path, device)
        start_miou = meta["extra"]["reward_miou"]
    else:
        fit(model, make_source(model, start, cache), None, classes.num_classes, cfg.start_train, device, generator,
            align=coarsest_stride(model), progress=progress, desc=f"weak start model ({len(start)} images)")
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
    episodes: int = 0
    """Episodes finished (the exploration clock when dqn.epsilon_unit is 'episode')."""

    def decay_lr(self, factor: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] *= factor

    def epsilon(self, dqn: DQNConfig, step: int) -> float:
        """Exploration rate at ``step`` of the current episode."""
        if dqn.epsilon_unit == "episode":
            clock = self.episodes
        else:
            clock = self.t if dqn.epsilon_clock == "global" else step
        return epsilon(clock, dqn.epsilon_start, dqn.epsilon_end, dqn.epsilon_tau_steps)

    def learn(self, dqn: DQNConfig, obs: Observation, actions: list[int], reward: float,
              nxt: Observation | None, step: int, rng: np.random.Generator) -> dict[str, float] | None:
        """After step ``step`` of an episode: pushes its K transitions (``nxt`` None: terminal), makes one
        DQN update once the replay holds a batch, decays the learning rate, syncs the target every
        ``target_sync_steps``. Returns the update's statistics (None before the first update)."""
        for k, a in enumerate(actions):
            self.replay.push(Transition(obs.state, obs.candidates[k], a, reward,
                                        None if nxt is None else nxt.state,
                                        None if nxt is None else nxt.candidates[k], nxt is None))
        stats = None
        if len(self.replay) >= dqn.batch_size:
            stats = dqn_update(self.qnet, self.target, self.optimizer, self.replay.sample(dqn.batch_size, rng),
                               dqn.gamma, dqn.target_bn_mode, dqn.policy_next_bn_mode, dqn.grad_clip)
        if dqn.lr_decay_every == "step":
            self.decay_lr(dqn.lr_decay)
        if step % dqn.target_sync_steps == 0:
            self.target.load_state_dict(self.qnet.state_dict())
        self.t += 1
        return stats

    def end_episode(self, dqn: DQNConfig) -> None:
        self.decay_lr(dqn.lr_decay)  # the reference's decay after the end-of-episode epoch, or the episode's
        self.episodes += 1

    def state_dict(self) -> dict:
        return {"qnet": self.qnet.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "replay": self.replay.state_dict(), "t": self.t,
                "episodes": self.episodes}

    def load_state_dict(self, state: dict) -> None:
        self.qnet.load_state_dict(state["qnet"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.t = state["t"]
        self.episodes = state.get("episodes", 0)


def make_learner_for(dqn: DQNConfig, state_regions: int, phi_dim: int, seed: int) -> Learner:
    """A fresh query network (seeded), its target copy, the SGD optimizer and an empty replay."""
    torch.manual_seed(seed)
    qnet = QueryNetwork(state_regions, phi_dim, 64, dqn.qnet_first_relu)
    target = copy.deepcopy(qnet)
    opt = torch.optim.SGD(qnet.parameters(), lr=dqn.lr, momentum=dqn.momentum, weight_decay=dqn.weight_decay)
    return Learner(qnet, target, opt, ReplayBuffer(dqn.replay_capacity))


def make_learner(cfg: AgentConfig, state_regions: int, num_classes: int) -> Learner:
    return make_learner_for(cfg.dqn, state_regions, cfg.descriptors.phi_dim(num_classes), cfg.seed)


UPDATE_KEYS = ("loss", "q_abs_mean", "q_abs_max", "grad_norm", "target_abs_mean")


def episode_diagnostics(updates: dict[str, list[float]]) -> dict:
    """An episode's record of its DQN updates: every step's values (``step_<key>``) and the episode's
    mean (max for ``q_abs_max``); None where the episode made no update."""
    out: dict = {f"step_{k}": v for k, v in updates.items()}
    for k, v in updates.items():
        out[k] = (max(v) if k == "q_abs_max" else float(np.mean(v))) if v else None
    out["mean_loss"] = out["loss"]  # the name of histories written before the diagnostics
    return out


Chooser = Callable[[Observation, int, np.random.Generator], tuple[list[int], float]]
"""(observation, step of the episode, rng) -> (the index picked in each pool, exploration rate used)."""


def epsilon_greedy(cfg: AgentConfig, learner: Learner, num_classes: int) -> Chooser:
    """One coin per step for all pools: a uniform index in each pool, or the argmax of Q."""
    policy = RalisPolicy(learner.qnet, cfg.descriptors, num_classes)

    def choose(obs: Observation, step: int, rng: np.random.Generator) -> tuple[list[int], float]:
        eps = learner.epsilon(cfg.dqn, step)
        if rng.random() < eps:
            return [int(rng.integers(len(p))) for p in obs.pools], eps
        return [int(q.argmax()) for q in policy.q_values(obs)], eps

    return choose


def run_episode(cfg: AgentConfig, env: AgentEnv, episode: int, choose: Chooser, learner: Learner | None = None,
                on_step: Callable[[dict], None] | None = None, train_seed: int | None = None) -> dict:
    """One simulated active-learning episode on D_T; returns its record.

    With a ``learner``, every step pushes the K transitions and makes one DQN update (agent training);
    without, the episode only measures the policy ``choose`` (same pools and seeds per episode).
    The pools and choices draw from (seed, episode); the fine-tuning's crops, flips and dropout from
    ``train_seed`` when given (to separate the reward's noise from the selection's effect), else from
    (seed, episode) too.
    """
    t_start = time.perf_counter()
    pool, device, dqn = env.pool, env.device, cfg.dqn
    num_classes = pool.num_classes
    rng = np.random.default_rng([cfg.seed, episode])
    ref_rng = np.random.default_rng([cfg.seed, episode, 1])  # the random picks of gain_over_random
    torch_seed = cfg.seed * 100_003 + (episode if train_seed is None else 7_919 * train_seed + 1)
    torch.manual_seed(torch_seed)
    generator = torch.Generator().manual_seed(torch_seed)
    model = copy.deepcopy(env.start_model).to(device)
    seg_opt = make_optimizer(model, cfg.step_train)
    state = pool.oracle.new_state(pool.grid)

    def look() -> Observation:
        pools = sample_pools(state.available(), cfg.regions_per_step, cfg.candidates_per_pool, rng)
        return observe(model, pool.features, env.state_set, state, pool.oracle, pools, num_classes, device,
                       cfg.descriptors)

    prev = 0.0 if dqn.first_reward_baseline == "zero" else env.start_miou
    obs = look()
    rewards, epsilons, mious = [], [], []
    updates: dict[str, list[float]] = {key: [] for key in UPDATE_KEYS}
    for i in range(cfg.steps_per_episode):
        actions, eps = choose(obs, i, rng)
        picked = torch.tensor([int(p[a]) for p, a in zip(obs.pools, actions)], dtype=torch.long)
        if cfg.reward == "gain_over_random":
            prev = random_pick_miou(cfg, env, model, seg_opt, state, obs, generator, ref_rng, i + 1)
        state.label(picked, i + 1)
        fine_tune_step(model, seg_opt, pool, state, picked, cfg.step_train, device, generator, env.align,
                       cfg.step_train_on)
        miou = mean_iou(evaluate(model, pool.val, num_classes, device))
        reward = 100.0 * (miou - prev)
        prev = miou
        done = state.num_labelled >= cfg.budget
        nxt = None if done else look()
        if learner is not None:
            update = learner.learn(dqn, obs, actions, reward, nxt, i, rng)
            if update is not None:
                for key in UPDATE_KEYS:
                    updates[key].append(update[key])
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
    train_one_epoch(model, batches, seg_opt, device, grad_clip=cfg.step_train.grad_clip)
    final = mean_iou(evaluate(model, pool.val, num_classes, device))
    if learner is not None:
        learner.end_episode(dqn)
    return {"episode": episode, "return": float(sum(rewards)), "rewards": rewards, "step_miou": mious,
            "final_miou": final, "epsilons": epsilons, **episode_diagnostics(updates),
            "dqn_lr": learner.optimizer.param_groups[0]["lr"] if learner is not None else None,
            "labelled_class_pixels": pool.oracle.class_histogram(state, num_classes).tolist(),
            "seconds": time.perf_counter() - t_start}


def random_pick_miou(cfg: AgentConfig, env: AgentEnv, model: Segmenter, optimizer: torch.optim.Optimizer,
                     state: LabelledState, obs: Observation, generator: torch.Generator,
                     rng: np.random.Generator, step: int) -> float:
    """D_R mIoU of a copy of ``model`` (and its optimizer) fine-tuned on one random candidate per pool,
    with the randomness the real fine-tuning is about to use (the generators are restored after)."""
    twin, twin_opt = copy.deepcopy((model, optimizer))
    twin_state = copy.deepcopy(state)
    picks = torch.tensor([int(p[rng.integers(len(p))]) for p in obs.pools], dtype=torch.long)
    twin_state.label(picks, step)
    saved = random_state(generator)
    fine_tune_step(twin, twin_opt, env.pool, twin_state, picks, cfg.step_train, env.device, generator, env.align,
                   cfg.step_train_on)
    restore_random_state(saved, generator)
    return mean_iou(evaluate(twin, env.pool.val, env.pool.num_classes, env.device))


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
            why = runaway(history, cfg.dqn, steps)
            if why is not None:
                write_history(out, history, env.start_miou)
                raise AgentDivergedError(
                    f"agent training stopped after episode {episode + 1}: {why}. The query network is "
                    f"diverging; {out / 'history.json'} and agent_training.png show the curves, and "
                    f"{resume_path.name} and agent_best.pt keep the agent of the episodes before. Remedies: "
                    "dqn.target_bn_mode and dqn.policy_next_bn_mode 'train', dqn.grad_clip (e.g. 1), "
                    "dqn.lr_decay < 1 with dqn.lr_decay_every 'episode', a smaller dqn.lr; train into a new "
                    "out folder")
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


class AgentDivergedError(ActiveSegError):
    """The query network's TD loss or |Q| ran away; training stopped."""


def runaway(history: list[dict], dqn: DQNConfig, steps: int) -> str | None:
    """Why the last episode shows a diverging query network, or None.

    Two bounds: the episode's mean TD loss against ``runaway_loss_factor`` x the largest of the first five
    episodes' (checked from the sixth on), and the largest |Q| of a chosen action against
    ``runaway_q_factor`` x ``steps`` x the largest |reward| seen so far: Q estimates a return-to-go,
    which no sequence of ``steps`` such rewards can exceed.
    """
    last = history[-1]
    losses = [h["loss"] for h in history if h.get("loss") is not None]
    if dqn.runaway_loss_factor > 0 and len(history) > 5 and last.get("loss") is not None and len(losses) > 5:
        first = max(losses[:5])
        if last["loss"] > dqn.runaway_loss_factor * first:
            return (f"its mean TD loss {last['loss']:.3g} exceeds {dqn.runaway_loss_factor:g} x {first:.3g}, the "
                    "largest of the first five episodes (dqn.runaway_loss_factor)")
    r_max = max((abs(r) for h in history for r in h["rewards"]), default=0.0)
    if dqn.runaway_q_factor > 0 and last.get("q_abs_max") is not None and r_max > 0:
        bound = dqn.runaway_q_factor * steps * r_max
        if last["q_abs_max"] > bound:
            return (f"a chosen action's |Q| reached {last['q_abs_max']:.3g}, above {bound:.3g} = "
                    f"{dqn.runaway_q_factor:g} x {steps} steps x the largest |reward| {r_max:.3g} "
                    "(dqn.runaway_q_factor)")
    return None


def write_history(out: Path, history: list[dict], start_miou: float) -> dict:
    """history.json (every episode) and agent_training.png (return and D_R mIoU per episode)."""
    from activeseg.report import plot_agent_history

    summary = {"start_miou": start_miou, "episodes": history,
               "total_seconds": sum(h["seconds"] for h in history)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(summary, indent=1))
    plot_agent_history(summary, out / "agent_training.png")
    return summary
