from pathlib import Path

import pytest

from activeseg.commands import TrainCommand
from activeseg.config import DataConfig, from_dict, load_yaml, save_yaml
from activeseg.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("preset", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_presets_load(preset):
    from activeseg.experiment import ExperimentConfig
    from activeseg.methods.misical.experiment import MisicalExperimentConfig
    from activeseg.methods.ralis.agent import AgentConfig
    from activeseg.methods.ripu.config import DomainShiftConfig
    from activeseg.project.config import ProjectConfig

    kinds = {"train_": TrainCommand, "ralis_agent": AgentConfig, "ripu_": DomainShiftConfig,
             "misical_": MisicalExperimentConfig, "project_": ProjectConfig}
    cls = next((c for prefix, c in kinds.items() if preset.name.startswith(prefix)), ExperimentConfig)
    cmd = load_yaml(preset, cls)
    expected = {"folder_dataset.yaml": "my_dataset"}.get(preset.name, "camvid")
    if preset.name.startswith("camvid_dusk_grid"):  # the day -> dusk roles written by `activeseg data domain`
        expected = "runs/camvid_day_dusk_data"
    assert cmd.data.dataset == expected
    assert cmd.model.encoder == "lite0"


def test_generic_preset_plans_any_folder_dataset_without_camvid_keys(tmp_path, synthetic_dir):
    from dataclasses import replace

    from activeseg.experiment import ExperimentConfig, check

    cfg = load_yaml(CONFIGS / "folder_dataset.yaml", ExperimentConfig)
    (tmp_path / "agent.pt").write_bytes(b"")  # check() only asks that the agent file exists
    cfg = replace(cfg, data=replace(cfg.data, dataset=str(synthetic_dir)), strategies=("random", "ralis"),
                  al=replace(cfg.al, budgets=(24, 48), agent=tmp_path / "agent.pt"), start_images="random:4",
                  state_images="random:2")
    plan = check(cfg)  # 12 synthetic train images: 4 start, 2 state, 6 in the pool
    assert len(plan.start) == 4 and len(plan.state) == 2 and len(plan.pool) == 6
    assert not set(plan.start) & set(plan.pool) and not set(plan.state) & set(plan.pool)
    with pytest.raises(ConfigError, match="al.budgets go up to 240 regions, but the pool .* has 144"):
        check(replace(cfg, al=replace(cfg.al, budgets=(24, 240))))


def test_key_reference_is_current():
    from activeseg.commands import config_reference

    doc = Path(__file__).resolve().parents[1] / "docs" / "config_keys.md"
    assert doc.read_text() == config_reference(), "regenerate: activeseg keys --out docs/config_keys.md"


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


def test_yaml_exponent_numbers_are_numbers(tmp_path):
    from activeseg.experiment import ExperimentConfig

    path = tmp_path / "c.yaml"  # PyYAML reads 1e-3 (no dot) as a string
    path.write_text("al:\n  step_train: {lr: 1e-3, weight_decay: 1e-4}\n  budgets: [48, 96]\n")
    cfg = load_yaml(path, ExperimentConfig)
    assert cfg.al.step_train.lr == 0.001 and cfg.al.step_train.weight_decay == 0.0001
    assert cfg.al.budgets == (48, 96)


@pytest.mark.parametrize("text, key, given, expected", [
    ("al: {budgets: 240}\n", "al.budgets", "240", "expected a list"),
    ("al: {regions_per_step: many}\n", "al.regions_per_step", "'many'", "valid integer"),
    ("al: {step_train: {lr: fast}}\n", "al.step_train.lr", "'fast'", "valid number"),
    ("al: {final_init: scratch}\n", "al.final_init", "'scratch'", "'al_model' or 'start_model'"),
    ("seeds: [1, 2.5]\n", "seeds.1", "2.5", "fractional part"),
])
def test_wrong_types_name_file_key_value_and_expectation(tmp_path, text, key, given, expected):
    from activeseg.experiment import ExperimentConfig

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_yaml(path, ExperimentConfig)
    message = str(info.value)
    assert str(path) in message and f"'{key}'" in message and f"given {given}" in message and expected in message


def test_nested_unknown_key_names_section_and_valid_keys(tmp_path):
    from activeseg.experiment import ExperimentConfig

    with pytest.raises(ConfigError, match=r"unknown key 'al.step_train.learning_rate'.*batch_size.*lr"):
        from_dict(ExperimentConfig, {"al": {"step_train": {"learning_rate": 0.1}}})


def test_folder_or_binary_file_as_config(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_yaml(tmp_path, TrainCommand)
    (tmp_path / "x.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="not a valid YAML"):
        load_yaml(tmp_path / "x.yaml", TrainCommand)
