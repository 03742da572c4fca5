"""A small run on real CamVid images (skipped when the data is absent)."""


from activeseg.commands import (
    TrainCommand,
    run_evaluate,
    run_train,
    stems_of_ralis_split,
)
from activeseg.config import DataConfig
from activeseg.models import ModelConfig
from activeseg.train.trainer import TrainConfig


def test_lite0_learns_from_twenty_camvid_images(tmp_path, camvid_dir):
    stems = stems_of_ralis_split(camvid_dir, "d_t")[::5]  # 20 images
    cmd = TrainCommand(
        data=DataConfig(dataset=str(camvid_dir), height=90, width=120),
        model=ModelConfig(encoder="lite0"),
        train=TrainConfig(max_epochs=4, patience=0, batch_size=4),
        stems=stems, out=tmp_path / "run", cache_dir=tmp_path / "cache", progress=False, device="cpu",
    )
    metrics = run_train(cmd)
    assert metrics["train_images"] == 20
    # sky, building and road dominate CamVid; a pretrained encoder separates them within a few epochs
    iou = metrics["val"]["iou"]
    assert iou["sky"] > 0.5 and iou["road"] > 0.5 and metrics["val"]["miou"] > 0.2
    test = run_evaluate(tmp_path / "run" / "model.pt", "test", device_name="cpu", progress=False)
    assert test["images"] == 233 and 0.15 < test["miou"] < 1.0
