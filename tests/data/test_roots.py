import pytest

from activeseg.data import roots
from activeseg.data.roots import resolve_dataset_dir
from activeseg.errors import DatasetError


def _dataset(root, name="ds"):
    (root / name).mkdir(parents=True)
    (root / name / "classes.json").write_text('{"classes": ["a"]}')
    return root / name


def test_flag_beats_environment(tmp_path, monkeypatch):
    flag, env = tmp_path / "flag", tmp_path / "env"
    _dataset(flag), _dataset(env)
    monkeypatch.setenv(roots.ENV_VAR, str(env))
    assert resolve_dataset_dir("ds", flag) == flag / "ds"
    assert resolve_dataset_dir("ds") == env / "ds"


def test_fallbacks_shared_then_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(roots.ENV_VAR, raising=False)
    project = tmp_path / "proj" / "main"
    monkeypatch.setattr(roots, "PROJECT_ROOT", project)
    monkeypatch.setattr(roots, "user_data_dir", lambda: tmp_path / "cache")
    _dataset(tmp_path / "cache")
    assert resolve_dataset_dir("ds") == tmp_path / "cache" / "ds"
    _dataset(tmp_path / "proj" / "shared" / "data")
    assert resolve_dataset_dir("ds") == tmp_path / "proj" / "shared" / "data" / "ds"


def test_dataset_given_as_a_folder(tmp_path):
    d = _dataset(tmp_path)
    assert resolve_dataset_dir(str(d)) == d


def test_not_found_lists_places_and_download_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv(roots.ENV_VAR, str(tmp_path / "nothing"))
    with pytest.raises(DatasetError) as info:
        resolve_dataset_dir("camvid")
    msg = str(info.value)
    assert str(tmp_path / "nothing" / "camvid") in msg and "activeseg data download camvid" in msg


def test_folder_without_classes_json_says_so(tmp_path, monkeypatch):
    from activeseg.data.roots import resolve_dataset_dir
    from activeseg.errors import DatasetError

    (tmp_path / "mydata" / "train" / "images").mkdir(parents=True)
    for name in (str(tmp_path / "mydata"), "mydata"):
        monkeypatch.setenv("ACTIVESEG_DATA", str(tmp_path))
        with pytest.raises(DatasetError) as info:
            resolve_dataset_dir(name)
        msg = str(info.value)
        assert "has no classes.json" in msg and "not found" not in msg and msg.count(str(tmp_path / "mydata")) == 1
    with pytest.raises(DatasetError, match="dataset folder not found"):
        resolve_dataset_dir(str(tmp_path / "elsewhere"))
