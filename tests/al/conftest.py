from pathlib import Path

import pytest
import yaml


@pytest.fixture
def al_config(tmp_path, synthetic_dir) -> Path:
    """An experiment on the synthetic data: 4 start images, a pool of 8 (2 x 4 regions each = 64)."""
    (tmp_path / "start.txt").write_text("\n".join(f"train_{i:04d}" for i in range(4)))
    (tmp_path / "pool.txt").write_text("\n".join(f"train_{i:04d}" for i in range(4, 12)))
    cfg = {
        "data": {"dataset": str(synthetic_dir), "height": 48, "width": 64},
        "model": {"encoder": "tiny", "pretrained": False, "decoder_width": 16},
        "start_train": {"max_epochs": 3, "patience": 0, "batch_size": 4, "lr": 0.01},
        "al": {"strategy": "entropy", "seed": 1, "budgets": [8, 16, 24], "regions_per_step": 4,
               "candidates_per_pool": 3, "mc_passes": 4,
               "step_train": {"max_epochs": 1, "patience": 0, "batch_size": 8, "lr": 0.005, "crop": [32, 32]},
               "final_train": {"max_epochs": 3, "patience": 2, "batch_size": 4, "lr": 0.005, "crop": [32, 32]}},
        "start_images": str(tmp_path / "start.txt"), "pool_images": str(tmp_path / "pool.txt"),
        "test_size": None, "region_rows": 2, "region_cols": 4,
        "strategies": ["random", "entropy"], "seeds": [1, 2], "bounds": True,
        "store": str(tmp_path / "runs" / "store.sqlite"), "device": "cpu", "cache_dir": None,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
