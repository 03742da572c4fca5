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
    test = run_evaluate(tmp_path / "run" / "model.pt", "test", device_name="cpu", progress=False,
                        cache_dir=tmp_path / "cache")
    assert test["images"] == 233 and 0.15 < test["miou"] < 1.0
    # train scored test at CamVid's native 360x480 labels, and evaluate repeats it
    assert test["scale"] == metrics["test"]["scale"] == "scored at 360x480"
    assert abs(test["miou"] - metrics["test"]["miou"]) < 1e-6


def test_ralis_agent_episode_on_camvid(tmp_path, camvid_dir):
    from activeseg.methods.ralis.agent import AgentConfig, train_agent
    from activeseg.methods.ralis.policy import load_agent

    cfg = AgentConfig(data=DataConfig(dataset=str(camvid_dir), height=90, width=120), model=ModelConfig(encoder="lite0"),
                      start_train=TrainConfig(max_epochs=3, patience=0, batch_size=5), reward_subset=20, episodes=1,
                      budget=48, step_train=TrainConfig(max_epochs=1, patience=0, batch_size=32, lr=5e-4, crop=(64, 64)),
                      out=tmp_path / "agent", device="cpu", cache_dir=tmp_path / "cache")
    summary = train_agent(cfg, progress=False)
    ep = summary["episodes"][0]
    assert len(ep["rewards"]) == 2 and 0.05 < summary["start_miou"] < 0.6
    # 48 regions of 20 px wide, 23 px high (21 in the last row: 90 = 3 x 23 + 21)
    assert 48 * 21 * 20 <= sum(ep["labelled_class_pixels"]) <= 48 * 23 * 20
    qnet, desc, classes = load_agent(tmp_path / "agent" / "agent_last.pt")
    assert qnet.state_regions == 240 and classes == 11  # D_S: 10 images x 24 regions
