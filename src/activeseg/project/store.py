"""The labelling project's store: one SQLite database that is the project's state.

Everything a command changes (the images, the query manifest, the labels imported so far, rounds, model
versions, imports) changes in one transaction, so a command killed at any moment (even ``kill -9``)
leaves the project as it was before the command or as it is after it. The files a person or a tool
reads (``queries.jsonl``, ``labels/``, ``labelled/``, ``project.json``) are mirrors of the store,
rewritten after each commit (:mod:`activeseg.project.mirror`); a command that finds them behind brings
them up to date first. Model weights are files written atomically *before* the transaction that
registers them; a file no transaction registered is ignored and overwritten by the rerun.

Two commands at once are serialised by SQLite's write lock (``BEGIN IMMEDIATE``): an import reads the
label maps it merges into inside its own transaction, so two imports never lose each other's labels.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import numpy as np
from PIL import Image

from activeseg.errors import ConfigError
from activeseg.store import immediate_transaction

FORMAT = "activeseg-project-1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    idx INTEGER PRIMARY KEY, image_id TEXT UNIQUE NOT NULL, path TEXT NOT NULL, width INTEGER NOT NULL,
    height INTEGER NOT NULL, role TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS manifest (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, query_id TEXT NOT NULL, row TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS manifest_query ON manifest (query_id);
CREATE TABLE IF NOT EXISTS labels (
    image_id TEXT PRIMARY KEY, labels BLOB NOT NULL, bitmap BLOB NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, strategy TEXT NOT NULL, regions INTEGER NOT NULL, model_version TEXT NOT NULL,
    rng BLOB NOT NULL, seconds REAL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    version TEXT PRIMARY KEY, kind TEXT NOT NULL, round INTEGER NOT NULL, labelled INTEGER NOT NULL,
    path TEXT NOT NULL, metrics TEXT, seconds REAL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT NOT NULL, sha256 TEXT NOT NULL, format TEXT NOT NULL,
    report TEXT NOT NULL, created REAL NOT NULL);
"""


def png_bytes(array: np.ndarray) -> bytes:
    """A single-channel 8-bit PNG of ``array`` (lossless; never palette-encoded)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def png_array(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im)


class ProjectStore:
    """The SQLite database of one labelling project (``<project>/project.sqlite``)."""

    def __init__(self, path: Path, create: bool = False) -> None:
        path = Path(path)
        if not create and not path.is_file():
            raise ConfigError(f"{path.parent} is not an activeseg project (no {path.name}); create one with "
                              f"`activeseg project init {path.parent} --images FOLDER --classes classes.json`")
        self.path = path
        self.db = sqlite3.connect(path, timeout=600.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        if not create and self.meta("format") != FORMAT:
            self.db.close()
            raise ConfigError(f"{path} is an SQLite database but not an activeseg project store; give the folder "
                              f"made by `activeseg project init`")

    def close(self) -> None:
        self.db.close()

    def transaction(self):
        """BEGIN IMMEDIATE (the write lock, now) ... COMMIT, or ROLLBACK on any exception."""
        return immediate_transaction(self.db)

    # --- meta -----------------------------------------------------------------------------------

    def meta(self, key: str, cur: sqlite3.Cursor | None = None) -> str | None:
        row = (cur or self.db).execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def set_meta(cur: sqlite3.Cursor, key: str, value: str) -> None:
        cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # --- images ---------------------------------------------------------------------------------

    def images(self, role: str | None = None) -> list[dict]:
        """Images in index order: ``idx, image_id, path, width, height, role`` (pool, start, val)."""
        sql = "SELECT idx, image_id, path, width, height, role FROM images"
        rows = self.db.execute(sql + (" WHERE role = ?" if role else "") + " ORDER BY idx",
                               (role,) if role else ()).fetchall()
        out = [dict(zip(("idx", "image_id", "path", "width", "height", "role"), r)) for r in rows]
        root = self.meta("images_dir")
        for r in out:  # the manifest's image_path is relative to the images folder (spec formats.md §1)
            r["relative_path"] = str(Path(r["path"]).relative_to(root)) if root and r["path"].startswith(root + "/") \
                else r["path"]
        return out

    # --- the query manifest ---------------------------------------------------------------------

    @staticmethod
    def append_rows(cur: sqlite3.Cursor, rows: list[dict]) -> None:
        """Appends full manifest rows (spec formats.md §1): a status change is a new row."""
        cur.executemany("INSERT INTO manifest (query_id, row) VALUES (?, ?)",
                        [(r["query_id"], json.dumps(r, sort_keys=False)) for r in rows])

    def manifest_rows(self, after: int = 0) -> list[tuple[int, dict]]:
        """``(seq, row)`` of every manifest row after ``seq``, in order."""
        return [(s, json.loads(r)) for s, r in
                self.db.execute("SELECT seq, row FROM manifest WHERE seq > ? ORDER BY seq", (after,))]

    def queries(self, cur: sqlite3.Cursor | None = None) -> dict[str, dict]:
        """The current state of every query: its last manifest row, in order of first appearance."""
        out: dict[str, dict] = {}
        for (row,) in (cur or self.db).execute("SELECT row FROM manifest ORDER BY seq"):
            r = json.loads(row)
            out[r["query_id"]] = r
        return out

    # --- labels ---------------------------------------------------------------------------------

    def label_maps(self, image_id: str, cur: sqlite3.Cursor | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """``(labels, bitmap)`` of an image at native size, or None when nothing is labelled in it."""
        row = (cur or self.db).execute("SELECT labels, bitmap FROM labels WHERE image_id = ?", (image_id,)).fetchone()
        return None if row is None else (png_array(row[0]), png_array(row[1]))

    def labelled_images(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT image_id FROM labels ORDER BY image_id")]

    @staticmethod
    def put_labels(cur: sqlite3.Cursor, image_id: str, labels: np.ndarray, bitmap: np.ndarray) -> None:
        cur.execute("INSERT OR REPLACE INTO labels (image_id, labels, bitmap, updated) VALUES (?, ?, ?, ?)",
                    (image_id, png_bytes(labels), png_bytes(bitmap), time.time()))

    # --- rounds, models, imports ----------------------------------------------------------------

    def rounds(self) -> list[dict]:
        keys = ("round", "strategy", "regions", "model_version", "rng", "seconds", "created")
        return [dict(zip(keys, r)) for r in self.db.execute(f"SELECT {', '.join(keys)} FROM rounds ORDER BY round")]

    def models(self, kind: str | None = None) -> list[dict]:
        keys = ("version", "kind", "round", "labelled", "path", "metrics", "seconds", "created")
        sql = f"SELECT {', '.join(keys)} FROM models" + (" WHERE kind = ?" if kind else "") + " ORDER BY created"
        out = [dict(zip(keys, r)) for r in self.db.execute(sql, (kind,) if kind else ())]
        for m in out:
            m["metrics"] = json.loads(m["metrics"]) if m["metrics"] else None
        return out

    @staticmethod
    def register_model(cur: sqlite3.Cursor, version: str, kind: str, rnd: int, labelled: int, path: str,
                       metrics: dict | None, seconds: float) -> None:
        """Records a model whose weights are already written at ``path`` (relative to the project)."""
        cur.execute("INSERT OR REPLACE INTO models (version, kind, round, labelled, path, metrics, seconds, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (version, kind, rnd, labelled, str(path), json.dumps(metrics), seconds, time.time()))

    def imports(self) -> list[dict]:
        keys = ("id", "file", "sha256", "format", "report", "created")
        out = [dict(zip(keys, r)) for r in self.db.execute(f"SELECT {', '.join(keys)} FROM imports ORDER BY id")]
        for m in out:
            m["report"] = json.loads(m["report"])
        return out
