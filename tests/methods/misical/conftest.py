"""Fixtures of the MiSiCAL-style experiment tests: the synthetic experiment of ``al_config`` (start model on 4
images, a pool of 8 images x 8 regions) with D_T = the 4 start images (32 regions) and a short policy schedule."""

import pytest
import yaml


@pytest.fixture
def misical_yaml(tmp_path, al_config):
    cfg = yaml.safe_load(al_config.read_text())
    cfg["al"]["budgets"] = [8, 16]
    cfg["al"]["final_train"] = {"max_epochs": 1, "patience": 0, "batch_size": 4, "lr": 0.005, "crop": [64, 64]}
    cfg["al"]["misical"] = {"encoder": "seg_start", "episode_len": 8, "pool_size": 8, "episodes": 4,
                            "batch_size": 8, "replay": 64, "target_sync": 10}
    cfg.pop("strategies")
    cfg.pop("bounds")
    cfg.update(misical_train_images=cfg["start_images"], seeds=[1, 2], target_classes=["disc", "box"],
               premise_subsets=3, timing_budgets=[8, 64, 6168])
    path = tmp_path / "misical.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
