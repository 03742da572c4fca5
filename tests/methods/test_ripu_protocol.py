"""RIPU's training loop and the domain-shift experiment end to end on a tiny synthetic dataset whose
stems follow CamVid's sequence prefixes (day source, dusk target)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from activeseg.al.state import PixelLabelledState
from activeseg.config import DataConfig
from activeseg.data.synthetic import write_synthetic
from activeseg.errors import ConfigError
from activeseg.methods.ripu.config import DomainShiftConfig, RipuConfig
from activeseg.methods.ripu.experiment import prepare_domain, run_domain_benchmark, run_variant
from activeseg.methods.ripu.protocol import units_per_round
from activeseg.models.heads import AuxHead
from activeseg.models.segmenter import ModelConfig
from activeseg.store import RunStore
from activeseg.train.trainer import SOURCE, TARGET, loss_terms

H, W = 48, 64


@pytest.fixture(scope="module")
def domain_dir(tmp_path_factory) -> Path:
    """6 day train images (0006R0), 4 dusk train images (0001TP), 4 day val images (0016E5), 2 dusk and
    2 Seq05VD test images."""
    root = write_synthetic(tmp_path_factory.mktemp("dom") / "camvid", {"train": 10, "val": 4, "test": 4},
                           size=(H, W), seed=3)
    names = {"train": ["0006R0_f%05d" % i for i in range(6)] + ["0001TP_%06d" % i for i in range(4)],
             "val": ["0016E5_%05d" % i for i in range(4)],
             "test": ["0001TP_t%05d" % i for i in range(2)] + ["Seq05VD_f%05d" % i for i in range(2)]}
    for split, stems in names.items():
        for i, stem in enumerate(stems):
            for kind in ("images", "labels"):
                (root / split / kind / f"{split}_{i:04d}.png").rename(root / split / kind / f"{stem}.png")
    return root


def _cfg(domain_dir: Path, tmp_path: Path, **ripu) -> DomainShiftConfig:
    options = {"iterations": 40, "log_every": 5, "checkpoint_every": 10, **ripu}
    return DomainShiftConfig(data=DataConfig(dataset=str(domain_dir), height=H, width=W),
                             model=ModelConfig(encoder="tiny", pretrained=False, decoder_width=16),
                             ripu=RipuConfig(**options), test_size=None, seeds=(0,),
                             store=tmp_path / "store.sqlite", device="cpu", cache_dir=None)


def test_split_and_units(domain_dir, tmp_path):
    exp = prepare_domain(_cfg(domain_dir, tmp_path), progress=False)
    assert (len(exp.data.source), len(exp.data.target), len(exp.data.test)) == (10, 4, 2)
    assert (exp.data.target.labels == 255).all()  # nothing of the target is known before a round
    cfg = exp.cfg.ripu
    assert units_per_round(cfg, "RA", (H, W)) == 2  # ceil(48*64*0.022/5/9) = ceil(1.50)
    assert units_per_round(cfg, "PA", (H, W)) == 1  # ceil(8 * 3072 / 172800)
    assert units_per_round(cfg, "RA", (180, 240)) == 22 and units_per_round(cfg, "PA", (180, 240)) == 2


def test_ripu_ra_run_records_rounds_pixels_and_curves(domain_dir, tmp_path):
    cfg = _cfg(domain_dir, tmp_path)
    exp = prepare_domain(cfg, progress=False)
    ev = run_variant(exp, "ripu_ra", 0, progress=False)
    extra = ev["extra"]
    assert extra["unit"] == "square" and extra["units"] == 5 * 2 * 4  # 5 rounds x 2 squares x 4 images
    assert extra["images_touched"] == 4
    assert 4 * 5 * 2 <= ev["labelled"] <= 5 * 2 * 4 * 9  # clipped squares may hold fewer than 9 pixels
    assert extra["labelled_pixels"] == ev["labelled"] == sum(r["pixels"] for r in extra["rounds"])
    assert sum(ev["class_histogram"]) == ev["labelled"]
    assert [r["iteration"] for r in extra["rounds"]] == [10, 12, 14, 16, 18]
    assert len(extra["curve"]) == 8 and extra["curve"][-1]["iteration"] == 40
    assert {"seg_source", "seg_target", "nl", "cr", "loss"} <= set(extra["curve"][-1])
    assert all(torch.isfinite(torch.tensor(p["loss"])) for p in extra["curve"])
    assert ev["budget"] == 220 and 0.0 <= ev["miou"] <= 1.0
    store = RunStore(cfg.store)
    steps = store.steps("ripu_ra-s0")
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5] and all(len(s["selected"]) == 8 for s in steps)
    centres = [c for s in steps for c in s["selected"]]
    assert len(set(centres)) == len(centres)  # no centre picked twice
    store.close()


def test_pa_labels_single_pixels(domain_dir, tmp_path):
    # a 9x9 blocking window: at 48x64 the default 65x65 one (carried across rounds) would cover the image
    exp = prepare_domain(_cfg(domain_dir, tmp_path, pa_window_k=4), progress=False)
    ev = run_variant(exp, "ripu_pa", 0, progress=False)
    assert ev["extra"]["unit"] == "pixel" and ev["extra"]["units"] == ev["labelled"] == 5 * 1 * 4
    assert ev["budget"] == 40


def test_references(domain_dir, tmp_path):
    exp = prepare_domain(_cfg(domain_dir, tmp_path), progress=False)
    lower = run_variant(exp, "source_only", 0, progress=False)
    uda = run_variant(exp, "uda_nl", 0, progress=False)
    full = run_variant(exp, "target_full", 0, progress=False)
    assert lower["labelled"] == uda["labelled"] == 0 and full["labelled"] == 4 * H * W
    assert (lower["budget"], uda["budget"], full["budget"]) == (0, 0, 10000)
    assert "nl" not in lower["extra"]["curve"][-1] and "seg_target" not in lower["extra"]["curve"][-1]
    assert "nl" in uda["extra"]["curve"][-1] and uda["extra"]["curve"][-1]["seg_target"] == 0.0
    assert full["extra"]["curve"][-1]["seg_target"] > 0.0 and full["extra"]["units"] == 0


def test_resume_after_interrupt_is_bit_exact(domain_dir, tmp_path, monkeypatch):
    whole = _cfg(domain_dir, tmp_path / "a")
    ref = run_variant(prepare_domain(whole, progress=False), "ripu_ra", 0, progress=False)

    cut = _cfg(domain_dir, tmp_path / "b")
    exp = prepare_domain(cut, progress=False)
    calls = {"n": 0}
    original = RunStore.record_step

    def failing(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed right after round 3 was stored
    monkeypatch.setattr(RunStore, "record_step", failing)
    with pytest.raises(KeyboardInterrupt):
        run_variant(exp, "ripu_ra", 0, progress=False)
    monkeypatch.setattr(RunStore, "record_step", original)
    store = RunStore(cut.store)
    assert [s["step"] for s in store.steps("ripu_ra-s0")] == [1, 2, 3]
    store.close()
    resumed = run_variant(prepare_domain(cut, progress=False), "ripu_ra", 0, progress=False)
    assert resumed["miou"] == ref["miou"] and resumed["labelled"] == ref["labelled"]
    assert resumed["extra"]["curve"] == ref["extra"]["curve"]


def test_benchmark_runs_every_variant_and_skips_finished(domain_dir, tmp_path):
    cfg = replace(_cfg(domain_dir, tmp_path, iterations=20, log_every=10, checkpoint_every=10),
                  selectors=("ripu_random", "ripu_uncertainty", "ripu_impurity"), references=("source_only",))
    run_domain_benchmark(cfg, progress=False)
    store = RunStore(cfg.store)
    runs = {r["run_id"]: r["status"] for r in store.runs()}
    assert runs == {f"{v}-s0": "done" for v in ("source_only", "ripu_random", "ripu_uncertainty", "ripu_impurity")}
    before = {e["run_id"]: e["miou"] for e in store.evaluations()}
    store.close()
    run_domain_benchmark(cfg, progress=False)  # everything finished: nothing runs again
    store = RunStore(cfg.store)
    assert {e["run_id"]: e["miou"] for e in store.evaluations()} == before
    store.close()


def test_config_errors():
    with pytest.raises(ConfigError, match="one fraction per round"):
        RipuConfig(rounds=3)
    with pytest.raises(ConfigError, match="unknown"):
        DomainShiftConfig(selectors=("ripu_xx",))


class _Recorder(AuxHead):
    produces_output = False

    def __init__(self, domain: str):
        super().__init__()
        self.spec, self.domain, self.seen = {"type": "rec"}, domain, []

    def loss(self, outputs, labels):
        self.seen.append(labels.shape[0])
        return outputs["logits"].sum() * 0.0


def test_loss_terms_route_heads_and_segmentation_by_domain():
    from activeseg.models.segmenter import build_model

    model = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=8), 3).eval()
    for name, domain in (("t", "target"), ("s", "source"), ("a", "all")):
        model.add_head(name, _Recorder(domain))
    images = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    labels = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    labels[0] = 1  # the one source image is fully labelled, the target images not at all
    terms = loss_terms(model, images, labels, torch.tensor([SOURCE, TARGET, TARGET]))
    assert [h.seen for h in model.heads.values()] == [[2], [1], [3]]
    assert set(terms) == {"seg_source", "seg_target", "t", "s", "a"}
    assert terms["seg_target"] == 0.0 and terms["seg_source"] > 0.0
    only_source = loss_terms(model, images[:1], labels[:1], torch.tensor([SOURCE]))
    assert "t" not in only_source and "seg_target" not in only_source


def test_pixel_state_counts_and_refuses_relabelling():
    state = PixelLabelledState(2, (4, 5))
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[:2, :2] = True
    assert state.label(1, mask, 1, torch.tensor([[0, 0]])) == 4
    assert (state.num_pixels, state.num_units, state.images_touched(), state.last_round) == (4, 1, 1, 1)
    with pytest.raises(ValueError, match="already labelled"):
        state.label(1, mask, 2)
    with pytest.raises(ValueError, match="before the last round"):
        other = torch.zeros(4, 5, dtype=torch.bool)
        other[3, 4] = True
        state.label(0, other, 0)
    copy = PixelLabelledState(2, (4, 5))
    copy.load_state_dict(state.state_dict())
    assert torch.equal(copy.known(), state.known()) and copy.units == state.units
    state.label_all(2)
    assert state.num_pixels == 2 * 4 * 5 and state.num_units == 1


def test_cli_run_report_and_show(domain_dir, tmp_path):
    """`activeseg ripu run` runs a preset's grid and writes the report; `report` and `show` read the store."""
    import subprocess
    import sys

    import yaml

    preset = tmp_path / "dusk.yaml"
    preset.write_text(yaml.safe_dump({
        "data": {"dataset": str(domain_dir), "height": H, "width": W},
        "model": {"encoder": "tiny", "pretrained": False, "decoder_width": 16},
        "ripu": {"iterations": 30, "log_every": 5, "checkpoint_every": 10},
        "test_size": None, "selectors": ["ripu_ra"], "references": ["source_only", "target_full"], "seeds": [1, 2],
        "store": str(tmp_path / "runs" / "store.sqlite"), "device": "cpu", "cache_dir": None}))

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "activeseg.cli", "ripu", *map(str, args)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = cli("run", preset, "--quiet")
    assert "| ripu_ra | 2 |" in out and "| target_full | 2 |" in out and "− source_only" in out
    rows = {}  # the first table's row of each run (the mIoU and labelled-target table)
    for line in out.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split(" | ")[0][2:], line.split(" | "))
    assert rows["ripu_ra"][5].endswith(" squares") and rows["target_full"][5] == "-"  # units: the references query none
    for name in ("results.md", "miou.png", "training_curves.png"):
        assert (tmp_path / "runs" / name).stat().st_size > 0
    assert "Per-class IoU" in cli("report", tmp_path / "runs" / "store.sqlite", "--out", tmp_path / "rep")
    cli("show", tmp_path / "runs" / "store.sqlite", "--run", "ripu_ra-s1", "--images", 2, "--out", tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 0
    bad = subprocess.run([sys.executable, "-m", "activeseg.cli", "ripu", "show", tmp_path / "runs" / "store.sqlite",
                          "--run", "source_only-s1", "--out", tmp_path / "x.png"], capture_output=True, text=True)
    assert bad.returncode != 0 and "reference" in bad.stderr


def test_folders_setting_reads_roles_from_splits_and_stem_files(tmp_path, synthetic_dir):
    """Your own data: source = a split, target pool = some stems of another split, target test = a split."""
    from activeseg.methods.ripu.config import DomainRoles

    (tmp_path / "pool.txt").write_text("val_0000\nval_0002\n")
    cfg = replace(_cfg(synthetic_dir, tmp_path), setting="folders",
                  data=DataConfig(dataset=str(synthetic_dir), height=48, width=64),
                  domain=DomainRoles(source=("train",), target_pool=f"val:{tmp_path / 'pool.txt'}", target_test="test"))
    exp = prepare_domain(cfg, progress=False)
    assert (len(exp.data.source), len(exp.data.target), len(exp.data.test)) == (12, 2, 4)
    assert exp.split.target_pool == ("val_0000", "val_0002") and exp.split.pool_split == "val"
    ev = run_variant(exp, "ripu_ra", 0, progress=False)
    assert ev["extra"]["images_touched"] == 2
    with pytest.raises(ConfigError, match="needs domain.source"):
        replace(cfg, domain=DomainRoles(source=("train",)))
    with pytest.raises(ConfigError, match="names no split folder"):
        prepare_domain(replace(cfg, domain=DomainRoles(source=("nope",), target_pool="val", target_test="test")),
                       progress=False)


def test_domain_dataset_folder_holds_the_roles_as_splits(domain_dir, tmp_path):
    """`activeseg data domain`: train/ = source + target pool, test/ = target test, roles/*.txt; kept when
    the roles are the same, refused (without --force) when they differ."""
    from activeseg.data.domains import camvid_day_dusk_from_dir, write_domain_dataset
    from activeseg.data.folder import load_split

    roles = camvid_day_dusk_from_dir(domain_dir)
    out = write_domain_dataset(roles, domain_dir, tmp_path / "dusk")
    train = load_split(out, "train", (H, W), progress=False)
    assert len(train) == 10 + 4 and len(load_split(out, "test", (H, W), progress=False)) == 2
    assert (out / "roles" / "source.txt").read_text().split() == [s for _, s in roles.source]
    assert (out / "roles" / "target_pool.txt").read_text().split() == list(roles.target_pool)
    original = load_split(domain_dir, "train", (H, W), stems=list(roles.target_pool), progress=False)
    assert torch.equal(train.subset(list(roles.target_pool)).labels, original.labels)  # the same pixels
    assert write_domain_dataset(roles, domain_dir, out) == out  # same roles: kept
    other = replace(roles, target_test=roles.target_test[:1])
    with pytest.raises(ConfigError, match="other roles"):
        write_domain_dataset(other, domain_dir, out)
    write_domain_dataset(other, domain_dir, out, force=True)
    assert (out / "roles" / "target_test.txt").read_text().split() == list(roles.target_test[:1])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dusk-")]  # no temporary folder left


def test_protocol_b_grid_regions_of_the_target_pool_without_val(domain_dir, tmp_path):
    """Protocol B: the roles as a dataset folder, the source as start images (a source-only start model),
    the dusk pool's grid regions as the pool, no validation split (fixed epochs, test evaluations only),
    ripu_grid beside random, with the bounds."""
    from activeseg.commands import load_experiment, run_benchmark
    from activeseg.data.domains import camvid_day_dusk_from_dir, write_domain_dataset

    import yaml

    folder = write_domain_dataset(camvid_day_dusk_from_dir(domain_dir), domain_dir, tmp_path / "dusk")
    preset = tmp_path / "grid.yaml"
    preset.write_text(yaml.safe_dump({
        "data": {"dataset": str(folder), "height": H, "width": W},
        "model": {"encoder": "tiny", "pretrained": False, "decoder_width": 16},
        "start_images": str(folder / "roles" / "source.txt"), "pool_images": str(folder / "roles" / "target_pool.txt"),
        "start_early_stopping": False, "val_split": None, "test_size": None, "region_rows": 2, "region_cols": 4,
        "start_train": {"max_epochs": 2, "patience": 0, "batch_size": 4, "lr": 0.01},
        "al": {"budgets": [5, 11], "regions_per_step": 4, "candidates_per_pool": 2,
               "step_train": {"max_epochs": 1, "patience": 0, "batch_size": 8, "lr": 0.005, "crop": None},
               "final_train": {"max_epochs": 2, "patience": 0, "batch_size": 4, "lr": 0.005, "crop": None},
               "final_init": "start_model", "final_include_start": True},
        "strategies": ["random", "ripu_grid"], "seeds": [1], "bounds": True,
        "store": str(tmp_path / "runs" / "store.sqlite"), "device": "cpu", "cache_dir": None}))
    cfg = load_experiment(preset)
    run_benchmark(cfg, progress=False)
    store = RunStore(cfg.store)
    evals = store.evaluations()
    assert {e["split"] for e in evals} == {"test"}  # no validation split, nothing scored on one
    by = {(e["run_id"], e["budget"]): e for e in evals}
    assert set(by) == {("lower_bound", 0), ("upper_bound", 4 * 8), ("random-s1", 5), ("random-s1", 11),
                       ("ripu_grid-s1", 5), ("ripu_grid-s1", 11)}
    assert [len(s["selected"]) for s in store.steps("ripu_grid-s1")] == [4, 1, 4, 2]  # truncated at each budget
    from activeseg.al.loop import steps_to_last_budget

    assert steps_to_last_budget((5, 11), 4) == 4 and steps_to_last_budget((33, 74, 149), 24) == 2 + 2 + 4
    assert all(e["epochs"] == 2 for e in evals if e["budget"] > 0)  # fixed epochs: no early stopping
    store.close()
    with pytest.raises(ConfigError, match="start_early_stopping: false"):
        replace(cfg, start_early_stopping=True)


def test_carried_blocking_keeps_squares_of_all_rounds_apart():
    """carry_blocking (default): centres of every round at Chebyshev distance >= 3 from all earlier ones,
    so no square overlaps another and each round adds whole squares (clipped ones at the border)."""
    from activeseg.methods.ripu.protocol import acquire

    cfg = RipuConfig()
    state = PixelLabelledState(2, (60, 80))
    gen = torch.Generator().manual_seed(0)
    for rnd in range(1, 6):
        maps = {"score": torch.rand((2, 60, 80), generator=gen) ** 4}
        acquire(maps, state, cfg, "ripu_ra", rnd)
    assert state.num_units == 5 * 3 * 2  # ceil(60*80*0.022/5/9) = 3 squares per image per round
    for image in range(2):
        c = torch.tensor([(y, x) for _, i, y, x in state.units if i == image])
        dist = (c[:, None, :] - c[None, :, :]).abs().max(-1).values
        assert int((dist + 100 * torch.eye(len(c), dtype=torch.long)).min()) >= 3
        area = sum((min(y + 1, 59) - max(y - 1, 0) + 1) * (min(x + 1, 79) - max(x - 1, 0) + 1) for y, x in c.tolist())
        assert int(state.known()[image].sum()) == area  # disjoint squares: every pixel counted once
    loose = PixelLabelledState(1, (60, 80))
    for rnd in range(1, 6):  # without carried blocking a later centre may sit next to an earlier square
        acquire({"score": torch.ones((1, 60, 80))}, loose, replace(cfg, carry_blocking=False), "ripu_ra", rnd)
    assert loose.num_pixels < 5 * 3 * 9  # the same top-left corner wins every round: overlapping squares
