from __future__ import annotations

from pathlib import Path

import pytest

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
