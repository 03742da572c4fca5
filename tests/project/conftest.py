from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from activeseg.data.synthetic import write_synthetic

START = [f"train_{i:04d}" for i in range(4)]
POOL = [f"train_{i:04d}" for i in range(4, 12)]
MODEL = {"encoder": "tiny", "pretrained": False, "decoder_width": 16}
START_TRAIN = {"max_epochs": 3, "patience": 0, "batch_size": 4, "lr": 0.01}
AL = {"strategy": "entropy", "regions_per_step": 4, "candidates_per_pool": 3, "mc_passes": 4,
      "step_train": {"max_epochs": 1, "patience": 0, "batch_size": 8, "lr": 0.005, "crop": [32, 32]},
      "final_train": {"max_epochs": 3, "patience": 2, "batch_size": 4, "lr": 0.005, "crop": [32, 32]},
      "final_init": "start_model", "final_include_start": True}


@pytest.fixture
def project_settings() -> dict:
    """The settings every project test shares, for building the matching `activeseg run` experiment."""
    return {"start": START, "pool": POOL, "model": MODEL, "start_train": START_TRAIN, "al": AL}


@pytest.fixture(scope="session")
def native_dir(tmp_path_factory) -> Path:
    """Synthetic data at 96 x 128 (twice the projects' 48 x 64 working size): 12 train, 4 val images."""
    return write_synthetic(tmp_path_factory.mktemp("native") / "synth", {"train": 12, "val": 4, "test": 4},
                           size=(96, 128), seed=3)


@pytest.fixture
def project_inputs(tmp_path, native_dir) -> dict:
    """A user's folders: all 12 images, full labels of the 4 start images, a validation folder, settings."""
    labels = tmp_path / "start_labels"
    labels.mkdir()
    for s in START:
        shutil.copy(native_dir / "train" / "labels" / f"{s}.png", labels / f"{s}.png")
    classes = json.loads((native_dir / "classes.json").read_text())
    classes["classes"][0] = "ground"  # 'background' is the Segmentation mask format's reserved label
    (tmp_path / "classes.json").write_text(json.dumps(classes))
    settings = {"data": {"height": 48, "width": 64}, "model": MODEL, "start_train": START_TRAIN, "al": AL,
                "region_rows": 2, "region_cols": 4, "seed": 1, "device": "cpu", "cache_dir": None,
                "start_early_stopping": True, "query_model": "fine_tuned"}
    cfg = tmp_path / "project.yaml"
    cfg.write_text(yaml.safe_dump(settings))
    return {"images": native_dir / "train" / "images", "classes": tmp_path / "classes.json", "labels": labels,
            "val": native_dir / "val", "config": cfg, "truth": native_dir / "train" / "labels"}
