from pathlib import Path

import pytest

from activeseg.commands import TrainCommand
from activeseg.config import DataConfig, from_dict, load_yaml, save_yaml
from activeseg.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("preset", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_presets_load(preset):
    from activeseg.experiment import ExperimentConfig
    from activeseg.methods.ralis.agent import AgentConfig

    kinds = {"train_": TrainCommand, "ralis_agent": AgentConfig}
    cls = next((c for prefix, c in kinds.items() if preset.name.startswith(prefix)), ExperimentConfig)
    cmd = load_yaml(preset, cls)
    assert cmd.data.dataset == "camvid" and cmd.model.encoder == "lite0"


def test_round_trip_through_yaml(tmp_path):
    cmd = from_dict(TrainCommand, {"data": {"height": 90, "width": 120}, "train": {"crop": [64, 64]},
                                   "stems": ["a", "b"], "out": "x"})
    save_yaml(cmd, tmp_path / "c.yaml")
    again = load_yaml(tmp_path / "c.yaml", TrainCommand)
    assert again == cmd and again.train.crop == (64, 64) and again.out == Path("x")


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid keys"):
        from_dict(DataConfig, {"heigth": 10})


def test_invalid_value_says_how_to_fix():
    with pytest.raises(ConfigError, match="'stretch' or 'pad'"):
        DataConfig(fit="crop")
