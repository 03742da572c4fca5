"""A real Label Studio round trip of CamVid crop tasks (spec formats.md §3, §7).

Needs the separate venv ``.venv-ls`` with label-studio (``make labelstudio-roundtrip`` creates it) and
the CamVid folder; skipped otherwise. Starts a server, so it is slow (about a minute).
"""

import importlib.util
from pathlib import Path

import pytest

from activeseg.data.roots import resolve_dataset_dir
from activeseg.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "labelstudio_live.py"
EXECUTABLE = REPO / ".venv-ls" / "bin" / "label-studio"
REMEDY = "run `make labelstudio-roundtrip` once (creates .venv-ls with label-studio and runs the round trip)"


def _load_harness():
    spec = importlib.util.spec_from_file_location("labelstudio_live", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.camvid
def test_camvid_crop_tasks_survive_a_live_label_studio_round_trip(tmp_path):
    if not EXECUTABLE.is_file():
        pytest.skip(f"{EXECUTABLE} not found; {REMEDY}")
    try:
        resolve_dataset_dir("camvid")
    except DatasetError:
        pytest.skip(f"CamVid folder not found (set ACTIVESEG_DATA); then {REMEDY}")
    harness = _load_harness()
    summary = harness.camvid_roundtrip(6, seed=1, work_dir=tmp_path / "work", data_dir=tmp_path / "ls-data",
                                       executable=EXECUTABLE)
    assert summary["tasks"] == summary["images_served"] == summary["annotations_submitted"] == 6
    assert summary["tasks_exported"] == summary["annotations_exported"] == 6
    assert summary["answered"] == 6 and summary["unanswered"] == []
    assert summary["predictions_intact"] == 6  # the read-only query box came back unchanged
    per_task = summary["per_task_box_mismatches"]
    assert len(per_task) == 6 and all(bad == 0 for bad in per_task.values())  # exact inside every box
    assert summary["mismatches"] == 0 and summary["crop_mismatches"] == 0
    assert summary["box_pixels_checked"] == 6 * 90 * 80
