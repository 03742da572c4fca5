import pytest

from activeseg.data.subsets import resolve_images
from activeseg.errors import ConfigError

STEMS = [f"img{i}" for i in range(10)]


def test_random_is_seeded_sorted_and_avoids_taken(tmp_path):
    a = resolve_images("random:4", "start_images", tmp_path, STEMS, seed=3)
    assert a == resolve_images("random:4", "start_images", tmp_path, STEMS, seed=3) and a == sorted(a)
    b = resolve_images("random:6", "state_images", tmp_path, STEMS, set(a), seed=3)
    assert not set(a) & set(b) and len(b) == 6
    assert resolve_images("rest", "pool_images", tmp_path, STEMS, set(a) | set(b)) == []
    assert resolve_images("rest", "pool_images", tmp_path, STEMS, set(a)) == b  # sorted complement


@pytest.mark.parametrize("spec, match", [
    ("random:0", "between 1 and the 10"), ("random:11", "between 1 and the 10"), ("random:x", "e.g. random:10"),
    ("ralis:d_x", "unknown RALIS split"), ("ralis:d_t", "no ralis_splits.json"), ("nofile.txt", "neither a file"),
])
def test_bad_specs_name_the_key(tmp_path, spec, match):
    with pytest.raises(ConfigError, match=match) as info:
        resolve_images(spec, "pool_images", tmp_path / "mydata", STEMS)
    assert str(info.value).startswith("pool_images:")


def test_stems_file_must_name_split_images(tmp_path):
    (tmp_path / "list.txt").write_text("img1\n# comment\nimg99\n")
    with pytest.raises(ConfigError, match=r"1 of the 2 images .* not in the split .*img99"):
        resolve_images(str(tmp_path / "list.txt"), "start_images", tmp_path, STEMS)


def test_camvid_folder_may_use_the_packaged_split(tmp_path):
    camvid = tmp_path / "camvid"
    from activeseg.data.camvid import ralis_splits

    every = [s for part in ralis_splits().values() for s in part]
    assert len(resolve_images("ralis:d_s", "state_images", camvid, every)) == 10
