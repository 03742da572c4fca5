"""Fixtures of the RALIS tests."""

import pytest
import yaml


@pytest.fixture
def agent_yaml(tmp_path, synthetic_dir):
    (tmp_path / "state.txt").write_text("train_0000\ntrain_0001\n")
    (tmp_path / "agent_pool.txt").write_text("\n".join(f"train_{i:04d}" for i in range(2, 12)))
    cfg = {
        "data": {"dataset": str(synthetic_dir), "height": 48, "width": 64},
        "model": {"encoder": "tiny", "pretrained": False, "decoder_width": 16},
        "state_images": str(tmp_path / "state.txt"), "pool_images": str(tmp_path / "agent_pool.txt"),
        "start_every": 5, "start_train": {"max_epochs": 3, "patience": 0, "batch_size": 4, "lr": 0.01},
        "episodes": 1, "budget": 16, "regions_per_step": 4, "candidates_per_pool": 3,
        "step_train": {"max_epochs": 1, "patience": 0, "batch_size": 8, "lr": 0.005, "crop": [64, 64]},
        "episode_end_batch_size": 4, "region_rows": 2, "region_cols": 4,
        "dqn": {"batch_size": 4, "replay_capacity": 12},
        "seed": 3, "out": str(tmp_path / "agent"), "device": "cpu", "cache_dir": None,
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
