"""The class quantity Q_c of B = 480 regions chosen from D_V by a MiSiCAL-style class policy (one-shot),
random, pred_quantity and entropy (docs/results.md section 9): a diagnostic of what the policies learned,
measured with the pool's ground truth, never used to choose an option.

    python benchmarks/misical_quantity_check.py pedestrian bicyclist sky   # policies under /tmp/mis_diag
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from activeseg.config import load_yaml
from activeseg.methods.misical.benchmark import Selections
from activeseg.methods.misical.experiment import MisicalExperimentConfig, prepare_misical
from activeseg.methods.misical.quantity import set_quantity

cfg = replace(load_yaml(Path("configs/misical_camvid.yaml"), MisicalExperimentConfig),
              store=Path("/tmp/mis_diag/store.sqlite"))
data = prepare_misical(cfg, progress=False)
sel = Selections(data, progress=False)
q = data.pool_quantities()
for cls in sys.argv[1:] or ["pedestrian", "bicyclist", "sky"]:
    c = data.class_names.index(cls)
    t = time.time()
    policy, _ = sel.misical(20, cls)(480)
    seconds = time.time() - t
    out = {"misical": float(set_quantity(q, policy)[c])}
    for name, select in (("random", sel.random(20)), ("pred_quantity", sel.pred_quantity(20, c)),
                         ("entropy", sel.entropy(20))):
        out[name] = float(set_quantity(q, select(480)[0])[c])
    print(cls, {k: round(v, 1) for k, v in out.items()}, f"({seconds:.0f} s with the policy's training)", flush=True)
