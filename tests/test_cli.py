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

    ev = json.loads(activeseg("evaluate", out / "model.pt", "--split", "val", "--json").stdout)
    assert abs(ev["miou"] - metrics["val"]["miou"]) < 1e-6  # same model, same data, same number
    ev_test = activeseg("evaluate", out / "model.pt", "--split", "test").stdout
    assert "mIoU" in ev_test and "background" in ev_test

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
    assert "(n=1)" in (tmp_path / "report" / "results.md").read_text()
    evals = json.loads((tmp_path / "report" / "evaluations.json").read_text())
    assert {(e["budget"], e["split"]) for e in evals} == {(8, "val"), (8, "test"), (16, "val"), (16, "test")}


def test_unknown_strategy_lists_valid_names(al_config_cli):
    p = activeseg("run", "--config", al_config_cli, "--strategy", "coreset", check=False)
    assert p.returncode == 2 and "valid names" in p.stderr
