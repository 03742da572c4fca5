"""`activeseg misical train` on synthetic data: the policy file, its history and plot, a finished policy kept
rather than retrained, and the checks of the experiment config (D_T disjoint from the pool, known classes)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import pytest

from activeseg.commands import load_misical
from activeseg.errors import ConfigError
from activeseg.methods.misical.config import MisicalConfig
from activeseg.methods.misical.embeddings import model_fingerprint
from activeseg.methods.misical.experiment import (
    MisicalExperimentConfig,
    policy_file,
    prepare_misical,
    selection_config,
    train_policy,
)
from activeseg.methods.misical.policy import load_policy


def test_train_writes_policy_history_and_plot_and_keeps_a_finished_policy(misical_yaml):
    cfg = load_misical(misical_yaml)
    data = prepare_misical(cfg, progress=False)
    path, meta, trained = train_policy(cfg, "disc", 1, progress=False, data=data)
    assert trained and path == policy_file(cfg, "disc", 1) == cfg.store.parent / "policies" / "disc-s1" / "policy.pt"
    assert (path.parent / "training.png").stat().st_size > 0
    history = json.loads((path.parent / "history.json").read_text())
    assert len(history["episodes"]) == 4 and history["train_regions"] == 32  # D_T: 4 images x 8 regions
    assert meta["target_class"] == "disc" and meta["encoder"] == "seg_start" and meta["seed"] == 1
    assert meta["embedding_model"] == model_fingerprint("seg_start", data.exp.start_model)
    assert meta["config"] == replace(cfg.al.misical, target_class="disc")
    # the reward is the ground-truth quantity of disc in D_T: the return telescopes to ln(1 + Q_disc)
    q = data.train_quantities()[..., data.class_names.index("disc")]  # [4, 8]
    assert all(0 <= h["final_quantity"] <= float(q.sum()) + 1e-6 for h in history["episodes"])
    assert all(h["return"] == pytest.approx(math.log1p(h["final_quantity"])) for h in history["episodes"])
    # finished: kept (same file, not rewritten); other options: refused, never overwritten
    stamp = path.stat().st_mtime_ns
    again, _, trained_again = train_policy(cfg, "disc", 1, progress=False)  # no data: nothing is prepared
    assert again == path and not trained_again and path.stat().st_mtime_ns == stamp
    longer = replace(cfg, al=replace(cfg.al, misical=replace(cfg.al.misical, episodes=5)))
    with pytest.raises(ConfigError, match="episodes differ"):
        train_policy(longer, "disc", 1, progress=False)
    with pytest.raises(ConfigError, match="not a class of the dataset; use one of background, band, disc"):
        train_policy(cfg, "sky", 1, progress=False)


def test_cli_train_then_a_second_call_keeps_the_policy(tmp_path, misical_yaml):
    out = tmp_path / "pol"
    cmd = [sys.executable, "-m", "activeseg.cli", "misical", "train", str(misical_yaml), "--target-class", "box",
           "--seed", "5", "--episodes", "2", "--out", str(out), "--quiet"]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "trained in" in first.stdout and (out / "policy.pt").is_file() and (out / "training.png").is_file()
    qnet, meta = load_policy(out / "policy.pt")
    assert meta["seed"] == 5 and meta["config"].episodes == 2 and qnet.embed_dim == 10  # decoder 16 / 2 + 2 positions
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0 and "already trained" in second.stdout


def test_experiment_config_checks(misical_yaml, tmp_path):
    cfg = load_misical(misical_yaml)
    with pytest.raises(ConfigError, match="random"):
        replace(cfg, baselines=("entropy",))
    with pytest.raises(ConfigError, match="at least 3 subsets"):
        replace(cfg, premise_subsets=2)
    with pytest.raises(ConfigError, match="not implemented"):
        replace(cfg, al=replace(cfg.al, misical=MisicalConfig(unit="image")))
    # D_T must not share images with the pool
    overlap = replace(cfg, misical_train_images=cfg.pool_images)
    with pytest.raises(ConfigError, match="misical_train_images and pool_images share 8 images"):
        prepare_misical(overlap, progress=False).train_set()
    # the stored config of a class-agnostic run leaves the policy's options out; a policy run records them
    assert "misical" not in selection_config(cfg, "random") and selection_config(cfg, "random")["method"] == "random"
    mine = selection_config(cfg, "misical", "disc")
    assert mine["misical"]["target_class"] == "disc" and mine["misical_train_images"] == cfg.misical_train_images
    assert isinstance(cfg, MisicalExperimentConfig)
