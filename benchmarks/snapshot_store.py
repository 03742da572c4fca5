"""Copy a run store to a place that can be committed, so a long grid can span sessions.

A benchmark grid takes longer than one working session, and `runs/` is not versioned. This script
writes a consistent copy of a live store (SQLite's online backup: safe while a benchmark writes to it)
without the resume checkpoints of finished runs, which nothing reads again, then compacts it. Runs
still in progress keep their checkpoint, so a later session resumes them at their last step; with
``--finished-only`` they are left out whole (a later session runs them again from the start), for stores
whose checkpoints are large (a RIPU run's model and optimiser: about 20 MB):

    python benchmarks/snapshot_store.py runs/camvid_lowstart/store.sqlite docs/camvid_lowstart/store.sqlite
    # later, on a fresh checkout: put the copy back, and the grid continues where it stopped
    python benchmarks/snapshot_store.py docs/camvid_lowstart/store.sqlite runs/camvid_lowstart/store.sqlite --restore
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path


def snapshot(src: Path, dst: Path, finished_only: bool = False) -> dict:
    """Writes the copy atomically (``dst`` is replaced only once complete); returns counts.
    ``finished_only``: runs not done are left out with every row of theirs."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as source, sqlite3.connect(tmp) as copy:
        source.backup(copy)
    copy = sqlite3.connect(tmp, isolation_level=None)
    try:
        copy.execute("PRAGMA journal_mode=DELETE")
        dropped = copy.execute("DELETE FROM checkpoints WHERE run_id IN "
                               "(SELECT run_id FROM runs WHERE status = 'done')").rowcount
        left_out = 0
        if finished_only:
            # every table with a run_id column holds rows of one run; ``runs`` goes last (it names the runs)
            tables = [name for (name,) in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                      if any(col[1] == "run_id" for col in copy.execute(f"PRAGMA table_info({name})"))]
            left_out = copy.execute("SELECT COUNT(*) FROM runs WHERE status != 'done'").fetchone()[0]
            for table in sorted(tables, key=lambda t: t == "runs"):
                copy.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM runs WHERE status != 'done')")
        # a copy is never live: no process owns its runs
        copy.execute("UPDATE runs SET owner = NULL")
        copy.execute("VACUUM")
        counts = {status: n for status, n in copy.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")}
    finally:
        copy.close()
    tmp.replace(dst)
    return {"runs": counts, "checkpoints_dropped": dropped, "runs_left_out": left_out, "bytes": dst.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the store to copy")
    parser.add_argument("dst", type=Path, help="where the copy goes")
    parser.add_argument("--restore", action="store_true",
                        help="copy a committed snapshot back to a run folder (refuses to replace a store)")
    parser.add_argument("--finished-only", action="store_true",
                        help="leave out the runs in progress (they start over after a restore)")
    args = parser.parse_args(argv)
    if not args.src.is_file():
        print(f"error: {args.src} not found; pass an existing store.sqlite", file=sys.stderr)
        return 2
    if args.restore and args.dst.exists():
        print(f"error: {args.dst} exists; a store is never overwritten by a snapshot (move it away first)",
              file=sys.stderr)
        return 2
    info = snapshot(args.src, args.dst, args.finished_only)
    print(f"{args.dst}: {info['bytes'] / 1e6:.1f} MB, runs {info['runs']}, "
          f"{info['checkpoints_dropped']} finished runs' checkpoints left out"
          + (f", {info['runs_left_out']} runs in progress left out" if args.finished_only else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
