"""RIPU-grid (spec ripu.md section 7, protocol B): RIPU's score per whole grid region, known answers on
tiny tensors, and the strategy through the shared selection rule and the region loop."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from activeseg.al.loop import ALConfig
from activeseg.al.state import LabelledState
from activeseg.al.strategies import SelectionContext
from activeseg.commands import load_experiment
from activeseg.config import from_dict, to_dict
from activeseg.data.folder import load_split
from activeseg.errors import ConfigError
from activeseg.experiment import prepare, run_one
from activeseg.methods import build_policy, lookup
from activeseg.methods.ripu import RipuGridConfig, RipuGridPolicy, cell_scores
from activeseg.methods.ripu.scores import pixel_entropy, ripu_score
from activeseg.models import ModelConfig, build_model
from activeseg.regions import RegionGrid
from activeseg.store import RunStore
from activeseg.train.sources import ImageSource


def _brute_cell(logits, grid, content=None, norm=None):
    """Loop reference of P_r * U_r over each box's image pixels. [N, C, H, W] -> [N, R] float64."""
    n, c = logits.shape[:2]
    log_norm = math.log(norm or c)
    h = pixel_entropy(logits.softmax(1), norm).double()  # [N, H, W]
    pred = logits.argmax(1)
    valid = torch.ones(n, *logits.shape[2:], dtype=torch.bool) if content is None else content
    out = torch.zeros(n, grid.regions_per_image, dtype=torch.float64)
    for i in range(n):
        for r in range(grid.regions_per_image):
            y0, y1, x0, x1 = grid.box(r)
            keep = valid[i, y0:y1, x0:x1]
            if not keep.any():
                continue
            q = torch.bincount(pred[i, y0:y1, x0:x1][keep], minlength=c).double() / keep.sum()
            q = q[q > 0]
            out[i, r] = (-(q * q.log()).sum() / log_norm) * h[i, y0:y1, x0:x1][keep].mean()
    return out


def _brute_mean(pixel_map, grid, content=None):
    """Mean of a map over each box's image pixels. [N, H, W] -> [N, R] float64."""
    valid = torch.ones(pixel_map.shape, dtype=torch.bool) if content is None else content
    out = torch.zeros(pixel_map.shape[0], grid.regions_per_image, dtype=torch.float64)
    for i in range(pixel_map.shape[0]):
        for r in range(grid.regions_per_image):
            y0, y1, x0, x1 = grid.box(r)
            keep = valid[i, y0:y1, x0:x1]
            if keep.any():
                out[i, r] = pixel_map[i, y0:y1, x0:x1][keep].double().mean()
    return out


def _two_cells(eps=1e-4):
    """C = 4, two 2 x 2 regions: region 0 all predicted class 2, region 1 half class 0, half class 1, with
    near-uniform softmax (logit bump ``eps``)."""
    logits = torch.zeros(1, 4, 2, 4)
    logits[0, 2, :, :2] = torch.tensor([[3.0, 1.0], [0.5, 2.0]])  # region 0: one label, uncertain to varying degrees
    logits[0, 0, 0, 2:] = eps  # region 1, top row: class 0
    logits[0, 1, 1, 2:] = eps  # region 1, bottom row: class 1
    return logits, RegionGrid(2, 4, 2, 2)


def test_pure_region_scores_zero_and_a_two_class_region_its_impurity():
    logits, grid = _two_cells()
    got = cell_scores(logits, grid)
    assert got.dtype == torch.float64 and got.shape == (1, 2)
    assert got[0, 0] == 0.0  # one predicted class: P = 0 whatever U
    assert got[0, 1] == pytest.approx(math.log(2) / math.log(4), abs=1e-6)  # P = ln2 / ln4, U = 1
    # normalised by ln 8: P = ln2 / ln8 = 1/3, U = ln4 / ln8 = 2/3
    assert cell_scores(logits, grid, norm_classes=8)[0, 1] == pytest.approx(2 / 9, abs=1e-6)
    assert torch.allclose(got, _brute_cell(logits, grid))


@pytest.mark.parametrize("grid", [RegionGrid(6, 8, 3, 4), RegionGrid(6, 8, 4, 3)], ids=["even", "clipped"])
def test_both_scores_equal_loops_over_the_boxes(grid):
    logits = 2 * torch.randn(2, 5, 6, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(cell_scores(logits, grid), _brute_cell(logits, grid))
    assert torch.allclose(cell_scores(logits, grid, norm_classes=19), _brute_cell(logits, grid, norm=19))
    for norm in (None, 19):
        a = ripu_score(logits, "RA", k=1, norm_classes=norm)["score"]  # [N, H, W]
        got = cell_scores(logits, grid, "mean_A", norm_classes=norm)
        assert torch.allclose(got, _brute_mean(a, grid))
        assert ((got >= 0) & (got <= 1)).all()


def test_padding_does_not_count():
    logits, grid = _two_cells()
    logits[0, 1, :, 1] = 5.0  # region 0's right column predicts class 1 ...
    content = torch.ones(1, 2, 4, dtype=torch.bool)
    content[0, :, 1] = False  # ... and is padding: the region's image pixels are all class 2
    assert cell_scores(logits, grid)[0, 0] > 0.1  # P = ln2 / ln4 times its U
    assert cell_scores(logits, grid, content=content)[0, 0] == 0.0
    a = ripu_score(logits, "RA", k=1)["score"]
    assert cell_scores(logits, grid, "mean_A", content=content)[0, 0] == pytest.approx(float(a[0, :, 0].mean()))
    content[0, :, 2:] = False  # region 1 is all padding: 0 for both scores
    for kind in ("cell", "mean_A"):
        assert cell_scores(logits, grid, kind, content=content)[0, 1] == 0.0
    noisy = torch.randn(3, 5, 6, 8, generator=torch.Generator().manual_seed(1))
    pad = torch.rand(3, 6, 8, generator=torch.Generator().manual_seed(2)) > 0.3
    grid = RegionGrid(6, 8, 4, 3)
    assert torch.allclose(cell_scores(noisy, grid, content=pad), _brute_cell(noisy, grid, pad))
    a = ripu_score(noisy, "RA", k=1)["score"]
    assert torch.allclose(cell_scores(noisy, grid, "mean_A", content=pad), _brute_mean(a, grid, pad))


def test_input_and_option_errors_name_the_remedy():
    logits, grid = _two_cells()
    with pytest.raises(ValueError, match="kind must be 'cell' or 'mean_A'"):
        cell_scores(logits, grid, "max")
    with pytest.raises(ValueError, match=r"logits must have shape \[N, C, 2, 4\]"):
        cell_scores(logits[..., :3], grid)
    with pytest.raises(ValueError, match="norm_classes must be >= "):
        cell_scores(logits, grid, norm_classes=3)  # below C = 4
    with pytest.raises(ConfigError, match="al.ripu_grid.score is 'max'; use 'cell' or 'mean_A'"):
        RipuGridConfig(score="max")
    with pytest.raises(ConfigError, match="al.ripu_grid.norm_classes"):
        RipuGridConfig(norm_classes=1)


def test_options_are_an_added_section_of_al():
    assert "ripu_grid" not in to_dict(ALConfig())  # stored configs and cache keys of other runs unchanged
    cfg = from_dict(ALConfig, {"strategy": "ripu_grid", "ripu_grid": {"score": "mean_A", "norm_classes": 19}})
    assert cfg.ripu_grid == RipuGridConfig("mean_A", 19)
    assert to_dict(cfg)["ripu_grid"] == {"score": "mean_A", "norm_classes": 19}
    assert lookup("ripu_grid").options == "ripu_grid" and not lookup("ripu_grid").ranks_images
    policy = build_policy("ripu_grid", cfg)
    assert isinstance(policy, RipuGridPolicy) and policy.cfg.score == "mean_A"


GRID = RegionGrid.from_counts(48, 64, 4, 6)  # 24 regions, as CamVid's grid


@pytest.fixture(scope="module")
def setup(synthetic_dir):
    torch.manual_seed(0)
    split = load_split(synthetic_dir, "train", (48, 64), progress=False)
    model = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=16), 5).eval()
    return model, ImageSource(split.images, split.labels)


def _ctx(model, pool, state, k, selection="pools", content=None):
    return SelectionContext(model, pool, state, torch.device("cpu"), np.random.default_rng(0),
                            torch.Generator().manual_seed(0), k=k, n=3, selection=selection, batch_size=5,
                            content=content)


@pytest.mark.parametrize("score", ["cell", "mean_A"])
def test_policy_scores_regions_and_picks_through_the_shared_rule(setup, score):
    model, pool = setup
    with torch.no_grad():
        logits = model(pool.images)
    content = torch.ones(len(pool), 48, 64, dtype=torch.bool)
    content[:, :, 60:] = False
    expected = cell_scores(logits, GRID, score, content=content)  # [12, 24]
    policy = RipuGridPolicy(RipuGridConfig(score=score))
    state = LabelledState(len(pool), GRID)
    state.label(torch.arange(0, 30), 1)
    images = torch.tensor([0, 3, 5, 7, 8, 10, 11])  # two batches of ctx.batch_size = 5
    got = policy.region_scores(_ctx(model, pool, state, 4, content=content), images)
    assert torch.allclose(got, expected[images])
    picked, scores = policy.select(_ctx(model, pool, state, 5, "global_topk", content))
    flat = expected.reshape(-1).clone()
    flat[:30] = -1.0  # labelled: never picked
    assert picked.tolist() == flat.topk(5).indices.tolist()
    assert torch.allclose(scores, flat[picked])
    picked, scores = policy.select(_ctx(model, pool, state, 4, "pools", content))  # one pick per pool
    assert len(set(picked.tolist())) == 4 and (picked >= 30).all()
    assert torch.allclose(scores, expected.reshape(-1)[picked])
    with pytest.raises(NotImplementedError, match="not whole images"):
        policy.image_scores(_ctx(model, pool, state, 4), images)


def test_run_through_the_loop_labels_k_new_regions_per_step_and_truncates_the_last(al_config):
    cfg = load_experiment(al_config)  # pool of 8 images x 8 regions, K = 4 per step
    al = replace(cfg.al, strategy="ripu_grid", budgets=(8, 18), ripu_grid=RipuGridConfig(norm_classes=19))
    run_id = run_one(prepare(cfg, progress=False), al, progress=False)
    store = RunStore(cfg.store)
    try:
        steps = store.steps(run_id)
        evals = store.evaluations(run_id)
        stored = json.loads(store.db.execute("SELECT config FROM runs WHERE run_id=?", (run_id,)).fetchone()[0])
    finally:
        store.close()
    assert [len(s["selected"]) for s in steps] == [4, 4, 4, 4, 2]  # the last step stops at the budget
    assert [s["labelled"] for s in steps] == [4, 8, 12, 16, 18]
    selected = [g for s in steps for g in s["selected"]]
    assert len(selected) == len(set(selected)) == 18 and all(0 <= g < 64 for g in selected)
    assert all(0.0 <= x <= 1.0 for s in steps for x in s["scores"])
    assert [(e["budget"], e["labelled"]) for e in evals if e["split"] == "test"] == [(8, 8), (18, 18)]
    assert stored["al"]["ripu_grid"] == {"score": "cell", "norm_classes": 19}  # the method's section, in full
