"""The project's files for people and tools, kept equal to its store.

``queries.jsonl`` is append-only: rows the store holds and the file lacks are appended (a torn last line
left by a kill is cut first). ``labels/`` and ``labelled/`` PNGs are replaced atomically when their
bytes differ from the store's. Each command syncs after its commit and when it opens the project, so a
command killed between its commit and its sync leaves files that the next command completes.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from activeseg.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from activeseg.project.workspace import Project


def _sync_manifest(project: "Project") -> None:
    path = project.dir / "queries.jsonl"
    rows = project.store.manifest_rows()
    data = path.read_bytes() if path.is_file() else b""
    if data and not data.endswith(b"\n"):  # a torn last line: cut it
        data = data[: data.rfind(b"\n") + 1]
    have = data.count(b"\n")
    expected = "".join(json.dumps(r) + "\n" for _, r in rows[:have]).encode()
    if have > len(rows) or data != expected:  # not a prefix of the store's log: rewrite it whole
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for _, r in rows).encode())
        return
    if have == len(rows) and path.is_file() and path.stat().st_size == len(data):
        return
    with open(path, "r+b" if path.is_file() else "wb") as f:
        f.truncate(len(data))
        f.seek(len(data))
        f.write("".join(json.dumps(r) + "\n" for _, r in rows[have:]).encode())
        f.flush()
        os.fsync(f.fileno())


def _sync_labels(project: "Project") -> None:
    for image_id, labels, bitmap in project.store.db.execute("SELECT image_id, labels, bitmap FROM labels"):
        for folder, blob in (("labels", labels), ("labelled", bitmap)):
            path = project.dir / folder / f"{image_id}.png"
            if not path.is_file() or path.read_bytes() != blob:
                atomic_write_bytes(path, blob)


def _sync_settings(project: "Project") -> None:
    path = project.dir / "project.json"
    text = json.dumps({
        "project_id": project.project_id,
        "images": project.store.meta("images_dir"),
        "validation": project.store.meta("val_dir") or None,
        "classes": json.loads(project.store.meta("classes")),
        "settings": json.loads(project.store.meta("settings")),
        "note": "a mirror of project.sqlite, for reading: edits here are not read back",
    }, indent=2) + "\n"
    if not path.is_file() or path.read_text() != text:
        atomic_write_bytes(path, text.encode())


def sync_mirrors(project: "Project") -> None:
    """Brings ``queries.jsonl``, ``labels/``, ``labelled/`` and ``project.json`` up to date with the store."""
    _sync_settings(project)
    _sync_manifest(project)
    _sync_labels(project)
