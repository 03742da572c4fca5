"""Crash safety: `kill -9` during an import or a training, then a rerun, gives the project an
uninterrupted command gives; two imports at once both land."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from activeseg.project.answer import write_answers
from activeseg.project.importer import import_labels
from activeseg.project.query import run_query
from activeseg.project.session import load_session
from activeseg.project.workspace import Project

KILL_IN_IMPORT = """
import os, signal, sys
from activeseg.project import importer, store
from activeseg.project.workspace import Project
where = sys.argv[3]
if where == "before_commit":  # inside the transaction, every row written, nothing committed
    append = store.ProjectStore.append_rows
    def append_then_die(cur, rows):
        append(cur, rows)
        os.kill(os.getpid(), signal.SIGKILL)
    store.ProjectStore.append_rows = staticmethod(append_then_die)
else:  # committed, files not yet mirrored
    importer.sync_mirrors = lambda project: os.kill(os.getpid(), signal.SIGKILL)
importer.import_labels(Project.open(sys.argv[1]), sys.argv[2])
"""

KILL_IN_TRAINING = """
import os, signal, sys
from activeseg.project import training
from activeseg.project.session import load_session
from activeseg.project.workspace import Project
save, calls = training.atomic_torch_save, []
def save_then_die(obj, path):
    save(obj, path)
    calls.append(path)
    if len(calls) == 2:  # after the second epoch's snapshot
        os.kill(os.getpid(), signal.SIGKILL)
training.atomic_torch_save = save_then_die
training.train_project(load_session(Project.open(sys.argv[1]), progress=False), progress=False)
"""


def killed(script: str, *args) -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == -9, proc.stderr[-2000:]


def state(directory) -> tuple:
    project = Project.open(directory)
    db = project.store.db
    rows = [json.loads(r) for (r,) in db.execute("SELECT row FROM manifest ORDER BY seq")]
    out = ([{**r, "labelled_at": None} for r in rows],  # the import's time of day aside
           db.execute("SELECT image_id, labels, bitmap FROM labels ORDER BY image_id").fetchall(),
           db.execute("SELECT file, format, report FROM imports ORDER BY id").fetchall(),
           db.execute("SELECT version, kind, round, labelled, path FROM models ORDER BY version").fetchall(),
           [{**json.loads(line), "labelled_at": None} for line in (project.dir / "queries.jsonl").read_text().splitlines()],
           sorted((p.name, p.read_bytes()) for p in (project.dir / "labels").glob("*.png")))
    project.close()
    return out


@pytest.fixture
def exported(tmp_path, project_inputs):
    p = project_inputs
    project = Project.init(tmp_path / "proj", p["images"], p["classes"], p["labels"], p["val"], p["config"])
    run_query(load_session(project, progress=False), "random", 4)
    write_answers(project, p["truth"], tmp_path / "answers.json")
    project.close()
    return tmp_path / "proj", tmp_path / "answers.json"


@pytest.mark.parametrize("where", ["before_commit", "after_commit"])
def test_kill_during_import(tmp_path, exported, where):
    directory, answers = exported
    shutil.copytree(directory, tmp_path / "reference")
    reference = Project.open(tmp_path / "reference")
    import_labels(reference, answers)
    reference.close()
    before = state(directory)
    killed(KILL_IN_IMPORT, directory, answers, where)
    if where == "before_commit":
        assert state(directory) == before  # as it was before the command
    else:
        assert state(directory)[:4] == state(tmp_path / "reference")[:4]  # as after it (files synced on open)
    project = Project.open(directory)
    import_labels(project, answers)  # the rerun
    project.close()
    assert state(directory)[:2] == state(tmp_path / "reference")[:2]
    assert state(directory)[4:] == state(tmp_path / "reference")[4:]


TRAIN = """
import sys
from activeseg.project import training
from activeseg.project.session import load_session
from activeseg.project.workspace import Project
training.train_project(load_session(Project.open(sys.argv[1]), progress=False), progress=False)
"""


def run_script(script: str, *args) -> None:
    """In a child process with the killed one's environment (one thread: the same floating-point sums)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_kill_during_training_then_resume(tmp_path, exported):
    directory, answers = exported
    project = Project.open(directory)
    import_labels(project, answers)
    project.close()
    shutil.copytree(directory, tmp_path / "reference")
    run_script(TRAIN, tmp_path / "reference")  # uninterrupted
    killed(KILL_IN_TRAINING, directory)
    assert not [m for m in Project.open(directory).store.models("trained")]  # nothing registered half-way
    assert list((directory / "models").glob(".partial-*.pt"))
    run_script(TRAIN, directory)  # the rerun resumes after the second epoch
    (got,) = Project.open(directory).store.models("trained")
    (expected,) = Project.open(tmp_path / "reference").store.models("trained")
    assert got["version"] == expected["version"]
    assert got["metrics"]["history"] == expected["metrics"]["history"]
    assert got["metrics"]["val"]["miou"] == expected["metrics"]["val"]["miou"]
    a = torch.load(directory / got["path"], weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "reference" / expected["path"], weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((directory / "models").glob(".partial-*.pt"))


CONCURRENT_IMPORT = """
import sys
from activeseg.project.importer import import_labels
from activeseg.project.workspace import Project
import_labels(Project.open(sys.argv[1]), sys.argv[2])
"""


def test_two_imports_at_once(tmp_path, exported):
    """Two processes import halves of a round at the same moment: both land, nothing is lost."""
    directory, answers = exported
    tasks = json.loads(answers.read_text())
    halves = [tmp_path / "a.json", tmp_path / "b.json"]
    halves[0].write_text(json.dumps(tasks[0::2]))  # interleaved: queries of one image land in both
    halves[1].write_text(json.dumps(tasks[1::2]))
    single = tmp_path / "single"
    shutil.copytree(directory, single)
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_IMPORT, str(directory), str(h)],
                              env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, stderr=subprocess.PIPE)
             for h in halves]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    project = Project.open(directory)
    assert [q["status"] for q in project.store.queries().values()] == ["labelled"] * 4
    assert project.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    other = Project.open(single)
    import_labels(other, answers)  # the whole round in one import
    assert sorted(other.store.labelled_images()) == sorted(project.store.labelled_images())
    for image_id in project.store.labelled_images():
        assert all((x == y).all() for x, y in zip(project.store.label_maps(image_id), other.store.label_maps(image_id)))


def test_round_random_states_of_older_projects_still_restore():
    import io

    from activeseg.project.session import restore_rng, rng_blob

    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(4)
    blob = rng_blob(generator)
    expected = (torch.rand(3, generator=generator), torch.rand(3))
    old = io.BytesIO()  # what projects stored before the global stream's key became torch_rng
    torch.manual_seed(4)
    torch.save({"generator": torch.Generator().manual_seed(3).get_state(), "torch": torch.get_rng_state()}, old)
    for stored in (blob, old.getvalue()):
        torch.manual_seed(99)  # restoring must bring both streams back
        restored = restore_rng(stored)
        assert torch.equal(torch.rand(3, generator=restored), expected[0]) and torch.equal(torch.rand(3), expected[1])
