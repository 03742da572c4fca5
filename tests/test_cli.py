"""End-to-end runs of the `activeseg` command line on synthetic data."""

import json
import subprocess
import sys


def activeseg(*args, env_root=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "activeseg.cli", *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def test_train_then_evaluate_then_info(tmp_path, synthetic_dir):
    out = tmp_path / "run"
    p = activeseg("train", "--dataset", synthetic_dir, "--encoder", "tiny", "--height", 48, "--width", 64,
                  "--epochs", 6, "--batch-size", 4, "--lr", 0.01, "--out", out,
                  "--cache-dir", tmp_path / "cache", "--quiet")
    assert "val mIoU" in p.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["miou"] > 0.3 and len(metrics["val"]["iou"]) == 5
    assert (out / "config.yaml").is_file() and len(json.loads((out / "history.json").read_text())) >= 1
    assert list((tmp_path / "cache").rglob("*.pt"))  # the disk cache was filled

    ev = json.loads(activeseg("evaluate", out / "model.pt", "--split", "val", "--json", "--cache-dir", tmp_path / "cache").stdout)
    assert abs(ev["miou"] - metrics["val"]["miou"]) < 1e-6  # same model, same data, same number
    ev_test = activeseg("evaluate", out / "model.pt", "--split", "test", "--cache-dir", tmp_path / "cache").stdout
    assert "mIoU" in ev_test and "background" in ev_test
    # one test scale: train scored test at the labels' native size, and evaluate repeats that number
    ev_json = json.loads(activeseg("evaluate", out / "model.pt", "--split", "test", "--json", "--cache-dir",
                                   tmp_path / "cache").stdout)
    assert metrics["test"]["scale"] == ev_json["scale"] == "scored at 48x64"
    assert abs(ev_json["miou"] - metrics["test"]["miou"]) < 1e-6

    info = activeseg("data", "info", "--dataset", synthetic_dir).stdout
    assert "background" in info and "(ignored)" in info


def test_train_on_listed_stems(tmp_path, synthetic_dir):
    stems = tmp_path / "stems.txt"
    stems.write_text("# two images\ntrain_0000\ntrain_0005\n")
    out = tmp_path / "run"
    activeseg("train", "--dataset", synthetic_dir, "--encoder", "tiny", "--height", 48, "--width", 64,
              "--epochs", 1, "--stems-file", stems, "--out", out, "--no-disk-cache", "--quiet")
    assert json.loads((out / "metrics.json").read_text())["train_images"] == 2


def test_bad_data_gives_error_with_remedy_and_writes_nothing(tmp_path, synthetic_copy):
    (synthetic_copy / "train/labels/train_0003.png").unlink()
    out = tmp_path / "run"
    p = activeseg("train", "--dataset", synthetic_copy, "--encoder", "tiny", "--out", out, "--quiet", check=False)
    assert p.returncode == 2
    assert "train_0003" in p.stderr and "Remedy:" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()


def test_missing_dataset_suggests_download(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIVESEG_DATA", str(tmp_path))
    p = activeseg("data", "info", "--dataset", "camvid", check=False)
    assert p.returncode == 2 and "activeseg data download camvid" in p.stderr


def test_active_learning_run_then_plot(tmp_path, al_config_cli):
    p = activeseg("run", "--config", al_config_cli, "--strategy", "entropy", "--seed", 3, "--quiet")
    assert "entropy-s3: 8 regions -> test mIoU" in p.stdout and "entropy-s3: 16 regions" in p.stdout
    store = tmp_path / "runs" / "store.sqlite"
    again = activeseg("run", "--config", al_config_cli, "--strategy", "entropy", "--seed", 3, "--quiet")
    assert again.stdout == p.stdout  # a finished run is reported, not recomputed
    out = activeseg("plot", store, "--out", tmp_path / "report").stdout
    assert "| entropy |" in out and (tmp_path / "report" / "learning_curves.png").stat().st_size > 1000
    assert (tmp_path / "report" / "training_curves.png").stat().st_size > 1000
    assert "(n=1)" in (tmp_path / "report" / "results.md").read_text()
    activeseg("run", "--config", al_config_cli, "--strategy", "random", "--seed", 3, "--quiet")
    out = activeseg("plot", store, "--out", tmp_path / "report", "--against", "entropy").stdout
    assert "Paired difference to random" in out and "Paired difference to entropy" in out
    assert "| random | " in out.split("Paired difference to entropy")[1]  # random - entropy, one seed
    _user_error(activeseg("plot", store, "--against", "bald", check=False), "--against bald", "entropy', 'random")
    evals = json.loads((tmp_path / "report" / "evaluations.json").read_text())
    assert {(e["budget"], e["split"]) for e in evals} == {(8, "val"), (8, "test"), (16, "val"), (16, "test")}


def test_unknown_strategy_lists_valid_names(al_config_cli):
    p = activeseg("run", "--config", al_config_cli, "--strategy", "coreset", check=False)
    assert p.returncode == 2 and "valid names" in p.stderr


def _edit(path, **changes):
    import yaml

    cfg = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        section, _, name = key.rpartition("__")
        (cfg[section] if section else cfg)[name] = value
    path.write_text(yaml.safe_dump(cfg))


def test_budget_beyond_pool_stops_before_anything_is_written(tmp_path, al_config_cli):
    _edit(al_config_cli, al__budgets=[8, 100])  # the pool holds 8 images x 8 regions = 64
    for args in (("run", "--config", al_config_cli, "--strategy", "random"), ("benchmark", al_config_cli)):
        p = activeseg(*args, "--quiet", check=False)
        assert p.returncode == 2 and "Traceback" not in p.stderr
        assert "al.budgets" in p.stderr and "100" in p.stderr and "has 64" in p.stderr
        assert not (tmp_path / "runs").exists()


def test_image_keys_of_a_camvid_preset_on_another_dataset_name_the_key(tmp_path, al_config_cli):
    _edit(al_config_cli, start_images="ralis:d_t")
    p = activeseg("run", "--config", al_config_cli, "--strategy", "random", "--quiet", check=False)
    assert p.returncode == 2 and "start_images" in p.stderr and "ralis_splits.json" in p.stderr
    assert "random:N" in p.stderr and not (tmp_path / "runs").exists()


def _user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_plot_refuses_what_is_not_a_store_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for target, fragment in ((empty, "not a run store"), (text, "not a run store"), (tmp_path, "is a folder"),
                             (tmp_path / "missing.sqlite", "not found")):
        _user_error(activeseg("plot", target, "--out", tmp_path / "report", check=False), fragment, "store.sqlite")
    assert empty.read_bytes() == b"" and text.read_text() == "hello"
    assert not (tmp_path / "report").exists()


def test_malformed_budgets_and_config_folder(tmp_path, al_config_cli):
    _user_error(activeseg("run", "--config", al_config_cli, "--budgets", "8,abc", check=False), "--budgets", "8,abc")
    _user_error(activeseg("run", "--config", al_config_cli, "--budgets", "8,-16", check=False), "positive")
    _user_error(activeseg("run", "--config", tmp_path, check=False), "is a folder")
    _user_error(activeseg("benchmark", tmp_path, check=False), "is a folder")
    assert not (tmp_path / "runs").exists()


def test_run_without_config_asks_for_one(tmp_path):
    p = subprocess.run([sys.executable, "-m", "activeseg.cli", "run"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "--config" in p.stderr and not (tmp_path / "runs").exists()


def test_evaluate_on_files_that_are_not_checkpoints(tmp_path):
    import torch

    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    for target, fragment in ((junk, "not a checkpoint"), (other, "not an activeseg model checkpoint"),
                             (tmp_path, "is a folder")):
        p = activeseg("evaluate", target, check=False)
        _user_error(p, fragment, "model.pt")
        assert "weights_only" not in p.stderr


def test_ctrl_c_exits_130_with_the_resume_hint(monkeypatch, capsys, al_config_cli):
    import pytest

    from activeseg import cli, commands

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "run_al", interrupted)
    monkeypatch.setattr(sys, "argv", ["activeseg", "run", "--config", str(al_config_cli), "--quiet"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err


def test_bad_device_and_missing_agent_stop_before_anything_is_written(tmp_path, al_config_cli):
    _user_error(activeseg("run", "--config", al_config_cli, "--strategy", "random", "--device", "tpu", check=False),
                "'tpu'", "cpu")
    p = activeseg("run", "--config", al_config_cli, "--strategy", "ralis", "--agent", tmp_path / "none.pt",
                  check=False)
    _user_error(p, "none.pt", "is not a file", "activeseg agent train")
    assert not (tmp_path / "runs").exists()


def test_config_type_and_range_mistakes_exit_2_naming_the_key_and_write_nothing(tmp_path, al_config_cli):
    for edit, fragments in (({"al__regions_per_step": "many"}, ("al.regions_per_step", "'many'", "integer")),
                            ({"start_train__batch_size": 0}, ("start_train.batch_size", "given 0", "greater than or equal to 1")),
                            ({"al__step_train_on": "everything"}, ("al.step_train_on", "'everything'")),
                            ({"val_split": "nosuch"}, ("val_split", "'nosuch'", "its splits"))):
        original = al_config_cli.read_text()
        _edit(al_config_cli, **edit)
        for args in (("run", "--config", al_config_cli, "--strategy", "random"), ("benchmark", al_config_cli)):
            _user_error(activeseg(*args, "--quiet", check=False), *fragments)
        al_config_cli.write_text(original)
    assert not (tmp_path / "runs").exists()


def test_files_where_folders_belong_and_the_reverse(tmp_path, al_config_cli, synthetic_dir):
    """--store, --out, --cache-dir and --data-root pointing at the wrong kind of path: one line, exit 2,
    nothing written, before any data is read."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    run = ("run", "--config", al_config_cli, "--strategy", "random", "--quiet")
    _user_error(activeseg(*run, "--store", notes, check=False), "not a run store", str(notes))
    _user_error(activeseg(*run, "--store", folder, check=False), "is a folder")
    _user_error(activeseg("benchmark", al_config_cli, "--store", notes, "--quiet", check=False), "not a run store")
    train = ("train", "--dataset", synthetic_dir, "--encoder", "tiny", "--height", 48, "--width", 64, "--quiet")
    _user_error(activeseg(*train, "--out", notes, check=False), "out / --out", "is a file")
    _user_error(activeseg(*train, "--out", tmp_path / "t", "--cache-dir", notes, check=False), "--cache-dir", "is a file")
    _user_error(activeseg("keys", "--out", folder, check=False), "is a folder")
    _user_error(activeseg("data", "download", "camvid", "--data-root", notes, check=False), "--data-root", "is a file")
    _user_error(activeseg("run", "--config", al_config_cli, "--budgets", "", check=False), "--budgets")
    _user_error(activeseg(*train, "--ralis-split", "d_t", "--out", tmp_path / "t", check=False), "ralis_splits.json",
                "--stems-file")
    _user_error(activeseg(*train, "--stems-file", folder, "--out", tmp_path / "t", check=False), "is a folder")
    assert notes.read_text() == "hello" and not any(folder.iterdir())
    assert not (tmp_path / "runs").exists() and not (tmp_path / "t").exists()
    p = activeseg("keys", "--out", tmp_path / "new" / "keys.md")  # a missing parent folder is created
    assert (tmp_path / "new" / "keys.md").is_file() and "written" in p.stdout
