"""A simulated labelling project on CamVid against `activeseg run`: the same selections and the same models.

The project holds the RALIS split's images (start d_t[0::10], fully labelled, and the pool d_v), settings
configs/project_camvid.yaml; ground truth answers every round as a Label Studio export that `project
import` reads. The run is `activeseg run --config configs/camvid_lowstart.yaml` with the same strategy,
seed and budgets, in a store of its own. Written: the per-step selections of both, the validation
mIoU of both trainings at every budget, and whether the start models are bit-identical (both are trained
here, in one process: a start model cached by an earlier process may differ in the last bits, e.g. when
it ran with another number of threads).

    python benchmarks/project_parity.py --strategy entropy --seed 20 --budgets 48,96 --out docs/project_parity.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from activeseg.config import load_yaml
from activeseg.data.roots import resolve_dataset_dir
from activeseg.experiment import ExperimentConfig, plan_images, prepare, run_one
from activeseg.project.session import load_session
from activeseg.project.simulate import simulate
from activeseg.project.workspace import Project
from activeseg.store import RunStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="entropy")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--budgets", default="48,96")
    ap.add_argument("--work", type=Path, default=Path("runs/project_parity"))
    ap.add_argument("--out", type=Path, default=Path("docs/project_parity.json"))
    args = ap.parse_args()
    budgets = tuple(int(b) for b in args.budgets.split(","))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    cfg = load_yaml(Path("configs/camvid_lowstart.yaml"), ExperimentConfig)
    al = dataclasses.replace(cfg.al, strategy=args.strategy, seed=args.seed, budgets=budgets)
    cache = args.work / "cache"  # both sides compute features and train their start model here, in this process
    cfg = dataclasses.replace(cfg, al=al, store=args.work / "run" / "store.sqlite", strategies=(args.strategy,),
                              seeds=(args.seed,), bounds=False, cache_dir=cache / "features")
    t = time.perf_counter()
    exp = prepare(cfg, progress=False)
    run_id = run_one(exp, al, progress=False)
    seconds_run = time.perf_counter() - t
    store = RunStore(cfg.store)
    run_steps = [s["selected"] for s in store.steps(run_id)]
    run_val = {e["budget"]: e["miou"] for e in store.evaluations(run_id) if e["split"] == "val"}

    ddir = resolve_dataset_dir("camvid")
    plan = plan_images(cfg, ddir)
    images, labels = args.work / "images", args.work / "start_labels"
    images.mkdir()
    labels.mkdir()
    for stem in plan.start + plan.pool:
        (images / f"{stem}.jpg").symlink_to((ddir / "train" / "images" / f"{stem}.jpg").resolve())
    for stem in plan.start:
        shutil.copy(ddir / "train" / "labels" / f"{stem}.png", labels / f"{stem}.png")
    settings = args.work / "project.yaml"
    text = Path("configs/project_camvid.yaml").read_text().replace("seed: 20", f"seed: {args.seed}")
    text += f"cache_dir: {(cache / 'features').resolve()}\n"
    settings.write_text(text)
    t = time.perf_counter()
    project = Project.init(args.work / "project", images, ddir / "classes.json", labels, ddir / "val", settings)
    session = load_session(project, progress=False)
    records = simulate(session, ddir / "train" / "labels", budgets, args.strategy, None, "labelstudio", progress=False)
    seconds_project = time.perf_counter() - t
    R = project.grid.regions_per_image
    index = {r["image_id"]: r["idx"] for r in project.pool_images()}
    queries = list(project.store.queries().values())
    project_steps = [[index[q["image_id"]] * R + q["region_id"] for q in queries if q["round"] == s]
                     for s in range(1, len(run_steps) + 1)]
    start_equal = all(torch.equal(a, b) for a, b in zip(exp.start_model.state_dict().values(),
                                                         session.start_model.state_dict().values()))
    out = {
        "command": f"python benchmarks/project_parity.py --strategy {args.strategy} --seed {args.seed} "
                   f"--budgets {args.budgets} --out {args.out}",
        "strategy": args.strategy, "seed": args.seed, "budgets": list(budgets),
        "steps": len(run_steps),
        "selections_equal": run_steps == project_steps,
        "steps_differing": [i + 1 for i, (a, b) in enumerate(zip(run_steps, project_steps)) if a != b],
        "start_models_equal": start_equal,
        "val_miou_run": {str(b): run_val[b] for b in budgets},
        "val_miou_project": {str(r["labelled_regions"]): r["val"]["miou"] for r in records},
        "queries_labelled": sum(q["status"] == "labelled" for q in queries),
        "seconds_run": round(seconds_run, 1), "seconds_project": round(seconds_project, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
