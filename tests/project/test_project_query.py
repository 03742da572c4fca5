"""Query: what a round exports (crops, Label Studio tasks with pre-annotations, CVAT zips), the manifest,
and the command line from init to status."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from activeseg.cli import app
from activeseg.errors import DatasetError
from activeseg.formats.brush_rle import decode_brush
from activeseg.formats.common import Box
from activeseg.formats.crops import crop_for_query
from activeseg.formats.cvat import parse_cvat_xml
from activeseg.formats.labelstudio import box_to_percent
from activeseg.project.exports import read_rgb
from activeseg.project.query import predict_native, run_query
from activeseg.project.session import load_session
from activeseg.project.workspace import Project


@pytest.fixture
def session(tmp_path, project_inputs):
    p = project_inputs
    project = Project.init(tmp_path / "proj", p["images"], p["classes"], p["labels"], p["val"], p["config"])
    return load_session(project, progress=False)


def test_crop_round_exports(session):
    project = session.project
    out = run_query(session, "entropy", 4)
    folder = project.dir / "exports" / "round_001"
    queries = list(project.store.queries().values())
    assert [q["status"] for q in queries] == ["exported"] * 4
    tasks = json.loads((folder / "labelstudio_tasks.json").read_text())
    assert [t["data"]["query_id"] for t in tasks] == [q["query_id"] for q in queries]
    model, _, _ = session.al_model()
    for task, q in zip(tasks, queries):
        box = Box(q["x0"], q["y0"], q["x1"], q["y1"])
        spec = crop_for_query(box, q["image_width"], q["image_height"], 0.25)
        crop = folder / "crops" / f"{q['query_id']}.png"
        assert task["data"]["image"] == f"/data/local-files/?d=exports/round_001/crops/{q['query_id']}.png"
        assert q["crop"]["path"] == f"exports/round_001/crops/{q['query_id']}.png"
        assert (q["crop"]["offset_x"], q["crop"]["offset_y"]) == spec.offset
        pixels = np.array(Image.open(crop))
        image = next(r for r in project.pool_images() if r["image_id"] == q["image_id"])
        assert q["image_path"] == f"{q['image_id']}.png"  # relative to the images folder (spec §1)
        np.testing.assert_array_equal(pixels, read_rgb(image["path"])[spec.box.slices])
        rect, *brushes = task["predictions"][0]["result"]
        assert rect["readonly"] and rect["value"]["x"] == box_to_percent(spec.target_in_crop, *pixels.shape[1::-1])["x"]
        # the pre-annotation is the model's prediction inside the box (and nothing outside it)
        idx = next(r["idx"] for r in project.pool_images() if r["image_id"] == q["image_id"])
        pred = predict_native(session, model, idx, q["image_width"], q["image_height"])[spec.box.slices]
        painted = np.full(pred.shape, 255, np.uint8)
        names = project.classes.names
        for b in brushes:
            mask = decode_brush(b["value"]["rle"], pred.shape[0], pred.shape[1])
            painted[mask] = names.index(b["value"]["brushlabels"][0])
        expected = np.full(pred.shape, 255, np.uint8)
        t = spec.target_in_crop
        expected[t.slices] = pred[t.slices]
        np.testing.assert_array_equal(painted, expected)
    config = (folder / "labelstudio_config.xml").read_text()
    assert all(f'value="{n}"' in config for n in (*project.classes.names, "void"))
    with zipfile.ZipFile(folder / "cvat_task.zip") as zf:
        names = set(zf.namelist())
        xml = zf.read("annotations.xml")
    assert {f"images/{q['query_id']}.png" for q in queries} <= names
    parsed = parse_cvat_xml(xml, project.classes.names)
    assert set(parsed) == {f"{q['query_id']}.png" for q in queries}
    lines = (project.dir / "queries.jsonl").read_text().splitlines()
    assert [json.loads(x)["status"] for x in lines] == ["pending"] * 4 + ["exported"] * 4
    assert out["selected"] and len(out["selected"]) == 4


def test_full_image_round(session):
    project = session.project
    run_query(session, "random", 4, replace(project.cfg.export, mode="full_image"))
    folder = project.dir / "exports" / "round_001"
    tasks = json.loads((folder / "labelstudio_tasks.json").read_text())
    for task in tasks:
        q = project.store.queries()[task["data"]["query_id"]]
        assert q["crop"] is None
        assert Image.open(folder / "images" / f"{q['image_id']}.png").size == (q["image_width"], q["image_height"])
        assert task["data"]["region_px"] == {k: q[k] for k in ("x0", "y0", "x1", "y1")}


def test_command_line_walk_through(tmp_path, project_inputs):
    """init -> query -> answer (as a person's export) -> import -> train -> status -> query again."""
    p = project_inputs
    d = str(tmp_path / "cli")
    runner = CliRunner()

    def ok(*args):
        result = runner.invoke(app, list(map(str, args)))
        assert result.exit_code == 0, result.output
        return result.output

    ok("project", "init", d, "--images", p["images"], "--classes", p["classes"], "--labels", p["labels"],
       "--val", p["val"], "--config", p["config"])
    assert "round 1: 4 queries" in ok("project", "query", d, "--strategy", "bald", "--regions", "4", "--quiet")
    ok("project", "answer", d, "--truth", p["truth"], "--out", tmp_path / "export.json")
    assert "4 labelled" in ok("project", "import", d, tmp_path / "export.json")
    ok("project", "show", d, "--round", "1", "--out", tmp_path / "round.png")
    assert Image.open(tmp_path / "round.png").size[1] > 4 * 100  # one row per query
    assert "val mIoU" in ok("project", "train", d, "--quiet")
    assert "(up to date)" in ok("project", "train", d, "--quiet")
    status = json.loads(ok("project", "status", d, "--json"))
    assert status["queries"] == {"labelled": 4} and status["trained"][0]["labelled_regions"] == 4
    assert sum(status["regions_per_class"].values()) >= 4
    assert "round 2" in ok("project", "query", d, "--strategy", "entropy", "--regions", "4", "--quiet")
    bad = runner.invoke(app, ["project", "import", d, str(tmp_path / "export.json")])
    assert bad.exit_code == 0 and "4 unchanged" in bad.output  # re-import: nothing changes
    missing = runner.invoke(app, ["project", "import", d, str(tmp_path / "nope.json")])
    assert isinstance(missing.exception, DatasetError) and "file not found" in str(missing.exception)


def test_rounds_score_with_the_trained_model_once_there_is_one(tmp_path, project_inputs):
    """query_model: trained (the default) scores with `project train`'s model when it knows every answered
    round, and with the fine-tuned model when labels came in since."""
    import yaml

    from activeseg.project.answer import write_answers
    from activeseg.project.importer import import_labels
    from activeseg.project.training import train_project

    p = project_inputs
    settings = yaml.safe_load(p["config"].read_text())
    settings["query_model"] = "trained"
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(settings))
    project = Project.init(tmp_path / "t", p["images"], p["classes"], p["labels"], p["val"], tmp_path / "t.yaml")
    session = load_session(project, progress=False)
    run_query(session, "random", 4)
    write_answers(project, p["truth"], tmp_path / "a1.json")
    import_labels(project, tmp_path / "a1.json")
    assert run_query(session, "entropy", 4)["model_version"] == "al-r001"  # nothing trained yet
    write_answers(project, p["truth"], tmp_path / "a2.json")
    import_labels(project, tmp_path / "a2.json")
    trained = train_project(session, progress=False)
    assert run_query(session, "entropy", 4)["model_version"] == trained["version"]
