"""Live Label Studio round trip of activeseg's task export and answer import (spec formats.md §3, §7, §8).

Starts a real Label Studio server (the ``label-studio`` PyPI package, installed in the separate
virtual environment ``.venv-ls`` by ``make labelstudio-roundtrip``), creates a project with our
labelling config, serves the task images through a Local Files storage, imports our tasks, submits one
brush annotation per task made from ground truth, exports the project as full JSON and hands the
export back. The activeseg side talks to the server over its REST API with urllib only, so the
activeseg venv needs no Label Studio.

What Label Studio 1.23.2 needs, found by reading its ``server.py`` and settings:
  * user + token, non-interactively: ``label-studio start --username U --password P --user-token T
    --enable-legacy-api-token`` creates the user at start-up with that token (at most 40 characters,
    more than 5). 1.23 turns JWT auth on by a feature flag and then refuses ``Authorization: Token T``
    (HTTP 401) unless the organization allows legacy tokens; ``--enable-legacy-api-token`` (or
    ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true``) sets that when the organization is first created,
    i.e. in a fresh data dir.
  * local files: ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
    ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<files root>``, and a Local Files *import storage* on the
    project whose ``path`` is a folder strictly below the document root (the root itself is refused)
    and contains the file: ``/data/local-files/?d=...`` answers 404 for a file outside every storage.
    The storage is only created, never synced (a sync would add every PNG as a task of its own).
  * the full JSON export (``/api/projects/{id}/export?exportType=JSON``) lists a task's predictions
    by id only (``"predictions": [1]``); the query boxes are compared through ``/api/predictions``.

Two modes:
  * ``--camvid N``: N crop tasks that this script builds itself with ``activeseg.formats`` (format level).
  * ``--project N``: the practitioner's round trip through activeseg's own commands: ``activeseg project
    init`` over a folder of CamVid train images, ``activeseg project query --strategy random --regions N``
    (cold start), Label Studio serving the project folder (``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` = the
    project folder, Local Files storage on ``exports/round_001/crops``) with the exported
    ``labelstudio_config.xml`` and ``labelstudio_tasks.json`` imported as they are, ground-truth brush
    answers, the full JSON export, ``activeseg project import``, then the project's store checked against
    CamVid inside every queried box and ``activeseg project status --json``. Then round 2 on the same server
    and Label Studio project: ``activeseg project query --strategy entropy`` (the model fine-tuned on round 1,
    so the tasks' predictions carry brush pre-annotation layers, ``origin: prediction``, ids ``pre-<value>``),
    a second storage on ``exports/round_002/crops``, each task answered with the results Label Studio's editor
    copies from the prediction when an annotator accepts it (read in the 1.23.2 bundle: all results, the
    read-only query rectangle too, ``origin`` forced to ``prediction``, ids kept) plus the truth painted over
    the whole query box as manual strokes, the export, ``project import`` and the store checked again: the
    manual strokes win over the pre-annotation inside every box (summary key ``round_2``).

Run (the Makefile target runs these after installing .venv-ls):
    .venv/bin/python benchmarks/labelstudio_live.py --camvid 12 --out docs/labelstudio_roundtrip.json
    .venv/bin/python benchmarks/labelstudio_live.py --project 12 --out docs/labelstudio_project_roundtrip.json
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from activeseg import UNLABELLED
from activeseg.data.classes import load_classes
from activeseg.data.folder import read_pair, scan_split
from activeseg.data.roots import resolve_dataset_dir
from activeseg.formats.brush_rle import decode_brush, encode_brush
from activeseg.formats.common import VOID_NAME, Box
from activeseg.formats.crops import CropSpec, crop_for_query, crop_pixels
from activeseg.formats.labelstudio import labelling_config, local_files_url, make_task, parse_export
from activeseg.regions import RegionGrid

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROJECT_OUT = REPO_ROOT / "docs" / "labelstudio_project_roundtrip.json"
DEFAULT_EXECUTABLE = REPO_ROOT / ".venv-ls" / "bin" / "label-studio"
PINNED_VERSION = "1.23.2"
INSTALL_HINT = "run `make labelstudio-roundtrip`, which creates .venv-ls with label-studio==" + PINNED_VERSION
GRID_ROWS, GRID_COLS = 4, 6  # CamVid grid: 90 x 80 px regions of 480 x 360 images
MASK_FROM_NAME = "mask"
IMAGE_TO_NAME = "image"
# Variables the server may need from our environment; everything else (HOST, PORT, USERNAME, DEBUG, ...
# which Label Studio also reads without a prefix) is left out so it cannot change the server.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT")


class LabelStudioError(RuntimeError):
    """The Label Studio server or one of its API calls failed; the message names the remedy."""


# ---- REST client ----------------------------------------------------------------------------------


class Client:
    """A minimal JSON client for the Label Studio REST API (``Authorization: Token ...``)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: object = None) -> bytes:
        """Sends one request and returns the response body.

        Raises:
            LabelStudioError: the server answered with an HTTP error or could not be reached.
        """
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:600].decode(errors="replace")
            raise LabelStudioError(f"{method} {path} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise LabelStudioError(f"{method} {path} failed ({exc}); is the server still running?") from exc

    def json(self, method: str, path: str, body: object = None) -> object:
        """Sends one request and decodes the JSON answer."""
        raw = self.request(method, path, body)
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LabelStudioError(f"{method} {path} did not answer JSON: {raw[:200]!r}") from exc


# ---- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir: Path, files_root: Path) -> dict[str, str]:
    """The server's environment: data dir, local-file serving under ``files_root``, no phoning home."""
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files_root),
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_SENTRY_DSN": "",
        "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


class LabelStudioServer:
    """A Label Studio server on 127.0.0.1 with one superuser and a legacy API token.

    Use as a context manager: entering starts the server and waits until the token works; leaving
    kills its process group and removes a temporary data dir.

    Args:
        files_root: the local-files document root (``/data/local-files/?d=`` paths are relative to it).
        data_dir: Label Studio's data dir (database, media); a fresh temporary one when None. It must
            be fresh: legacy token auth is only switched on when the organization is created.
        executable: the ``label-studio`` script of the separate venv.
        startup_timeout: seconds to wait for the server to answer.
    """

    def __init__(self, files_root: Path, data_dir: Path | None = None,
                 executable: Path = DEFAULT_EXECUTABLE, startup_timeout: float = 300.0) -> None:
        self.files_root = Path(files_root).resolve()
        self.executable = Path(executable)
        self.startup_timeout = startup_timeout
        self._tmp = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="labelstudio-")
        self.data_dir = Path(data_dir if data_dir is not None else self._tmp.name).resolve()
        self.token = secrets.token_hex(20)  # 40 characters: the longest key Label Studio stores
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.start_seconds = float("nan")
        self.version = "unknown"
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def client(self) -> Client:
        """An API client that authenticates with the user's token."""
        return Client(self.base_url, self.token)

    def command(self) -> list[str]:
        """The ``label-studio start`` command line that also creates the user and its token."""
        return [
            str(self.executable), "start", "--no-browser", "--internal-host", "127.0.0.1",
            "--port", str(self.port), "--username", "activeseg@example.com",
            "--password", secrets.token_urlsafe(16), "--user-token", self.token,
            "--enable-legacy-api-token", "--log-level", "WARNING",
        ]

    def start(self) -> None:
        """Starts the server and waits until it answers and accepts the token."""
        if not self.executable.is_file():
            raise LabelStudioError(f"{self.executable} not found; {INSTALL_HINT}")
        if not self.files_root.is_dir():
            raise LabelStudioError(f"files root {self.files_root} is not a folder; create it first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command(), cwd=self.data_dir, env=server_env(self.data_dir, self.files_root),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_until_up()
        self.version = self._check_token()
        self.start_seconds = time.perf_counter() - t0

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def log_size(self) -> int:
        """The server log's size in bytes now (an offset for :meth:`prediction_warnings`)."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def prediction_warnings(self, since: int = 0) -> dict[str, int]:
        """The prediction validation errors the server logged after byte ``since`` (Label Studio 1.23 checks
        imported predictions against the labelling config and, unless the feature flag
        ``fflag_feat_utc_210_prediction_validation_15082025`` is on, only logs them): message -> count, the
        value a message quotes ("got ...") replaced by ``<n>``."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return {}
        out: dict[str, int] = {}
        for m in re.finditer(r"^- Task \d+, prediction \d+: (.*)$", text, flags=re.MULTILINE):
            key = re.sub(r"got -?\d+(\.\d+)?(e[-+]?\d+)?", "got <n>", m.group(1).strip())
            out[key] = out.get(key, 0) + 1
        return out

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        health = Client(self.base_url, timeout=5)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabelStudioError(
                    f"label-studio exited with code {self.proc.returncode} while starting; its log ends:\n"
                    f"{self.log_tail()}\nRemedy: fix the error above, or reinstall: {INSTALL_HINT}")
            try:
                if json.loads(health.request("GET", "/health")).get("status") == "UP":
                    return
            except (LabelStudioError, json.JSONDecodeError, AttributeError):
                pass
            time.sleep(0.5)
        raise LabelStudioError(f"label-studio did not answer on {self.base_url} within {self.startup_timeout:.0f}"
                               f" s; its log ends:\n{self.log_tail()}\nRemedy: raise startup_timeout on a busy "
                               "machine")

    def _check_token(self) -> str:
        """Checks that the token authenticates; returns the server's release."""
        client = self.client()
        try:
            client.json("GET", "/api/current-user/whoami")
        except LabelStudioError as exc:
            raise LabelStudioError(
                f"the API token was refused ({exc}); legacy token auth is only enabled when the organization "
                "is created, so start with a fresh --data-dir") from exc
        version = client.json("GET", "/api/version")
        return str(version.get("release", "unknown")) if isinstance(version, dict) else "unknown"

    def stop(self) -> None:
        """Kills the server's process group (TERM, then KILL) and removes a temporary data dir."""
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "LabelStudioServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ---- project set-up -------------------------------------------------------------------------------


def label_names(config_xml: str) -> list[str]:
    """The label names of the ``BrushLabels name="mask"`` tag, in order (class index order, then void)."""
    root = ET.fromstring(config_xml)
    for tag in root.iter("BrushLabels"):
        if tag.get("name") == MASK_FROM_NAME:
            return [label.get("value") for label in tag.iter("Label")]
    raise LabelStudioError(f'the labelling config has no <BrushLabels name="{MASK_FROM_NAME}">; write it with '
                           "activeseg.formats.labelstudio.labelling_config()")


def local_file_path(url: str) -> str:
    """The path (relative to the files root) of a ``/data/local-files/?d=<path>`` URL."""
    parsed = urllib.parse.urlparse(url)
    found = urllib.parse.parse_qs(parsed.query).get("d")
    if parsed.path.rstrip("/") != "/data/local-files" or not found:
        raise LabelStudioError(f"task image {url!r} is not a /data/local-files/?d=<path> URL; "
                               "build it with activeseg.formats.labelstudio.local_files_url()")
    return found[0]


def storage_folder(tasks: Sequence[dict], files_root: Path) -> Path:
    """The deepest folder holding every task image; Label Studio wants one strictly below the root."""
    dirs = [os.path.dirname(os.path.normpath(files_root / local_file_path(t["data"]["image"]))) for t in tasks]
    folder = Path(os.path.commonpath(dirs)) if dirs else files_root
    if folder == files_root or files_root not in folder.parents:
        raise LabelStudioError(
            f"the task images lie directly in (or outside) the files root {files_root}; Label Studio only "
            "serves local files from a storage folder below its document root: put them in a subfolder "
            "(e.g. crops/) and point the URLs there")
    return folder


def create_project(client: Client, title: str, config_xml: str) -> int:
    """Creates a project with the labelling config; returns its id."""
    project = client.json("POST", "/api/projects", {"title": title, "label_config": config_xml})
    return int(project["id"])


def add_local_storage(client: Client, project: int, folder: Path) -> int:
    """Adds a Local Files import storage (not synced) so the server serves the task images."""
    body = {"project": project, "path": str(folder), "title": "activeseg task images", "use_blob_urls": False}
    return int(client.json("POST", "/api/storages/localfiles", body)["id"])


def import_tasks(client: Client, project: int, tasks: list[dict]) -> None:
    """Imports the task list (with its read-only query predictions)."""
    answer = client.json("POST", f"/api/projects/{project}/import", tasks)
    if answer.get("task_count") != len(tasks):
        raise LabelStudioError(f"imported {answer.get('task_count')} of {len(tasks)} tasks: {answer}")


def list_tasks(client: Client, project: int, expected: int, page_size: int = 100) -> list[dict]:
    """Every task of the project (id and data), page by page."""
    tasks: list[dict] = []
    page = 1
    while True:
        answer = client.json("GET", f"/api/tasks/?project={project}&page={page}&page_size={page_size}")
        tasks += answer["tasks"]
        if len(tasks) >= answer["total"] or not answer["tasks"]:
            break
        page += 1
    if len(tasks) != expected:
        raise LabelStudioError(f"project {project} lists {len(tasks)} tasks, {expected} were imported")
    return tasks


def served_image_size(client: Client, task: dict, files_root: Path) -> tuple[int, int]:
    """Fetches the task image through the server; checks the bytes are the file's; returns (width, height)."""
    url = task["data"]["image"]
    body = client.request("GET", url)
    if body != (files_root / local_file_path(url)).read_bytes():
        raise LabelStudioError(f"task {task['id']}: {url} did not serve the file under {files_root}")
    with Image.open(io.BytesIO(body)) as im:
        return im.size


def brush_results(labels: np.ndarray, names: Sequence[str]) -> list[dict]:
    """One ``brushlabels`` result per label value present (255 = unlabelled is left unpainted).

    Shape:
        labels: ``[H, W]`` uint8 class map (value ``i`` is label ``names[i]``).
    """
    height, width = labels.shape
    results = []
    for value in np.unique(labels).tolist():
        if value == UNLABELLED:
            continue
        if value >= len(names):
            raise LabelStudioError(f"truth holds label value {value}, but the config has only {len(names)} labels")
        results.append({
            "id": f"truth-{value}", "from_name": MASK_FROM_NAME, "to_name": IMAGE_TO_NAME, "type": "brushlabels",
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {"format": "rle", "rle": encode_brush(labels == value), "brushlabels": [names[value]]},
        })
    return results


def _data_key(data: dict) -> str:
    return json.dumps(data, sort_keys=True)


def intact_predictions(client: Client, project: int, stored: list[dict], imported: list[dict]) -> int:
    """How many tasks kept their imported prediction results (the query box) unchanged.

    The full JSON export lists predictions by id only, so they are read from ``/api/predictions``.
    """
    answer = client.json("GET", f"/api/predictions/?project={project}")
    rows = answer.get("results", []) if isinstance(answer, dict) else answer
    by_task: dict[int, list] = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row["result"])
    sent = {_data_key(t["data"]): [p["result"] for p in t.get("predictions", [])] for t in imported}
    return sum(by_task.get(t["id"], []) == sent.get(_data_key(t["data"])) for t in stored)


def export_project(client: Client, project: int, out: Path) -> list[dict]:
    """Downloads the full JSON export (every task) to ``out``; returns it loaded."""
    raw = client.request("GET", f"/api/projects/{project}/export?exportType=JSON&download_all_tasks=true")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    export = json.loads(raw)
    if not isinstance(export, list):
        raise LabelStudioError(f"the export of project {project} is not a task list; see {out}")
    return export


# ---- the round trip -------------------------------------------------------------------------------

#: ``(stored task, served image size (width, height)) -> (result list, extra annotation fields)``: one
#: annotator's answer to a task, submitted as it is.
Answerer = Callable[[dict, tuple[int, int]], tuple[list[dict], dict]]


def truth_answerer(truth: Callable[[dict], np.ndarray], names: Sequence[str]) -> Answerer:
    """Answers a task with one brush result per label value of ``truth(task data)`` (the task image's class map)."""
    def answer(task: dict, size: tuple[int, int]) -> tuple[list[dict], dict]:
        labels = np.asarray(truth(task["data"]))
        if labels.shape != (size[1], size[0]):
            raise LabelStudioError(f"task {task['id']}: truth is {labels.shape[1]}x{labels.shape[0]}, the "
                                   f"served image {size[0]}x{size[1]}; return the class map of the task image")
        return brush_results(labels.astype(np.uint8), names), {}
    return answer


def run_round(client: Client, project: int, tasks: list[dict], files_root: Path, answer: Answerer,
              out_export: Path) -> dict:
    """One round on a live project: a Local Files storage (unsynced) on the folder of the tasks' images, the
    tasks imported, each answered through ``POST /api/tasks/{id}/annotations/``, the full JSON export.

    The project may already hold tasks of earlier rounds; only this round's (matched by ``data``) are
    answered, and the export holds every task of the project.

    Returns:
        counts (tasks, images served, annotations submitted, tasks / annotations / predictions exported,
        predictions stored unchanged), ``stored`` (this round's tasks as the server lists them) and
        ``timings_s`` (import, annotate, export; unrounded).
    """
    files_root = Path(files_root).resolve()
    folder = storage_folder(tasks, files_root)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    before = int(client.json("GET", f"/api/projects/{project}")["task_number"])
    add_local_storage(client, project, folder)
    import_tasks(client, project, tasks)
    keys = {_data_key(t_["data"]) for t_ in tasks}
    stored = [t_ for t_ in list_tasks(client, project, before + len(tasks)) if _data_key(t_["data"]) in keys]
    if len(stored) != len(tasks):
        raise LabelStudioError(f"project {project} lists {len(stored)} of the {len(tasks)} tasks just imported")
    timings["import"] = time.perf_counter() - t
    predictions_intact = intact_predictions(client, project, stored, tasks)
    t = time.perf_counter()
    submitted = 0
    for task in stored:
        results, extra = answer(task, served_image_size(client, task, files_root))
        client.json("POST", f"/api/tasks/{task['id']}/annotations/",
                    {"result": results, "was_cancelled": False, **extra})
        submitted += 1
    timings["annotate"] = time.perf_counter() - t
    t = time.perf_counter()
    export = export_project(client, project, Path(out_export))
    timings["export"] = time.perf_counter() - t
    return {
        "tasks": len(tasks),
        "images_served": len(stored),
        "annotations_submitted": submitted,
        "tasks_exported": len(export),
        "annotations_exported": sum(len(t_.get("annotations") or []) for t_ in export),
        "predictions_exported": sum(len(t_.get("predictions") or []) for t_ in export),
        "predictions_intact": predictions_intact,
        "stored": stored,
        "timings_s": timings,
    }


def roundtrip(
    tasks_json: Path,
    config_xml: Path,
    files_root: Path,
    truth: Callable[[dict], np.ndarray],
    out_export: Path,
    *,
    data_dir: Path | None = None,
    executable: Path = DEFAULT_EXECUTABLE,
    startup_timeout: float = 300.0,
) -> dict:
    """Imports tasks into a live Label Studio, answers each from ground truth, exports the project.

    Args:
        tasks_json: JSON list of tasks whose ``data.image`` is a ``/data/local-files/?d=<path>`` URL,
            ``<path>`` relative to ``files_root`` and inside a subfolder of it.
        config_xml: the labelling config (``labelling_config()``); its ``mask`` labels map label
            values to names (value ``i`` -> ``i``-th label).
        files_root: the local-files document root.
        truth: ``task data -> class map`` of the task image (uint8 ``[H, W]``, the image's size; 255 =
            leave unpainted); one brush result is submitted per value present.
        out_export: where the full JSON export is written.
        data_dir: Label Studio's data dir (a fresh temporary one when None).
        executable: the ``label-studio`` script of the separate venv.
        startup_timeout: seconds to wait for the server.

    Returns:
        ``label_studio_version``, counts (tasks, images served, annotations submitted and exported,
        predictions exported and stored unchanged) and ``timings_s`` (server start, import, annotate, export).
    """
    tasks = json.loads(Path(tasks_json).read_text())
    config = Path(config_xml).read_text()
    names = label_names(config)
    storage_folder(tasks, Path(files_root).resolve())  # fails before the server starts
    with LabelStudioServer(files_root, data_dir, executable, startup_timeout) as server:
        client = server.client()
        project = create_project(client, "activeseg live round trip", config)
        stats = run_round(client, project, tasks, files_root, truth_answerer(truth, names), out_export)
        version, start = server.version, server.start_seconds
    stats.pop("stored")
    stats["timings_s"] = {k: round(v, 3) for k, v in {"server_start": start, **stats["timings_s"]}.items()}
    return {"label_studio_version": version, **stats}


# ---- CamVid crop tasks ----------------------------------------------------------------------------


def pick_regions(stems: Sequence[str], n: int, seed: int, regions_per_image: int) -> list[tuple[str, int]]:
    """``n`` distinct (image stem, grid region id) pairs, drawn with a seeded generator."""
    total = len(stems) * regions_per_image
    if not 0 < n <= total:
        raise ValueError(f"--camvid {n}: choose 1..{total} tasks")
    picks = np.random.default_rng(seed).choice(total, size=n, replace=False)
    return [(stems[int(p) // regions_per_image], int(p) % regions_per_image) for p in picks]


def build_camvid_tasks(dataset_dir: Path, n: int, seed: int, files_root: Path) -> tuple[list[dict], dict, dict]:
    """``n`` crop tasks of random 4 x 6 grid regions of CamVid train images, crops saved as PNG.

    Returns:
        the task list, ``query_id -> full label map`` and ``query_id -> CropSpec``.
    """
    classes = load_classes(dataset_dir / "classes.json")
    pairs = {stem: (img, lab) for stem, img, lab in scan_split(dataset_dir / "train")}
    (files_root / "crops").mkdir(parents=True, exist_ok=True)
    tasks, labels, crops = [], {}, {}
    for stem, rid in pick_regions(sorted(pairs), n, seed, GRID_ROWS * GRID_COLS):
        image, label = read_pair(*pairs[stem], classes)
        height, width = label.shape
        y0, y1, x0, x1 = RegionGrid.from_counts(height, width, rows=GRID_ROWS, cols=GRID_COLS).box(rid)
        box = Box(x0, y0, x1, y1)
        crop = crop_for_query(box, width, height)
        qid = f"r000-{stem}-{x0}-{y0}-{x1}-{y1}"
        rel = f"crops/{qid}.png"
        Image.fromarray(np.ascontiguousarray(crop_pixels(np.asarray(image), crop))).save(files_root / rel)
        tasks.append(make_task(image_url=local_files_url(rel), query_id=qid, box=box, image_size=(width, height),
                               al_round=0, strategy="random", acq_score=0.0, model_version="labelstudio-live",
                               crop=crop))
        labels[qid], crops[qid] = label, crop
    return tasks, labels, crops


def crop_truth(labels: dict[str, np.ndarray]) -> Callable[[dict], np.ndarray]:
    """Truth of a crop task: its image's label map cut to the task's ``data.crop_px``."""
    def truth(data: dict) -> np.ndarray:
        return labels[data["query_id"]][Box(**data["crop_px"]).slices]
    return truth


def check_export(export: Path | list, class_names: Sequence[str], labels: dict, crops: dict[str, CropSpec],
                 box_only: bool = False) -> dict:
    """Decodes the export (its file, or the loaded list) with activeseg's parser and compares every answer
    with the truth.

    ``box_only``: the answers paint the truth inside the query box only, so the crop outside the box must
    come back unpainted (255). Tasks of the export that are not in ``crops`` are decoded but not compared.

    Returns:
        counts: tasks answered, pixels checked and mismatching inside the query boxes and in the whole
        crops, the checked box pixels per label name, and ``per_task`` ``[query_id, box mismatches]``.
    """
    names = [*class_names, VOID_NAME]
    histogram = np.zeros(256, dtype=np.int64)
    sizes = {qid: (c.box.width, c.box.height) for qid, c in crops.items()}
    answers = parse_export(export, class_names, expected_sizes=sizes)
    found = {a.query_id: a for a in answers}
    out = {"answered": 0, "box_pixels_checked": 0, "box_mismatches": 0, "crop_pixels_checked": 0,
           "crop_mismatches": 0, "per_task": []}
    for qid, crop in crops.items():
        answer = found.get(qid)
        if answer is None or answer.labels is None:
            out["per_task"].append([qid, None])
            continue
        want = crop_pixels(labels[qid], crop)
        target = crop.target_in_crop.slices
        if box_only:
            inside = want[target].copy()
            want = np.full(want.shape, UNLABELLED, dtype=want.dtype)
            want[target] = inside
        bad = int((answer.labels[target] != want[target]).sum())
        out["answered"] += 1
        out["box_pixels_checked"] += crop.target.area
        out["box_mismatches"] += bad
        out["crop_pixels_checked"] += want.size
        out["crop_mismatches"] += int((answer.labels != want).sum())
        out["per_task"].append([qid, bad])
        histogram += np.bincount(want[target].ravel(), minlength=256)
    out["box_pixels_by_label"] = {(names[v] if v < len(names) else str(v)): int(histogram[v])
                                  for v in np.flatnonzero(histogram).tolist()}
    return out


def camvid_roundtrip(n: int, *, data_root: Path | None = None, seed: int = 0, work_dir: Path | None = None,
                     data_dir: Path | None = None, executable: Path = DEFAULT_EXECUTABLE) -> dict:
    """The CamVid crop-task round trip: build ``n`` tasks, run :func:`roundtrip`, check the export.

    Args:
        n: number of crop tasks.
        data_root: data root holding ``camvid/`` (default: ``$ACTIVESEG_DATA``, then ../shared/data).
        seed: seed of the region draw.
        work_dir: where tasks, crops and the export are written (a temporary folder when None).
        data_dir: Label Studio's data dir (a fresh temporary one when None).
        executable: the ``label-studio`` script of the separate venv.

    Returns:
        the summary; ``mismatches`` is 0 and ``unanswered`` is 0 when the round trip is exact.
    """
    dataset_dir = resolve_dataset_dir("camvid", data_root)
    classes = load_classes(dataset_dir / "classes.json")
    with tempfile.TemporaryDirectory(prefix="ls-roundtrip-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        files_root = work / "files"
        t = time.perf_counter()
        tasks, labels, crops = build_camvid_tasks(dataset_dir, n, seed, files_root)
        (work / "tasks.json").write_text(json.dumps(tasks, indent=1))
        (work / "config.xml").write_text(labelling_config(classes.names, classes.colors))
        build_s = time.perf_counter() - t
        stats = roundtrip(work / "tasks.json", work / "config.xml", files_root, crop_truth(labels),
                          work / "export.json", data_dir=data_dir, executable=executable)
        t = time.perf_counter()
        check = check_export(work / "export.json", classes.names, labels, crops)
        check_s = time.perf_counter() - t
    stats["timings_s"] |= {"build_tasks": round(build_s, 3), "parse_and_check": round(check_s, 3)}
    unanswered = [qid for qid, bad in check["per_task"] if bad is None]
    return {
        "pinned_version": PINNED_VERSION, **stats, "seed": seed, "dataset": str(dataset_dir),
        "task_kind": "crop tasks of 90x80 grid regions (4 x 6 grid, 480 x 360 images), crop_margin 0.25",
        "auth": "label-studio start --username --password --user-token --enable-legacy-api-token; "
                "Authorization: Token <user token>",
        "local_files": "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true, LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<files "
                       "root>, unsynced Local Files import storage on <files root>/crops",
        "answered": check["answered"], "unanswered": unanswered,
        "box_pixels_checked": check["box_pixels_checked"], "crop_pixels_checked": check["crop_pixels_checked"],
        "crop_mismatches": check["crop_mismatches"], "mismatches": check["box_mismatches"],
        "box_pixels_by_label": check["box_pixels_by_label"],
        "per_task_box_mismatches": dict((qid, bad) for qid, bad in check["per_task"]),
    }


# ---- round 2: pre-annotations accepted in Label Studio, corrected by manual strokes ---------------------

#: What Label Studio 1.23.2's editor does when an annotator opens a task that has a prediction and no
#: annotation, read in its bundle (web/dist/apps/labelstudio/*.js; LSF AppStore, AnnotationStore, Result):
#: every prediction result is loaded with ``origin`` forced to ``"prediction"``; ``addAnnotationFromPrediction``
#: copies ALL of them (the read-only query rectangle too) into the new annotation, keeping each id (only a
#: ``#...`` suffix would be rewritten) and recording ``parent_prediction``; on submit each region is serialized
#: as original_width/height, image_rotation, value, id, from_name, to_name, type, origin (+ ``readonly: true``
#: where the result was read-only, + ``score`` where it had a numeric one; other keys are dropped); a brush
#: region is re-encoded from its pixels (Region2RLE; with the default-on multi-image-segmentation flag every
#: RGBA channel = the alpha, which is what activeseg writes: 255 painted, 0 not); a region keeps ``origin:
#: prediction`` until it is drawn on (then ``prediction-changed``); new strokes are ``origin: manual``.
#: The server stores annotation and prediction results as sent (nothing in its Python reads ``origin``).
LSF_ACCEPT_NOTE = (
    "LSF 1.23.2 addAnnotationFromPrediction: every prediction result copied (query rectangle kept, "
    "readonly: true), origin forced to 'prediction', ids kept, parent_prediction set; submit re-serializes "
    "{original_width, original_height, image_rotation, value, id, from_name, to_name, type, origin[, readonly]"
    "[, score]} and re-encodes brush RLE from pixels (RGBA = alpha: equal to activeseg's 255/0 layers); "
    "drawing on a region makes it 'prediction-changed'; new strokes are 'manual'; the server stores results as sent")
_LSF_REGION_FIELDS = ("original_width", "original_height", "image_rotation", "value")


def accepted_prediction(client: Client, task: dict, model_version: str | None) -> tuple[list[dict], int]:
    """The result list Label Studio's editor puts in a new annotation of ``task`` from its prediction (see
    :data:`LSF_ACCEPT_NOTE`), and the prediction's id (the annotation's ``parent_prediction``).

    Reads the task as the editor does (``GET /api/tasks/{id}``) and takes the prediction whose model version is
    the project's, else the first.
    """
    full = client.json("GET", f"/api/tasks/{task['id']}")
    predictions = full.get("predictions") or []
    if not predictions:
        raise LabelStudioError(f"task {task['id']} has no prediction to accept; GET /api/tasks/{task['id']} "
                               "lists none")
    chosen = next((p for p in predictions if (p.get("model_version") or "").strip() == (model_version or "")),
                  predictions[0])
    results = []
    for r in chosen["result"]:
        copy = {k: r[k] for k in _LSF_REGION_FIELDS if k in r}
        copy |= {"id": str(r["id"]).split("#")[0], "from_name": r["from_name"], "to_name": r["to_name"],
                 "type": r["type"], "origin": "prediction"}
        if r.get("readonly"):
            copy["readonly"] = True
        if isinstance(r.get("score"), (int, float)):
            copy["score"] = r["score"]
        results.append(copy)
    return results, int(chosen["id"])


def target_in_crop(data: dict) -> Box:
    """The query box of a crop task in crop pixels (from ``data.crop_px`` and ``data.region_px``)."""
    return CropSpec(Box(**data["crop_px"]), Box(**data["region_px"])).target_in_crop


def correcting_answerer(client: Client, project: int, truth: Callable[[dict], np.ndarray],
                        names: Sequence[str]) -> Answerer:
    """An annotator who accepts the task's prediction (:func:`accepted_prediction`), then paints the truth
    over the whole query box with new strokes (``origin: manual``, one layer per label value); the crop
    around the box stays unpainted."""
    model_version = client.json("GET", f"/api/projects/{project}").get("model_version")

    def answer(task: dict, size: tuple[int, int]) -> tuple[list[dict], dict]:
        accepted, prediction = accepted_prediction(client, task, model_version)
        labels = np.asarray(truth(task["data"]))
        if labels.shape != (size[1], size[0]):
            raise LabelStudioError(f"task {task['id']}: truth is {labels.shape[1]}x{labels.shape[0]}, the "
                                   f"served image {size[0]}x{size[1]}")
        box = target_in_crop(task["data"]).slices
        painted = np.full(labels.shape, UNLABELLED, dtype=np.uint8)
        painted[box] = labels[box]
        manual = [r | {"id": f"manual-{k}", "origin": "manual"}
                  for k, r in enumerate(brush_results(painted, names))]
        return accepted + manual, {"parent_prediction": prediction}
    return answer


def count_pre_layers(tasks: Sequence[dict]) -> int:
    """Brush pre-annotation layers in the tasks' predictions."""
    return sum(r.get("type") == "brushlabels" for t in tasks for p in t.get("predictions", [])
               for r in p.get("result", []))


def pre_annotation_truth(tasks: Sequence[dict], truth: Callable[[dict], np.ndarray], names: Sequence[str]) -> dict:
    """Pixels the tasks' pre-annotation layers paint inside the query boxes, and how many of them disagree with
    the truth: the pixels where the annotator's manual strokes must win for the import to be exact."""
    index = {name: i for i, name in enumerate(names)}
    out = {"pixels": 0, "disagreeing_with_truth": 0, "box_pixels": 0}
    for task in tasks:
        labels = np.asarray(truth(task["data"]))
        pre = np.full(labels.shape, UNLABELLED, dtype=np.uint8)
        for p in task.get("predictions", []):
            for r in p.get("result", []):
                if r.get("type") == "brushlabels":
                    mask = decode_brush(r["value"]["rle"], r["original_height"], r["original_width"])
                    pre[mask] = index[r["value"]["brushlabels"][0]]
        box = target_in_crop(task["data"]).slices
        painted = pre[box] != UNLABELLED
        out["box_pixels"] += int(painted.size)
        out["pixels"] += int(painted.sum())
        out["disagreeing_with_truth"] += int((painted & (pre[box] != labels[box])).sum())
    return out


def _latest(annotations: Sequence[dict]) -> dict | None:
    done = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    return max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), str(a.get("id")))) \
        if done else None


def audit_pre_annotations(export: Sequence[dict], tasks: Sequence[dict]) -> dict:
    """What came back in the full JSON export for the prediction-derived results of ``tasks``' annotations.

    Per exported annotation of these tasks: results counted by ``origin``; each pre-annotation layer sent in
    the task's prediction looked up by id (found, ``origin`` still ``prediction``, RLE and label identical);
    the query rectangle (kept, ``readonly``, its ``origin``); and whether the export lists predictions by id.
    """
    sent = {t["data"]["query_id"]: [r for p in t.get("predictions", []) for r in p.get("result", [])] for t in tasks}
    out = {"annotations": 0, "results_by_origin": {}, "pre_layers_sent": 0, "pre_layers_exported": 0,
           "pre_layers_origin_prediction": 0, "pre_layers_rle_identical": 0, "pre_layers_intact": 0,
           "pre_layer_ids": [], "query_rect_kept": 0, "query_rect_readonly": 0, "query_rect_origins": {},
           "export_predictions_listed_as": None, "parent_prediction_set": 0}
    for task in export:
        qid = (task.get("data") or {}).get("query_id")
        if qid not in sent:
            continue
        preds = task.get("predictions") or []
        if preds:
            out["export_predictions_listed_as"] = "ids" if all(isinstance(p, int) for p in preds) else "objects"
        ann = _latest(task.get("annotations") or [])
        if ann is None:
            continue
        out["annotations"] += 1
        out["parent_prediction_set"] += ann.get("parent_prediction") is not None
        results = ann.get("result") or []
        by_id = {r.get("id"): r for r in results}
        for r in results:
            key = str(r.get("origin", "<none>"))
            out["results_by_origin"][key] = out["results_by_origin"].get(key, 0) + 1
        for p in sent[qid]:
            got = by_id.get(p.get("id"))
            if p.get("type") == "rectanglelabels":
                if got is not None:
                    out["query_rect_kept"] += 1
                    out["query_rect_readonly"] += got.get("readonly") is True
                    key = str(got.get("origin", "<none>"))
                    out["query_rect_origins"][key] = out["query_rect_origins"].get(key, 0) + 1
                continue
            if p.get("type") != "brushlabels":
                continue
            out["pre_layers_sent"] += 1
            if got is None:
                continue
            out["pre_layers_exported"] += 1
            if got["id"] not in out["pre_layer_ids"]:
                out["pre_layer_ids"].append(got["id"])
            origin_ok = got.get("origin") == "prediction"
            rle_ok = (got.get("value") or {}).get("rle") == p["value"]["rle"]
            same = (got.get("value") == p["value"] and got.get("original_width") == p["original_width"]
                    and got.get("original_height") == p["original_height"])
            out["pre_layers_origin_prediction"] += origin_ok
            out["pre_layers_rle_identical"] += rle_ok
            out["pre_layers_intact"] += origin_ok and same
    out["pre_layer_ids"] = sorted(out["pre_layer_ids"], key=lambda s: (len(s), s))
    return out


def precedence_controls(export: list[dict], tasks: Sequence[dict], class_names: Sequence[str], labels: dict,
                        crops: dict[str, CropSpec]) -> dict:
    """Box mismatches of round 2's export decoded again after edits that must not matter, and one that must.

    ``manual_first``: each annotation's results reordered, the manual strokes before the accepted prediction
    (the precedence comes from ``origin``, not the order). ``origin_dropped``: no result carries ``origin``
    (pre-annotations are then known by their ``pre-`` ids). ``pre_edited``: the pre-annotation layers marked
    ``prediction-changed`` (the annotator painted into them): the manual strokes still win over them.
    ``pre_as_strokes``: the pre-annotation layers marked ``manual`` (as if the annotator had drawn them): they
    now conflict with the real strokes wherever the model is wrong, so mismatches must appear: the check is
    sensitive.
    """
    qids = {t["data"]["query_id"] for t in tasks}

    def edited(change: Callable[[list[dict]], list[dict]]) -> list[dict]:
        out = []
        for task in export:
            if (task.get("data") or {}).get("query_id") in qids:
                task = {**task, "annotations": [{**a, "result": change([dict(r) for r in a.get("result") or []])}
                                                for a in task.get("annotations") or []]}
            out.append(task)
        return out

    def manual_first(results: list[dict]) -> list[dict]:
        return ([r for r in results if r.get("origin") != "prediction"]
                + [r for r in results if r.get("origin") == "prediction"])

    def origin_dropped(results: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "origin"} for r in results]

    def pre_edited(results: list[dict]) -> list[dict]:
        return [r | {"origin": "prediction-changed"} if str(r.get("id", "")).startswith("pre-") else r
                for r in results]

    def pre_as_strokes(results: list[dict]) -> list[dict]:
        return [r | {"origin": "manual"} if str(r.get("id", "")).startswith("pre-") else r for r in results]

    parser_log = logging.getLogger("activeseg.formats.labelstudio")
    level = parser_log.level
    parser_log.setLevel(logging.ERROR)  # pre_as_strokes warns about its (intended) conflicting pixels
    try:
        return {name: check_export(edited(change), class_names, labels, crops, box_only=True)["box_mismatches"]
                for name, change in (("manual_first", manual_first), ("origin_dropped", origin_dropped),
                                     ("pre_edited", pre_edited), ("pre_as_strokes", pre_as_strokes))}
    finally:
        parser_log.setLevel(level)


# ---- a labelling project's rounds, through activeseg's own commands -----------------------------------


#: Settings of the round-trip project: a small pretrained encoder, frozen, on the CPU (fast and offline; the
#: weights ship in an installed package) and no on-disk feature cache (nothing is written outside the work dir).
PROJECT_SETTINGS = ("model: {encoder: lite0, pretrained: true, freeze_encoder: true, decoder_width: 128}\n"
                    "device: cpu\nseed: 0\ncache_dir: null\n")


class ProjectCommandError(RuntimeError):
    """An ``activeseg project`` command failed; the message holds its output."""


def activeseg_command() -> list[str]:
    """The ``activeseg`` console script of this Python's venv (what users run), else the CLI module."""
    script = Path(sys.executable).with_name("activeseg")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from activeseg.cli import main; sys.exit(main())"]


def run_cli(args: Sequence[object], record: list[dict], work: Path, timeout: float = 1800.0) -> tuple[str, float]:
    """Runs ``activeseg ARGS`` in a subprocess; appends the command (work dir shown as ``<work>``) and its
    seconds to ``record``; returns its stdout and seconds.

    Raises:
        ProjectCommandError: the command exited non-zero or ran past ``timeout``.
    """
    args = [str(a) for a in args]
    shown = "activeseg " + shlex.join(args).replace(str(work), "<work>")
    t = time.perf_counter()
    try:
        proc = subprocess.run([*activeseg_command(), *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ProjectCommandError(f"`{shown}` ran past {timeout:.0f} s") from exc
    seconds = time.perf_counter() - t
    record.append({"command": shown, "seconds": round(seconds, 3)})
    if proc.returncode != 0:
        raise ProjectCommandError(f"`{shown}` exited with code {proc.returncode}; its output ends:\n"
                                  f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout, seconds


def link_images(dataset_dir: Path, count: int, seed: int, folder: Path) -> dict[str, Path]:
    """Links (or copies) ``count`` CamVid train images, drawn with ``seed``, into ``folder``: the user's
    images folder. Returns ``image stem -> label PNG``."""
    pairs = scan_split(dataset_dir / "train")
    if not 0 < count <= len(pairs):
        raise ValueError(f"--images {count}: choose 1..{len(pairs)} CamVid train images")
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in sorted(np.random.default_rng(seed).choice(len(pairs), size=count, replace=False).tolist()):
        stem, image, label = pairs[i]
        try:
            (folder / image.name).symlink_to(image.resolve())
        except OSError:
            shutil.copyfile(image, folder / image.name)
        labels[stem] = label
    return labels


def manifest_queries(path: Path) -> dict[str, dict]:
    """The current row of every query of a ``queries.jsonl`` manifest (its last row)."""
    out: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["query_id"]] = row
    return out


def check_project_labels(project_dir: Path, queries: dict[str, dict], truth: dict[str, np.ndarray],
                         names: Sequence[str]) -> dict:
    """Compares the project's stored labels with the truth inside every queried box.

    Reads ``Project.open(dir).store``: per query its status, label mismatches and bitmap pixels that are not
    255 inside its box; per image the pixels labelled (or marked) outside every queried box.
    """
    from activeseg.project.workspace import Project  # imports torch: only the project mode needs it

    project = Project.open(project_dir, sync=False)
    try:
        current = project.store.queries()
        out = {"box_pixels_checked": 0, "mismatches": 0, "bitmap_not_marked": 0, "labels_outside_boxes": 0,
               "per_query": {}}
        histogram = np.zeros(256, dtype=np.int64)
        boxes: dict[str, list[Box]] = {}
        for qid in queries:
            q = current.get(qid, queries[qid])
            box = Box(q["x0"], q["y0"], q["x1"], q["y1"])
            boxes.setdefault(q["image_id"], []).append(box)
            maps = project.store.label_maps(q["image_id"])
            want = truth[q["image_id"]]
            if maps is None or maps[0].shape != want.shape:
                out["per_query"][qid] = [q["status"], None, None]
                continue
            labels, bitmap = maps
            bad = int((labels[box.slices] != want[box.slices]).sum())
            unmarked = int((bitmap[box.slices] != 255).sum())
            out["box_pixels_checked"] += box.area
            out["mismatches"] += bad
            out["bitmap_not_marked"] += unmarked
            out["per_query"][qid] = [q["status"], bad, unmarked]
            histogram += np.bincount(want[box.slices].ravel(), minlength=256)
        for image_id, image_boxes in boxes.items():
            maps = project.store.label_maps(image_id)
            if maps is None:
                continue
            inside = np.zeros(maps[0].shape, dtype=bool)
            for box in image_boxes:
                inside[box.slices] = True
            out["labels_outside_boxes"] += int((((maps[0] != UNLABELLED) | (maps[1] != 0)) & ~inside).sum())
        out["box_pixels_by_label"] = {(names[v] if v < len(names) else str(v)): int(histogram[v])
                                      for v in np.flatnonzero(histogram).tolist()}
        imports = project.store.imports()
        report = imports[-1]["report"] if imports else []
        # {"policy": ..., "queries": [...]} since the import records its policy; a bare list before
        out["import_report"] = report.get("queries", []) if isinstance(report, dict) else report
    finally:
        project.close()
    return out


def read_truth(queries: dict[str, dict], truth: dict[str, np.ndarray], label_files: dict[str, Path],
               classes) -> dict[str, np.ndarray]:
    """``query_id -> full label map`` of the queries' images (read once per image into ``truth``)."""
    from activeseg.project.workspace import read_label_png

    out = {}
    for qid, q in queries.items():
        if q["image_id"] not in truth:
            truth[q["image_id"]] = read_label_png(label_files[q["image_id"]], (q["image_width"], q["image_height"]),
                                                  classes)
        out[qid] = truth[q["image_id"]]
    return out


def task_crops(tasks: Sequence[dict]) -> dict[str, CropSpec]:
    """``query_id -> CropSpec`` of crop tasks (``data.crop_px`` and ``data.region_px``)."""
    return {t["data"]["query_id"]: CropSpec(Box(**t["data"]["crop_px"]), Box(**t["data"]["region_px"])) for t in tasks}


def import_counts(report: Sequence[dict], queries: Sequence[str] | None = None) -> dict:
    """Labelled / rejected / unchanged queries and the least coverage of an import report."""
    rows = [r for r in report if queries is None or r["query_id"] in queries]
    coverages = [r["coverage"] for r in rows if "coverage" in r]
    return {"labelled": sum(r["status"] == "labelled" for r in rows),
            "rejected": sum(r["status"] == "rejected" for r in rows),
            "unchanged": sum(r["status"].startswith("already") for r in rows),
            "min_coverage": min(coverages) if coverages else None}


def project_roundtrip(n: int, *, images: int = 12, data_root: Path | None = None, seed: int = 0,
                      work_dir: Path | None = None, data_dir: Path | None = None,
                      executable: Path = DEFAULT_EXECUTABLE, second_round: bool = True) -> dict:
    """Two rounds of a labelling project through one live Label Studio, with activeseg's own commands.

    Round 1 (cold start): ``activeseg project init`` over ``images`` CamVid train images, ``project query
    --strategy random --regions n`` (no pre-annotations: the model has learned nothing), the round's Label
    Studio files through the server (document root = the project folder, a Local Files storage on
    ``exports/round_001/crops``), ground-truth brushes over the whole crop, the full JSON export, ``project
    import``, the store checked against CamVid inside every queried box, ``project status --json``.

    Round 2 (``second_round``): ``project query --strategy entropy --regions n`` (the model fine-tuned on round
    1, so every task's prediction carries brush pre-annotation layers), the tasks imported into the same Label
    Studio project (a second storage on ``exports/round_002/crops``), each answered as an annotator who accepts
    the prediction (the results Label Studio's editor copies from it, ``origin: prediction``) and paints the
    truth over the whole query box (``origin: manual``), the full JSON export (both rounds' tasks), ``project
    import`` (round 1's queries are kept), then the store checked inside every box of both rounds: the manual
    strokes must win wherever the pre-annotation disagrees with the truth.

    Args:
        n: regions to query per round.
        images: CamVid train images in the project's images folder (drawn with ``seed``).
        data_root: data root holding ``camvid/`` (default: ``$ACTIVESEG_DATA``, then ../shared/data).
        seed: seed of the image draw.
        work_dir: where the images folder, settings, project and exports are written (temporary when None).
        data_dir: Label Studio's data dir (a fresh temporary one when None).
        executable: the ``label-studio`` script of the separate venv.
        second_round: run round 2 as well (the summary's ``round_2``).

    Returns:
        the summary (round 1 at the top level, round 2 under ``round_2``); ``exact`` is True when every query of
        every round came back labelled with the truth in its box.
    """
    dataset_dir = resolve_dataset_dir("camvid", data_root)
    classes_json = dataset_dir / "classes.json"
    classes = load_classes(classes_json)
    names = [*classes.names, VOID_NAME]
    commands: list[dict] = []
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    round_2: dict | None = None
    with tempfile.TemporaryDirectory(prefix="ls-project-") as tmp:
        work = (Path(work_dir) if work_dir is not None else Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        project_dir = work / "project"
        t = time.perf_counter()
        label_files = link_images(dataset_dir, images, seed, work / "images")
        (work / "settings.yaml").write_text(PROJECT_SETTINGS)
        timings["build_images"] = time.perf_counter() - t
        _, timings["project_init"] = run_cli(
            ["project", "init", project_dir, "--images", work / "images", "--classes", classes_json,
             "--config", work / "settings.yaml"], commands, work)
        _, timings["project_query"] = run_cli(
            ["project", "query", project_dir, "--strategy", "random", "--regions", n, "--quiet"], commands, work)
        round_dir = project_dir / "exports" / "round_001"
        tasks_json, config_xml = round_dir / "labelstudio_tasks.json", round_dir / "labelstudio_config.xml"
        tasks = json.loads(tasks_json.read_text())
        config = config_xml.read_text()
        queries = manifest_queries(project_dir / "queries.jsonl")
        truth: dict[str, np.ndarray] = {}
        full_labels = read_truth(queries, truth, label_files, classes)
        crops = task_crops(tasks)
        storage = storage_folder(tasks, project_dir)
        with LabelStudioServer(project_dir, data_dir, executable) as server:
            client = server.client()
            timings["server_start"] = server.start_seconds
            ls_project = create_project(client, "activeseg project round trip", config)
            log_at = server.log_size()
            stats = run_round(client, ls_project, tasks, project_dir,
                              truth_answerer(crop_truth(full_labels), label_names(config)), work / "export.json")
            stats.pop("stored")
            stats["label_studio_version"] = server.version
            stats["prediction_warnings"] = server.prediction_warnings(log_at)
            timings |= stats.pop("timings_s")
            t = time.perf_counter()
            export_check = check_export(work / "export.json", classes.names, full_labels, crops)
            timings["parse_and_check_export"] = time.perf_counter() - t
            _, timings["project_import"] = run_cli(["project", "import", project_dir, work / "export.json"],
                                                   commands, work)
            t = time.perf_counter()
            check = check_project_labels(project_dir, queries, truth, names)
            timings["check_store"] = time.perf_counter() - t
            out, timings["project_status"] = run_cli(["project", "status", project_dir, "--json"], commands, work)
            status = json.loads(out)
            timings["total"] = time.perf_counter() - t_all
            if second_round:
                round_2 = second_project_round(n, server, ls_project, config, project_dir, work, truth, label_files,
                                               classes, names)
    timings = {k: timings[k] for k in ("build_images", "project_init", "project_query", "server_start", "import",
                                       "annotate", "export", "parse_and_check_export", "project_import",
                                       "check_store", "project_status", "total")}
    labelled = int(status["queries"].get("labelled", 0))
    report = check["import_report"]
    unanswered = [qid for qid, bad in export_check["per_task"] if bad is None]
    summary = {
        "mode": "project", "pinned_version": PINNED_VERSION, "label_studio_version": stats["label_studio_version"],
        "dataset": str(dataset_dir), "seed": seed, "images": images, "regions_requested": n,
        "project_settings": PROJECT_SETTINGS.strip().replace("\n", "; "),
        "commands": commands,
        "local_files": {"document_root": "<project folder>",
                        "storage": str(storage.relative_to(project_dir)), "synced": False,
                        "image_url_example": tasks[0]["data"]["image"] if tasks else None},
        "tasks": stats["tasks"], "images_served": stats["images_served"],
        "annotations_submitted": stats["annotations_submitted"], "tasks_exported": stats["tasks_exported"],
        "annotations_exported": stats["annotations_exported"], "predictions_exported": stats["predictions_exported"],
        "predictions_intact": stats["predictions_intact"],
        "label_studio_prediction_warnings": stats["prediction_warnings"],
        "pre_annotation_layers": count_pre_layers(tasks),
        "export_check": {"answered": export_check["answered"], "unanswered": unanswered,
                         "box_mismatches": export_check["box_mismatches"],
                         "crop_mismatches": export_check["crop_mismatches"],
                         "crop_pixels_checked": export_check["crop_pixels_checked"]},
        "import": import_counts(report),
        "status": {"queries": status["queries"], "rounds": status["rounds"],
                   "pixels_per_class": status["pixels_per_class"]},
        "queries": len(queries), "labelled_queries": labelled,
        "box_pixels_checked": check["box_pixels_checked"], "mismatches": check["mismatches"],
        "bitmap_not_marked": check["bitmap_not_marked"], "labels_outside_boxes": check["labels_outside_boxes"],
        "box_pixels_by_label": check["box_pixels_by_label"],
        "per_query": {qid: {"status": st, "box_mismatches": bad, "bitmap_not_marked": um}
                      for qid, (st, bad, um) in check["per_query"].items()},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    summary["round_1_exact"] = bool(
        len(queries) == stats["tasks"] == n and labelled == n and summary["import"]["labelled"] == n
        and check["mismatches"] == 0 and check["bitmap_not_marked"] == 0 and check["labels_outside_boxes"] == 0
        and all(bad == 0 for _, bad, _ in check["per_query"].values())
        and export_check["box_mismatches"] == 0 and export_check["crop_mismatches"] == 0 and not unanswered
        and stats["predictions_intact"] == stats["tasks"])
    if round_2 is not None:
        summary["round_2"] = round_2
    summary["total_s"] = round(time.perf_counter() - t_all, 3)
    summary["exact"] = summary["round_1_exact"] and (round_2 is None or round_2["exact"])
    return summary


def second_project_round(n: int, server: LabelStudioServer, ls_project: int, config: str, project_dir: Path, work: Path,
                         truth: dict[str, np.ndarray], label_files: dict[str, Path], classes,
                         names: Sequence[str]) -> dict:
    """Round 2 of :func:`project_roundtrip` on the running server; returns the summary's ``round_2``."""
    client = server.client()
    commands: list[dict] = []
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    _, timings["project_query"] = run_cli(
        ["project", "query", project_dir, "--strategy", "entropy", "--regions", n, "--quiet"], commands, work)
    round_dir = project_dir / "exports" / "round_002"
    tasks = json.loads((round_dir / "labelstudio_tasks.json").read_text())
    config_2 = (round_dir / "labelstudio_config.xml").read_text()
    if config_2 != config:  # the project's labels cannot change between rounds; update the LS project if they do
        client.json("PATCH", f"/api/projects/{ls_project}", {"label_config": config_2})
    pre_layers = count_pre_layers(tasks)
    with_pre = sum(any(r.get("type") == "brushlabels" for p in t.get("predictions", []) for r in p.get("result", []))
                   for t in tasks)
    if pre_layers == 0:
        raise ProjectCommandError("round 2's Label Studio tasks carry no brush pre-annotation layers although the "
                                  "model was fine-tuned on round 1; check export.pre_annotations and "
                                  "src/activeseg/project/exports.py")
    manifest = manifest_queries(project_dir / "queries.jsonl")
    queries = {qid: q for qid, q in manifest.items() if q["round"] == 2}
    full_labels = read_truth(queries, truth, label_files, classes)
    crops = task_crops(tasks)
    storage = storage_folder(tasks, project_dir)
    t = time.perf_counter()
    pre_truth = pre_annotation_truth(tasks, crop_truth(full_labels), label_names(config_2))
    timings["measure_pre_annotations"] = time.perf_counter() - t
    log_at = server.log_size()
    stats = run_round(client, ls_project, tasks, project_dir,
                      correcting_answerer(client, ls_project, crop_truth(full_labels), label_names(config_2)),
                      work / "export2.json")
    stats.pop("stored")
    timings |= stats.pop("timings_s")
    warnings = server.prediction_warnings(log_at)
    t = time.perf_counter()
    export = json.loads((work / "export2.json").read_text())
    audit = audit_pre_annotations(export, tasks)
    export_check = check_export(work / "export2.json", classes.names, full_labels, crops, box_only=True)
    controls = precedence_controls(export, tasks, classes.names, full_labels, crops)
    timings["parse_and_check_export"] = time.perf_counter() - t
    _, timings["project_import"] = run_cli(["project", "import", project_dir, work / "export2.json"], commands, work)
    t = time.perf_counter()
    check = check_project_labels(project_dir, manifest, truth, names)  # both rounds' boxes
    timings["check_store"] = time.perf_counter() - t
    out, timings["project_status"] = run_cli(["project", "status", project_dir, "--json"], commands, work)
    status = json.loads(out)
    timings["total"] = time.perf_counter() - t_all
    per_query = {qid: {"status": st, "box_mismatches": bad, "bitmap_not_marked": um}
                 for qid, (st, bad, um) in check["per_query"].items() if qid in queries}
    earlier = [v for qid, v in check["per_query"].items() if qid not in queries]
    unanswered = [qid for qid, bad in export_check["per_task"] if bad is None]
    report = check["import_report"]
    summary = {
        "strategy": "entropy", "regions_requested": n,
        "model_version": tasks[0]["predictions"][0]["model_version"] if tasks else None,
        "commands": commands,
        "label_studio_project": "the round-1 project (same server), config "
                                + ("unchanged" if config_2 == config else "updated from round_002"),
        "local_files": {"storage": str(storage.relative_to(project_dir)), "synced": False,
                        "image_url_example": tasks[0]["data"]["image"] if tasks else None},
        "tasks": stats["tasks"], "tasks_with_pre_annotations": with_pre, "pre_annotation_layers": pre_layers,
        "pre_annotation_box_pixels": pre_truth["box_pixels"], "pre_annotation_pixels": pre_truth["pixels"],
        "pre_annotation_pixels_disagreeing_with_truth": pre_truth["disagreeing_with_truth"],
        "images_served": stats["images_served"], "annotations_submitted": stats["annotations_submitted"],
        "answer": "accepted prediction (as Label Studio's editor copies it) + truth over the whole query box as "
                  "manual brush strokes; crop margin unpainted",
        "label_studio_accept": LSF_ACCEPT_NOTE,
        "tasks_exported": stats["tasks_exported"], "annotations_exported": stats["annotations_exported"],
        "predictions_exported": stats["predictions_exported"], "predictions_intact": stats["predictions_intact"],
        "label_studio_prediction_warnings": warnings,
        "export_audit": audit,
        "precedence_controls": controls,
        "export_check": {"answered": export_check["answered"], "unanswered": unanswered,
                         "box_mismatches": export_check["box_mismatches"],
                         "crop_mismatches": export_check["crop_mismatches"],
                         "crop_pixels_checked": export_check["crop_pixels_checked"]},
        "import": import_counts(report, list(queries)),
        "import_round_1_tasks": import_counts(report, [q for q in manifest if q not in queries]),
        "status": {"queries": status["queries"], "rounds": status["rounds"],
                   "pixels_per_class": status["pixels_per_class"]},
        "queries": len(queries), "labelled_queries": sum(q["status"] == "labelled" for q in per_query.values()),
        "box_pixels_checked": sum(crop.target.area for crop in crops.values()),
        "mismatches": sum(q["box_mismatches"] or 0 for q in per_query.values()),
        "bitmap_not_marked": sum(q["bitmap_not_marked"] or 0 for q in per_query.values()),
        "round_1_mismatches_after": sum((bad or 0) for _, bad, _ in earlier),
        "labels_outside_boxes": check["labels_outside_boxes"],
        "per_query": per_query,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    summary["exact"] = bool(
        len(queries) == stats["tasks"] == n and summary["labelled_queries"] == n and summary["import"]["labelled"] == n
        and pre_layers > 0 and summary["mismatches"] == 0 and summary["bitmap_not_marked"] == 0
        and all(q["box_mismatches"] == 0 for q in per_query.values())
        and summary["round_1_mismatches_after"] == 0 and check["labels_outside_boxes"] == 0
        and export_check["box_mismatches"] == 0 and export_check["crop_mismatches"] == 0 and not unanswered
        and stats["predictions_intact"] == stats["tasks"]
        and audit["pre_layers_intact"] == audit["pre_layers_sent"] == pre_layers
        and controls["manual_first"] == controls["origin_dropped"] == controls["pre_edited"] == 0
        and (controls["pre_as_strokes"] > 0 or pre_truth["disagreeing_with_truth"] == 0)
        and int(status["queries"].get("labelled", 0)) == len(manifest))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``--camvid N`` or ``--project N``; prints the JSON summary, exits 1 unless the round trip is exact."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--camvid", type=int, metavar="N", help="number of CamVid crop tasks built by this script")
    mode.add_argument("--project", type=int, metavar="N", help="regions an `activeseg project` queries per round "
                      "(round 1: random, cold start; round 2: entropy, with pre-annotations) and imports back "
                      "through Label Studio")
    ap.add_argument("--images", type=int, default=12, help="--project: CamVid train images in the project "
                    "(default 12)")
    ap.add_argument("--data-root", type=Path, default=None, help="data root holding camvid/ (default: "
                    "$ACTIVESEG_DATA, then ../shared/data)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, default=None, help="keep tasks, crops (the project) and the export here")
    ap.add_argument("--data-dir", type=Path, default=None, help="Label Studio's data dir; must be fresh "
                    "(default: a temporary one)")
    ap.add_argument("--label-studio", type=Path, default=DEFAULT_EXECUTABLE, help="the label-studio script")
    ap.add_argument("--one-round", action="store_true", help="--project: stop after round 1 (no round_2)")
    ap.add_argument("--out", type=Path, default=None, help="also write the summary JSON here (--project: default "
                    "docs/labelstudio_project_roundtrip.json)")
    args = ap.parse_args(argv)
    if args.project is not None:
        summary = project_roundtrip(args.project, images=args.images, data_root=args.data_root, seed=args.seed,
                                    work_dir=args.work_dir, data_dir=args.data_dir, executable=args.label_studio,
                                    second_round=not args.one_round)
        out = args.out if args.out is not None else DEFAULT_PROJECT_OUT
        ok = summary["exact"]
        failure = ("project round trip NOT exact: see mismatches, bitmap_not_marked, labels_outside_boxes, "
                   "labelled_queries, import, export_check, predictions_intact above (round_2: also "
                   "round_1_mismatches_after, export_audit.pre_layers_intact)")
    else:
        summary = camvid_roundtrip(args.camvid, data_root=args.data_root, seed=args.seed, work_dir=args.work_dir,
                                   data_dir=args.data_dir, executable=args.label_studio)
        out = args.out
        ok = (summary["mismatches"] == 0 and summary["crop_mismatches"] == 0 and not summary["unanswered"]
              and summary["predictions_intact"] == summary["tasks"])
        failure = "round trip NOT exact: see mismatches, crop_mismatches, unanswered, predictions_intact above"
    text = json.dumps(summary, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    if not ok:
        print(failure, file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
