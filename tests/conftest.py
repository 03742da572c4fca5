from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from activeseg.data.roots import resolve_dataset_dir
from activeseg.data.synthetic import write_synthetic
from activeseg.errors import DatasetError


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A small synthetic dataset in the folder format (48x64 images, 5 classes, void = 5)."""
    return write_synthetic(tmp_path_factory.mktemp("synth") / "synth", seed=0)


@pytest.fixture
def synthetic_copy(tmp_path, synthetic_dir) -> Path:
    """A private copy that a test may damage."""
    import shutil

    dest = tmp_path / "synth"
    shutil.copytree(synthetic_dir, dest)
    return dest


@pytest.fixture(scope="session")
def camvid_dir() -> Path:
    try:
        return resolve_dataset_dir("camvid")
    except DatasetError:
        pytest.skip("real CamVid not found (set ACTIVESEG_DATA or run `activeseg data download camvid`)")


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
               "step_train": {"max_epochs": 1, "patience": 0, "batch_size": 8, "lr": 0.005, "crop": [64, 64]},
               "final_train": {"max_epochs": 3, "patience": 2, "batch_size": 4, "lr": 0.005, "crop": [64, 64]}},
        "start_images": str(tmp_path / "start.txt"), "pool_images": str(tmp_path / "pool.txt"),
        "test_size": None, "region_rows": 2, "region_cols": 4,
        "strategies": ["random", "entropy"], "seeds": [1, 2], "bounds": True,
        "store": str(tmp_path / "runs" / "store.sqlite"), "device": "cpu", "cache_dir": None,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def al_config_cli(tmp_path, al_config) -> Path:
    """The same experiment with two budgets, for command-line runs."""
    cfg = yaml.safe_load(al_config.read_text())
    cfg["al"]["budgets"] = [8, 16]
    al_config.write_text(yaml.safe_dump(cfg))
    return al_config


@pytest.fixture(scope="session")
def bench_script():
    """Loads a script of benchmarks/ (not a package) as a module: ``bench_script("per_run_tables")``."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
