"""Import: every export format, the §2 rules, and bad input rejected with the project unchanged."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from activeseg.errors import ConfigError, DatasetError
from activeseg.project.answer import write_answers
from activeseg.project.importer import import_labels
from activeseg.project.query import run_query
from activeseg.project.session import load_session
from activeseg.project.workspace import Project, read_label_png


@pytest.fixture
def round_one(tmp_path, project_inputs):
    """A project with one exported round of 4 crop queries (random)."""
    p = project_inputs
    project = Project.init(tmp_path / "proj", p["images"], p["classes"], p["labels"], p["val"], p["config"])
    session = load_session(project, progress=False)
    run_query(session, "random", 4)
    return project, session, p


def snapshot(project: Project) -> tuple:
    db = project.store.db
    return (db.execute("SELECT seq, row FROM manifest ORDER BY seq").fetchall(),
            db.execute("SELECT image_id, labels, bitmap FROM labels ORDER BY image_id").fetchall(),
            db.execute("SELECT COUNT(*) FROM imports").fetchone(),
            (project.dir / "queries.jsonl").read_bytes())


def open_queries(project):
    return [q for q in project.store.queries().values() if q["status"] == "exported"]


@pytest.mark.parametrize("fmt,name", [("labelstudio", "a.json"), ("cvat_segmask", "a.zip"), ("png_folder", "masks")])
def test_ground_truth_answers_import_exactly(round_one, tmp_path, fmt, name):
    project, _, p = round_one
    queries = open_queries(project)
    write_answers(project, p["truth"], tmp_path / name, fmt)
    report = import_labels(project, tmp_path / name)
    assert report["labelled"] == 4 and report["rejected"] == 0
    for q in queries:
        truth = read_label_png(p["truth"] / f"{q['image_id']}.png", (q["image_width"], q["image_height"]),
                               project.classes)
        labels, bitmap = project.store.label_maps(q["image_id"])
        box = (slice(q["y0"], q["y1"]), slice(q["x0"], q["x1"]))
        np.testing.assert_array_equal(labels[box], truth[box])
        assert (bitmap[box] == 255).all()
    # outside the answered boxes nothing is labelled (pool images) and the files mirror the store
    for image_id in {q["image_id"] for q in queries}:
        labels, bitmap = project.store.label_maps(image_id)
        assert ((labels != 255) <= (bitmap != 0)).all()
        assert (project.dir / "labels" / f"{image_id}.png").read_bytes() == project.store.db.execute(
            "SELECT labels FROM labels WHERE image_id = ?", (image_id,)).fetchone()[0]
    rows = [json.loads(line) for line in (project.dir / "queries.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows[-4:]] == ["labelled"] * 4
    umask = os.umask(0)
    os.umask(umask)
    for path in (*project.dir.glob("labels/*.png"), project.dir / "project.json", project.dir / "models" / "start.pt"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path  # readable as any file the user writes


def test_reimport_is_idempotent(round_one, tmp_path):
    project, _, p = round_one
    write_answers(project, p["truth"], tmp_path / "a.json")
    import_labels(project, tmp_path / "a.json")
    before = snapshot(project)
    report = import_labels(project, tmp_path / "a.json")
    assert report["unchanged"] == 4 and report["labelled"] == 0
    assert snapshot(project) == before


def test_full_image_reimport_is_idempotent_and_blank_answers_stay_open(round_one, tmp_path):
    project, _, p = round_one
    q = open_queries(project)[0]
    (tmp_path / "blank").mkdir()
    Image.fromarray(np.full((q["crop"]["height"], q["crop"]["width"]), 255, np.uint8)).save(
        tmp_path / "blank" / f"{q['query_id']}.png")
    before = snapshot(project)
    report = import_labels(project, tmp_path / "blank")  # nothing painted: the query stays open
    assert report["unanswered"] == 1 and snapshot(project) == before
    (tmp_path / "full").mkdir()
    Image.fromarray(np.ones((q["image_height"], q["image_width"]), np.uint8)).save(
        tmp_path / "full" / f"{q['image_id']}.png")
    first = import_labels(project, tmp_path / "full")
    assert first["labelled"] >= 1
    after = snapshot(project)
    again = import_labels(project, tmp_path / "full")  # the same full-image masks: nothing changes
    assert again["labelled"] == 0 and again["unchanged"] == first["labelled"]
    assert snapshot(project) == after


def test_corrections_win_over_the_pre_annotation(round_one, tmp_path):
    """An annotator keeps the model's pre-annotation layer and paints a correction over part of it: the
    correction wins there (not 'two classes: unlabelled'), the pre-annotation fills the rest."""
    from activeseg.formats.brush_rle import encode_brush

    project, _, p = round_one
    q = open_queries(project)[0]
    w, h = q["crop"]["width"], q["crop"]["height"]
    tx0, ty0, tx1, ty1 = q["crop"]["target_in_crop"]
    pre = np.zeros((h, w), bool)
    pre[ty0:ty1, tx0:tx1] = True
    fix = np.zeros((h, w), bool)
    fix[ty0:ty0 + 5, tx0:tx1] = True
    names = project.classes.names

    def layer(rid, mask, name, origin):
        return {"id": rid, "origin": origin, "from_name": "mask", "to_name": "image", "type": "brushlabels",
                "original_width": w, "original_height": h,
                "value": {"format": "rle", "rle": encode_brush(mask), "brushlabels": [name]}}

    task = {"id": 1, "data": {"query_id": q["query_id"], "activeseg_project": project.project_id},
            "annotations": [{"id": 1, "result": [layer("pre-1", pre, names[1], "prediction"),
                                                 layer("x", fix, names[2], "manual")]}]}
    (tmp_path / "corr.json").write_text(json.dumps([task]))
    import_labels(project, tmp_path / "corr.json")
    labels, _ = project.store.label_maps(q["image_id"])
    box = labels[q["y0"]:q["y1"], q["x0"]:q["x1"]]
    assert (box[:5] == 2).all() and (box[5:] == 1).all()


def test_annotation_levels():
    """The annotator's strokes over edited pre-annotation layers over untouched ones (Label Studio origins)."""
    from activeseg.formats.labelstudio import annotation_level

    assert annotation_level({"origin": "manual", "id": "pre-3"}) == 0
    assert annotation_level({"id": "x1"}) == 0
    assert annotation_level({"origin": "prediction-changed", "id": "pre-3"}) == 1
    assert annotation_level({"origin": "prediction", "id": "abc"}) == 2
    assert annotation_level({"id": "pre-3"}) == 2


def test_full_image_answer_is_clipped_to_the_boxes(round_one, tmp_path):
    """A full-size mask named by the image answers the image's open queries; paint outside is discarded."""
    project, _, p = round_one
    q = open_queries(project)[0]
    mask = np.ones((q["image_height"], q["image_width"]), np.uint8)  # class 1 everywhere
    (tmp_path / "m").mkdir()
    Image.fromarray(mask).save(tmp_path / "m" / f"{q['image_id']}.png")
    report = import_labels(project, tmp_path / "m")
    assert {r["query_id"] for r in report["queries"]} >= {q["query_id"]}
    labels, bitmap = project.store.label_maps(q["image_id"])
    assert (labels[q["y0"]:q["y1"], q["x0"]:q["x1"]] == 1).all()
    assert ((labels == 1) == (bitmap != 0)).all()  # nothing kept outside the answered boxes


@pytest.fixture
def bad_inputs(round_one, tmp_path):
    project, _, p = round_one
    write_answers(project, p["truth"], tmp_path / "good.json")
    tasks = json.loads((tmp_path / "good.json").read_text())
    q = open_queries(project)[0]
    return project, tasks, q, p


def _write_tasks(folder, tasks):
    folder.mkdir()
    path = folder / "bad.json"
    path.write_text(json.dumps(tasks))
    return path


def _zip(path, entries: dict[str, str]):
    """A zip holding ``entries`` (name -> text) as written, unsafe names included."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in entries.items():
            zf.writestr(name, text)
    return path


def _first_brush(tasks):
    return next(r for t in tasks for r in t["annotations"][0]["result"] if r["type"] == "brushlabels")


def test_bad_inputs_are_rejected_and_change_nothing(bad_inputs, tmp_path):
    project, tasks, q, p = bad_inputs
    before = snapshot(project)
    cases = {}

    t = json.loads(json.dumps(tasks))
    _first_brush(t)["value"]["brushlabels"] = ["Sky-not-a-class"]
    cases["unknown label name"] = (_write_tasks(tmp_path / "c1", t),
                                   "not a class name")
    t = json.loads(json.dumps(tasks))
    _first_brush(t)["value"]["rle"] = _first_brush(t)["value"]["rle"][:5]
    cases["RLE that does not add up"] = (_write_tasks(tmp_path / "c2", t),
                                         "RLE")
    t = json.loads(json.dumps(tasks))
    r = _first_brush(t)
    t[0]["annotations"][0]["result"].append({"id": "rot", "from_name": "mask", "to_name": "image",
                                             "type": "rectanglelabels", "original_width": r["original_width"],
                                             "original_height": r["original_height"],
                                             "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 30,
                                                       "rectanglelabels": [project.classes.names[0]]}})
    cases["rotated rectangle"] = (_write_tasks(tmp_path / "c3", t),
                                  "rotat")
    t = json.loads(json.dumps(tasks))
    for task in t:
        task["data"]["activeseg_project"] = "0" * 32
    cases["file for another project"] = (_write_tasks(tmp_path / "c4", t), "another project")
    t = json.loads(json.dumps(tasks))
    t[0]["data"]["query_id"] = "r042-train_0005-0-0-32-48"
    cases["query id that does not exist"] = (_write_tasks(tmp_path / "c5", t), "neither a query nor an image")
    # PNG masks: wrong size, a value outside the classes
    crop_w, crop_h = Image.open(project.dir / q["crop"]["path"]).size
    (tmp_path / "size").mkdir()
    Image.fromarray(np.zeros((crop_h + 3, crop_w), np.uint8)).save(tmp_path / "size" / f"{q['query_id']}.png")
    cases["wrong image size"] = (tmp_path / "size", "answer is")
    (tmp_path / "value").mkdir()
    Image.fromarray(np.full((crop_h, crop_w), 9, np.uint8)).save(tmp_path / "value" / f"{q['query_id']}.png")
    cases["label value outside the classes"] = (tmp_path / "value", "outside the classes")
    # zip entries with '..' and with an absolute path
    cases["zip entry with .."] = (_zip(tmp_path / "evil.zip", {"labelmap.txt": "background:0,0,0::\n",
                                                                "SegmentationClass/../../evil.png": "x"}), "..")
    cases["zip entry with an absolute path"] = (_zip(tmp_path / "abs.zip", {"annotations.xml": "<annotations/>",
                                                                            "/etc/evil.xml": "x"}), "absolute path")
    coco = {"images": [{"id": 1, "file_name": f"{q['query_id']}.png", "width": crop_w, "height": crop_h}],
            "annotations": [], "categories": [{"id": 1, "name": "Sky-not-a-class"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    cases["COCO category that is not a class"] = (tmp_path / "coco.json", "not a class name")
    for what, (path, needle) in cases.items():
        with pytest.raises(DatasetError) as err:
            import_labels(project, path)
            pytest.fail(f"{what}: imported")
        assert needle in str(err.value), what
        assert str(path) in str(err.value), what  # the message names the file
        assert "Remedy:" in str(err.value), what
        if what in ("wrong image size", "label value outside the classes"):
            assert q["query_id"] in str(err.value), what  # ... and the query
        assert snapshot(project) == before, what


def test_query_refuses_while_queries_are_open(round_one):
    _, session, _ = round_one
    with pytest.raises(ConfigError, match="not answered yet"):
        run_query(session, "random", 4)


def test_cold_start_needs_a_model_free_strategy(tmp_path, project_inputs):
    p = project_inputs
    project = Project.init(tmp_path / "cold", p["images"], p["classes"], None, None, None)
    with pytest.raises(ConfigError, match="--strategy random"):
        run_query(load_session(project, progress=False), "entropy", 4)


def _answer_maps(project, tmp_path, truth):
    """Each open query's true class map on its crop (255 outside the box), from the PNG-folder answerer."""
    write_answers(project, truth, tmp_path / "maps", "png_folder")
    return {p.stem: np.array(Image.open(p)) for p in sorted((tmp_path / "maps").glob("*.png"))}


def _check_imported(project, truth, queries):
    for q in queries:
        t = read_label_png(truth / f"{q['image_id']}.png", (q["image_width"], q["image_height"]), project.classes)
        labels, _ = project.store.label_maps(q["image_id"])
        box = (slice(q["y0"], q["y1"]), slice(q["x0"], q["x1"]))
        np.testing.assert_array_equal(labels[box], t[box])


def test_cvat_xml_masks_import(round_one, tmp_path):
    """CVAT for images 1.1: one <mask> per class (runs over its tight box), inside a zip."""
    from activeseg.formats.cvat import mask_to_cvat

    project, _, p = round_one
    queries = open_queries(project)
    names = (*project.classes.names, "void")
    images = []
    for name, labels in _answer_maps(project, tmp_path, p["truth"]).items():
        shapes = []
        for value in np.unique(labels[labels != 255]).tolist():
            runs, box = mask_to_cvat(labels == value)
            shapes.append(f'<mask label="{names[value]}" source="manual" occluded="0" rle="{", ".join(map(str, runs))}" '
                          f'left="{box.x0}" top="{box.y0}" width="{box.width}" height="{box.height}" z_order="0"/>')
        images.append(f'<image id="{len(images)}" name="{name}.png" width="{labels.shape[1]}" '
                      f'height="{labels.shape[0]}">{"".join(shapes)}</image>')
    xml = f'<?xml version="1.0"?><annotations><version>1.1</version>{"".join(images)}</annotations>'
    with zipfile.ZipFile(tmp_path / "cvat.zip", "w") as zf:
        zf.writestr("annotations.xml", xml)
    report = import_labels(project, tmp_path / "cvat.zip")
    assert report["format"] == "cvat_xml" and report["labelled"] == 4
    _check_imported(project, p["truth"], queries)


def test_coco_rle_import(round_one, tmp_path):
    """COCO: one RLE annotation per (crop, class), category id = class + 1 (void is not exported)."""
    from activeseg.formats.coco import semantic_annotations

    project, _, p = round_one
    queries = open_queries(project)
    images, annotations = [], []
    for i, (name, labels) in enumerate(_answer_maps(project, tmp_path, p["truth"]).items()):
        images.append({"id": i + 1, "file_name": f"{name}.png", "width": labels.shape[1], "height": labels.shape[0]})
        annotations += semantic_annotations(labels, labels != 255, project.num_classes, i + 1,
                                            first_id=len(annotations) + 1)
    (tmp_path / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": []}))
    report = import_labels(project, tmp_path / "coco.json")
    assert report["format"] == "coco" and report["labelled"] == 4
    for q in queries:  # void (the frame) is not a COCO category: those pixels stay unlabelled
        t = read_label_png(p["truth"] / f"{q['image_id']}.png", (q["image_width"], q["image_height"]), project.classes)
        labels, bitmap = project.store.label_maps(q["image_id"])
        box = (slice(q["y0"], q["y1"]), slice(q["x0"], q["x1"]))
        expected = np.where(t[box] == project.num_classes, 255, t[box])
        np.testing.assert_array_equal(labels[box], expected)
        assert (bitmap[box] == 255).all()
