"""The run store: one SQLite database (WAL mode) for every active-learning run of a benchmark.

A step's record and the checkpoint needed to resume after it are written in one transaction, so a
run killed at any moment (even ``kill -9``) resumes from its last complete step. Several processes
may share one store: SQLite serialises writers, and a run is claimed by one process at a time.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from activeseg.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, strategy TEXT NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new', owner TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, labelled INTEGER NOT NULL, selected TEXT NOT NULL,
    scores TEXT NOT NULL, seeds TEXT NOT NULL, seconds_score REAL, seconds_train REAL, created REAL NOT NULL,
    PRIMARY KEY (run_id, step));
CREATE TABLE IF NOT EXISTS evaluations (
    run_id TEXT NOT NULL, budget INTEGER NOT NULL, split TEXT NOT NULL, labelled INTEGER NOT NULL,
    miou REAL NOT NULL, pixel_accuracy REAL, iou TEXT NOT NULL, class_histogram TEXT, epochs INTEGER,
    seconds REAL, created REAL NOT NULL, PRIMARY KEY (run_id, budget, split));
CREATE TABLE IF NOT EXISTS evaluation_extras (
    run_id TEXT NOT NULL, budget INTEGER NOT NULL, split TEXT NOT NULL, extra TEXT NOT NULL,
    PRIMARY KEY (run_id, budget, split));
CREATE TABLE IF NOT EXISTS training_curves (
    run_id TEXT NOT NULL, budget INTEGER NOT NULL, history TEXT NOT NULL, PRIMARY KEY (run_id, budget));
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT PRIMARY KEY, step INTEGER NOT NULL, blob BLOB NOT NULL);
"""


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """BEGIN IMMEDIATE (take the write lock now) ... COMMIT, or ROLLBACK on any exception (``db`` opened
    with ``isolation_level=None``)."""
    cur = db.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise


class RunBusyError(RuntimeError):
    """Another live process is executing the run."""


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(owner: str | None) -> bool:
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # cannot tell for another machine: assume alive
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def budget_unit(run_config: dict) -> str:
    """What a stored run config's budgets count: 'images' (``budget_unit: images``, DEAL's original
    protocol) or 'regions' (every other protocol, which does not record it)."""
    return run_config.get("budget_unit", "regions")


def read_run_configs(path: Path) -> dict[str, dict]:
    """The stored config of every run of the store at ``path``, by run id, through a read-only
    connection (the database is not created or changed; SQLite may leave its empty ``-wal``/``-shm``
    side files, as for any reader of a WAL database); {} when there is no store (or no runs table)."""
    path = Path(path)
    if not path.is_file() or not path.stat().st_size:
        return {}
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone() is None:
            return {}
        return _run_configs(db)
    finally:
        db.close()


def _run_configs(db: sqlite3.Connection) -> dict[str, dict]:
    return {r: json.loads(c) for r, c in db.execute("SELECT run_id, config FROM runs ORDER BY run_id")}


class RunStore:
    """Runs, steps, evaluations and resume checkpoints in ``path`` (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    @classmethod
    def open_existing(cls, path: Path) -> "RunStore":
        """Opens a store that must already exist (for reading results); no store is created. Like any opening,
        it adds the tables newer code defines (e.g. ``training_curves`` to a store written before it existed)
        and switches the file to WAL mode.

        Raises:
            ConfigError: ``path`` is missing, a folder, or not a run store.
        """
        path = Path(path)
        remedy = "pass the store.sqlite written by `activeseg run` or `activeseg benchmark`"
        if path.is_dir():
            hint = " (it holds a store.sqlite)" if (path / "store.sqlite").is_file() else ""
            raise ConfigError(f"{path} is a folder{hint}; {remedy}")
        if not path.is_file():
            raise ConfigError(f"{path}: run store not found; {remedy}")
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise ConfigError(f"{path} is not a run store (not an SQLite database); {remedy}")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
        if not {"runs", "steps", "evaluations"} <= tables:
            raise ConfigError(f"{path} is an SQLite database but not a run store (no runs table); {remedy}")
        return cls(path)

    def close(self) -> None:
        self.db.close()

    def _transaction(self):
        return immediate_transaction(self.db)

    def _tx(self, statements: list[tuple[str, tuple]]) -> None:
        with self._transaction() as cur:
            for sql, args in statements:
                cur.execute(sql, args)

    # --- runs -----------------------------------------------------------------------------------

    def claim_run(self, run_id: str, strategy: str, seed: int, config: dict) -> str:
        """Creates or re-opens a run and claims it for this process.

        Returns:
            the run's status before the claim: 'new', 'running' (interrupted) or 'done'.

        Raises:
            RuntimeError: a live process holds the run, or the stored config differs.
        """
        cfg = json.dumps(config, sort_keys=True)
        now = time.time()
        with self._transaction() as cur:
            row = cur.execute("SELECT status, owner, config FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                cur.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?)",
                            (run_id, strategy, seed, cfg, "running", _owner(), now, now))
                status = "new"
            else:
                status, owner, old_cfg = row
                if old_cfg != cfg:
                    raise RuntimeError(f"run {run_id} exists in {self.path} with another configuration; "
                                       "use a new store (--store) or the same configuration")
                if status == "running" and owner and owner != _owner() and _pid_alive(owner):
                    raise RunBusyError(f"run {run_id} is being executed by {owner}")
                if status != "done":
                    cur.execute("UPDATE runs SET status='running', owner=?, updated=? WHERE run_id=?",
                                (_owner(), now, run_id))
        return status

    def finish_run(self, run_id: str) -> None:
        self._tx([("UPDATE runs SET status='done', owner=NULL, updated=? WHERE run_id=?", (time.time(), run_id))])

    def release_run(self, run_id: str) -> None:
        self._tx([("UPDATE runs SET owner=NULL, updated=? WHERE run_id=? AND status='running'",
                   (time.time(), run_id))])

    def datasets(self) -> list[str]:
        """The distinct ``data.dataset`` values of the stored run configs."""
        names = {json.loads(c).get("data", {}).get("dataset", "?") for (c,) in self.db.execute("SELECT config FROM runs")}
        return sorted(str(n) for n in names)

    def run_configs(self) -> dict[str, dict]:
        """The stored config of every run, by run id."""
        return _run_configs(self.db)

    def runs(self) -> list[dict]:
        rows = self.db.execute("SELECT run_id, strategy, seed, status FROM runs ORDER BY run_id").fetchall()
        return [dict(zip(("run_id", "strategy", "seed", "status"), r)) for r in rows]

    # --- steps and checkpoints ------------------------------------------------------------------

    def record_step(self, run_id: str, step: int, labelled: int, selected: list[int], scores: list[float],
                    seeds: dict, seconds_score: float, seconds_train: float, checkpoint: dict) -> None:
        """The step's record and the run's resume checkpoint, atomically."""
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        self._tx([
            ("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?)",
             (run_id, step, labelled, json.dumps(selected), json.dumps(scores), json.dumps(seeds),
              seconds_score, seconds_train, time.time())),
            ("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?)", (run_id, step, buf.getvalue())),
            ("UPDATE runs SET updated=? WHERE run_id=?", (time.time(), run_id)),
        ])

    def save_checkpoint(self, run_id: str, step: int, checkpoint: dict) -> None:
        """A resume checkpoint between step records (e.g. every few hundred iterations of a long training);
        ``step`` is the last recorded step it follows."""
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        self._tx([("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?)", (run_id, step, buf.getvalue())),
                  ("UPDATE runs SET updated=? WHERE run_id=?", (time.time(), run_id))])

    def load_checkpoint(self, run_id: str) -> tuple[int, dict] | None:
        row = self.db.execute("SELECT step, blob FROM checkpoints WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            return None
        return row[0], torch.load(io.BytesIO(row[1]), map_location="cpu", weights_only=False)

    def steps(self, run_id: str) -> list[dict]:
        rows = self.db.execute("SELECT step, labelled, selected, scores, seconds_score, seconds_train FROM steps "
                               "WHERE run_id=? ORDER BY step", (run_id,)).fetchall()
        return [{"step": s, "labelled": n, "selected": json.loads(sel), "scores": json.loads(sc),
                 "seconds_score": ts, "seconds_train": tt} for s, n, sel, sc, ts, tt in rows]

    # --- evaluations ----------------------------------------------------------------------------

    def record_evaluation(self, run_id: str, budget: int, split: str, labelled: int, metrics: dict,
                          class_histogram: list[int] | None, epochs: int | None, seconds: float,
                          extra: dict | None = None, history: list[dict] | None = None) -> None:
        """One evaluation; ``extra`` holds further metrics (e.g. an auxiliary head's), or None;
        ``history`` the per-epoch records of the training behind it (loss, val mIoU, lr), or None.

        ``extra`` and ``history`` go to tables of their own (``evaluation_extras``, ``training_curves``, one
        curve per run and budget) in the same transaction: the evaluations table keeps the columns that
        processes running older code insert into."""
        statements = [("INSERT OR REPLACE INTO evaluations VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (run_id, budget, split, labelled, metrics["miou"], metrics.get("pixel_accuracy"),
                        json.dumps(metrics["iou"]), json.dumps(class_histogram), epochs, seconds, time.time()))]
        if extra is not None:
            statements.append(("INSERT OR REPLACE INTO evaluation_extras VALUES (?,?,?,?)",
                               (run_id, budget, split, json.dumps(extra))))
        if history is not None:
            statements.append(("INSERT OR REPLACE INTO training_curves VALUES (?,?,?)",
                               (run_id, budget, json.dumps(history))))
        self._tx(statements)

    def training_curves(self) -> list[dict]:
        """The stored training histories: run id, strategy, seed, budget and the per-epoch records."""
        rows = self.db.execute("SELECT c.run_id, r.strategy, r.seed, c.budget, c.history FROM training_curves c "
                               "JOIN runs r USING (run_id) ORDER BY c.run_id, c.budget").fetchall()
        return [{"run_id": i, "strategy": s, "seed": seed, "budget": b, "history": json.loads(h)}
                for i, s, seed, b, h in rows]

    def evaluations(self, run_id: str | None = None) -> list[dict]:
        sql = ("SELECT e.run_id, r.strategy, r.seed, e.budget, e.split, e.labelled, e.miou, e.pixel_accuracy, "
               "e.iou, e.class_histogram, e.epochs, e.seconds, x.extra FROM evaluations e JOIN runs r USING (run_id) "
               "LEFT JOIN evaluation_extras x USING (run_id, budget, split)")
        args: tuple = ()
        if run_id is not None:
            sql, args = sql + " WHERE e.run_id=?", (run_id,)
        keys = ("run_id", "strategy", "seed", "budget", "split", "labelled", "miou", "pixel_accuracy", "iou",
                "class_histogram", "epochs", "seconds", "extra")
        out = []
        for row in self.db.execute(sql + " ORDER BY e.run_id, e.budget, e.split", args).fetchall():
            d = dict(zip(keys, row))
            d["iou"], d["class_histogram"] = json.loads(d["iou"]), json.loads(d["class_histogram"] or "null")
            d["extra"] = json.loads(d["extra"]) if d["extra"] else None
            out.append(d)
        return out

    def has_evaluation(self, run_id: str, budget: int, split: str) -> bool:
        return self.db.execute("SELECT 1 FROM evaluations WHERE run_id=? AND budget=? AND split=?",
                               (run_id, budget, split)).fetchone() is not None
