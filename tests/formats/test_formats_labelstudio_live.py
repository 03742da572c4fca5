"""A real Label Studio round trip of CamVid crop tasks (spec formats.md §3, §7), built directly and through
a labelling project's own commands (``activeseg project init|query|import|status``).

Needs the separate venv ``.venv-ls`` with label-studio (``make labelstudio-roundtrip`` creates it) and
the CamVid folder; skipped otherwise. Each test starts a server, so it is slow (about a minute or two).
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


def _skip_without_label_studio_or_camvid() -> None:
    if not EXECUTABLE.is_file():
        pytest.skip(f"{EXECUTABLE} not found; {REMEDY}")
    try:
        resolve_dataset_dir("camvid")
    except DatasetError:
        pytest.skip(f"CamVid folder not found (set ACTIVESEG_DATA); then {REMEDY}")


@pytest.mark.slow
@pytest.mark.camvid
def test_camvid_crop_tasks_survive_a_live_label_studio_round_trip(tmp_path):
    _skip_without_label_studio_or_camvid()
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


@pytest.mark.slow
@pytest.mark.camvid
def test_a_project_round_comes_back_exactly_through_a_live_label_studio(tmp_path):
    """project init -> query (random, cold start) -> Label Studio (document root = the project folder) with the
    exported config and tasks as they are -> ground-truth brushes -> full JSON export -> project import."""
    _skip_without_label_studio_or_camvid()
    harness = _load_harness()
    summary = harness.project_roundtrip(6, images=12, seed=1, work_dir=tmp_path / "work",
                                        data_dir=tmp_path / "ls-data", executable=EXECUTABLE)
    assert [c["command"].split()[:3] for c in summary["commands"]] == [
        ["activeseg", "project", "init"], ["activeseg", "project", "query"], ["activeseg", "project", "import"],
        ["activeseg", "project", "status"]]
    assert summary["local_files"]["storage"] == "exports/round_001/crops"
    assert summary["tasks"] == summary["images_served"] == summary["annotations_submitted"] == 6
    assert summary["tasks_exported"] == summary["annotations_exported"] == 6
    assert summary["predictions_intact"] == 6  # the read-only query box came back unchanged
    assert summary["export_check"]["unanswered"] == [] and summary["export_check"]["crop_mismatches"] == 0
    assert summary["import"] == {"labelled": 6, "rejected": 0, "unchanged": 0, "min_coverage": 1.0}
    assert summary["queries"] == summary["labelled_queries"] == 6
    assert summary["status"]["queries"] == {"labelled": 6}  # `activeseg project status --json`
    per_query = summary["per_query"]
    assert len(per_query) == 6
    assert all(q == {"status": "labelled", "box_mismatches": 0, "bitmap_not_marked": 0} for q in per_query.values())
    assert summary["mismatches"] == 0 and summary["bitmap_not_marked"] == 0 and summary["labels_outside_boxes"] == 0
    assert summary["box_pixels_checked"] == 6 * 90 * 80  # 4 x 6 grid regions of 480 x 360 images
    assert summary["exact"]
