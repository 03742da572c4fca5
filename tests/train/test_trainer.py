import pytest
import torch

from activeseg.data.folder import load_split
from activeseg.features import FeatureCache
from activeseg.models import ModelConfig, build_model
from activeseg.pipeline import make_source
from activeseg.train.checkpoint import load_checkpoint, save_checkpoint
from activeseg.train.metrics import mean_iou
from activeseg.train.trainer import TrainConfig, evaluate, fit, segmentation_loss

CPU = torch.device("cpu")


def test_loss_ignores_void_and_unlabelled():
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, 0] = 5.0  # confident class 0 everywhere
    labels = torch.tensor([[[0, 0, 3, 255]]])  # two class-0 pixels, void (3 >= C), unlabelled
    only_labelled = segmentation_loss(logits[..., :2], labels[..., :2])
    assert torch.isclose(segmentation_loss(logits, labels), only_labelled)
    assert segmentation_loss(logits, torch.full((1, 1, 4), 255)).item() == 0.0


def _data(synthetic_dir):
    return (load_split(synthetic_dir, "train", (48, 64), progress=False),
            load_split(synthetic_dir, "val", (48, 64), progress=False))


def _fit(synthetic_dir, seed, epochs=12, cached=True, crop=None):
    train, val = _data(synthetic_dir)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(encoder="tiny", freeze_encoder=cached), 5)
    cache = FeatureCache(model, CPU, "synth", None, progress=False) if cached else None
    cfg = TrainConfig(max_epochs=epochs, patience=0, batch_size=4, lr=1e-2, crop=crop)
    result = fit(model, make_source(model, train, cache), make_source(model, val, cache), 5, cfg, CPU,
                 torch.Generator().manual_seed(seed), align=32, progress=False)
    return model, result, make_source(model, val, cache)


def test_training_learns_synthetic_task(synthetic_dir):
    model, result, val = _fit(synthetic_dir, seed=0)
    untrained = build_model(ModelConfig(encoder="tiny"), 5)
    before = mean_iou(evaluate(untrained, val, 5, CPU))
    after = mean_iou(evaluate(model, val, 5, CPU))
    assert after > 0.4 and after > before + 0.3  # measured: 0.014 -> 0.49
    assert result.best_miou == max(r["val_miou"] for r in result.history)
    assert abs(after - result.best_miou) < 1e-9  # the model holds its best epoch


def test_same_seed_same_result(synthetic_dir):
    a, ra, _ = _fit(synthetic_dir, seed=3, epochs=3, crop=(32, 32))
    b, rb, _ = _fit(synthetic_dir, seed=3, epochs=3, crop=(32, 32))
    assert [r["loss"] for r in ra.history] == [r["loss"] for r in rb.history]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_finetuned_encoder_trains_from_images(synthetic_dir):
    model, result, _ = _fit(synthetic_dir, seed=0, epochs=2, cached=False)
    assert len(result.history) == 2 and result.history[-1]["loss"] < result.history[0]["loss"] * 1.5


def test_early_stopping_stops_after_patience(synthetic_dir):
    train, val = _data(synthetic_dir)
    model = build_model(ModelConfig(encoder="tiny"), 5)
    cfg = TrainConfig(max_epochs=50, patience=2, lr=1e-9)  # learns nothing: no improvement after epoch 0
    r = fit(model, make_source(model, train, None), make_source(model, val, None), 5, cfg, CPU,
            torch.Generator().manual_seed(0), progress=False)
    assert r.best_epoch <= 2 and len(r.history) == r.best_epoch + 3


def test_checkpoint_round_trip(tmp_path, synthetic_dir):
    train, val = _data(synthetic_dir)
    cfg = ModelConfig(encoder="tiny")
    model = build_model(cfg, 5)
    save_checkpoint(tmp_path / "m.pt", model, cfg, train.classes, (48, 64), {"dataset": "x"})
    loaded, meta = load_checkpoint(tmp_path / "m.pt", CPU)
    assert meta["extra"] == {"dataset": "x"} and meta["image_size"] == [48, 64]
    src = make_source(model, val, None)
    assert torch.equal(evaluate(model, src, 5, CPU), evaluate(loaded, src, 5, CPU))


def test_val_every_validates_every_kth_and_the_last_epoch(synthetic_dir):
    train, val = _data(synthetic_dir)
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="tiny"), 5)
    cfg = TrainConfig(max_epochs=7, patience=0, batch_size=4, lr=1e-2, val_every=3)
    r = fit(model, make_source(model, train, None), make_source(model, val, None), 5, cfg, CPU,
            torch.Generator().manual_seed(0), progress=False)
    validated = [h["epoch"] for h in r.history if h["val_miou"] is not None]
    assert validated == [2, 5, 6] and len(r.history) == 7
    assert r.best_epoch in validated and r.best_miou == max(h["val_miou"] for h in r.history if h["epoch"] in validated)
    assert abs(mean_iou(evaluate(model, make_source(model, val, None), 5, CPU)) - r.best_miou) < 1e-9


def test_poly_schedule_decays_as_deeplab():
    from activeseg.train.trainer import make_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_scheduler(opt, TrainConfig(max_epochs=4, lr=0.1, lr_schedule="poly"))
    lrs = []
    for _ in range(4):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs == pytest.approx([0.1 * (1 - e / 4) ** 0.9 for e in (1, 2, 3, 4)])
