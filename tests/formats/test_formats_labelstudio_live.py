"""A real Label Studio round trip of CamVid crop tasks (spec formats.md §3, §7), built directly and through
a labelling project's own commands (``activeseg project init|query|import|status``), over two rounds: a cold
start, then a round whose tasks carry the fine-tuned model's brush pre-annotations.

Needs the separate venv ``.venv-ls`` with label-studio (``make labelstudio-roundtrip`` creates it) and
the CamVid folder; skipped otherwise. Each test starts a server, so it is slow (about two minutes each).
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
def test_two_project_rounds_come_back_exactly_through_a_live_label_studio(tmp_path):
    """Round 1: project init -> query (random, cold start) -> Label Studio (document root = the project folder)
    with the exported config and tasks as they are -> ground-truth brushes -> full JSON export -> project import.
    Round 2, same server and Label Studio project: query (entropy; the tasks carry brush pre-annotations) ->
    each prediction accepted as Label Studio's editor copies it + the truth painted over the box as manual
    strokes -> export -> project import: the manual strokes win over the pre-annotation."""
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
    assert summary["pre_annotation_layers"] == 0  # cold start: the model has learned nothing to pre-annotate with
    assert summary["round_1_exact"]

    r2 = summary["round_2"]
    assert [c["command"].split()[:3] for c in r2["commands"]] == [
        ["activeseg", "project", "query"], ["activeseg", "project", "import"], ["activeseg", "project", "status"]]
    assert "--strategy entropy" in r2["commands"][0]["command"]
    assert r2["model_version"] == "al-r001"  # fine-tuned on round 1
    assert r2["local_files"]["storage"] == "exports/round_002/crops"
    assert r2["tasks"] == r2["images_served"] == r2["annotations_submitted"] == 6
    assert r2["tasks_with_pre_annotations"] == 6 and r2["pre_annotation_layers"] > 0
    assert r2["pre_annotation_pixels"] == r2["pre_annotation_box_pixels"] == 6 * 90 * 80  # the whole box
    assert r2["tasks_exported"] == r2["annotations_exported"] == 12  # both rounds' tasks: one Label Studio project
    assert r2["predictions_intact"] == 6  # query box + pre-annotation layers (origin, ids, RLE) stored as sent
    audit = r2["export_audit"]
    assert audit["annotations"] == audit["parent_prediction_set"] == 6
    assert (audit["pre_layers_sent"] == audit["pre_layers_exported"] == audit["pre_layers_origin_prediction"]
            == audit["pre_layers_rle_identical"] == audit["pre_layers_intact"] == r2["pre_annotation_layers"])
    assert audit["pre_layer_ids"] and all(i.startswith("pre-") for i in audit["pre_layer_ids"])
    assert audit["query_rect_kept"] == audit["query_rect_readonly"] == 6  # the editor keeps the read-only box
    assert audit["query_rect_origins"] == {"prediction": 6}
    assert set(audit["results_by_origin"]) == {"prediction", "manual"}
    assert r2["export_check"]["unanswered"] == [] and r2["export_check"]["box_mismatches"] == 0
    assert r2["export_check"]["crop_mismatches"] == 0  # the crop margin stays unpainted
    controls = r2["precedence_controls"]
    assert controls["manual_first"] == controls["origin_dropped"] == 0  # origin (or the pre- id) decides, not order
    assert controls["pre_edited"] == 0  # an edited pre-annotation layer still gives way to the annotator's strokes
    # the model is still wrong in places, and were the pre-annotation counted as strokes those pixels would clash
    assert r2["pre_annotation_pixels_disagreeing_with_truth"] > 0
    assert controls["pre_as_strokes"] == r2["pre_annotation_pixels_disagreeing_with_truth"]
    assert r2["import"] == {"labelled": 6, "rejected": 0, "unchanged": 0, "min_coverage": 1.0}
    assert r2["import_round_1_tasks"]["unchanged"] == 6  # round 1's tasks in the export: kept
    assert r2["status"]["queries"] == {"labelled": 12}
    assert [r["strategy"] for r in r2["status"]["rounds"]] == ["random", "entropy"]
    assert r2["queries"] == r2["labelled_queries"] == 6
    assert len(r2["per_query"]) == 6
    assert all(q == {"status": "labelled", "box_mismatches": 0, "bitmap_not_marked": 0}
               for q in r2["per_query"].values())
    assert r2["mismatches"] == 0 and r2["bitmap_not_marked"] == 0  # the manual strokes won inside every box
    assert r2["round_1_mismatches_after"] == 0 and r2["labels_outside_boxes"] == 0
    assert r2["box_pixels_checked"] == 6 * 90 * 80
    assert r2["exact"] and summary["exact"]
