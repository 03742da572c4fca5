"""The day -> dusk setting (spec ripu.md §6-§7) on the real CamVid stems (skipped when the data is absent)."""

from activeseg.data.camvid import ralis_splits
from activeseg.data.domains import camvid_day_dusk_from_dir, ralis_day_only


def test_day_dusk_roles_have_the_spec_sizes(camvid_dir):
    split = camvid_day_dusk_from_dir(camvid_dir)
    assert split.summary() == {"source": 406, "source_train": 305, "source_val": 101, "target_pool": 62,
                               "target_test": 62, "unused": 171, "unused_test": 171}
    train = split.source_stems("train")
    assert sum(s.startswith("0006R0") for s in train) == 101 and sum(s.startswith("0016E5") for s in train) == 204
    assert all(stem.startswith("Seq05VD") for _, stem in split.unused)
    source_stems = {stem for _, stem in split.source}
    assert not source_stems & (set(split.target_pool) | set(split.target_test))
    assert not set(split.target_pool) & set(split.target_test)


def test_day_only_ralis_split_has_seen_no_dusk_label(camvid_dir):
    original = ralis_splits(camvid_dir)
    assert original == ralis_splits()  # the dataset's file and the package's copy agree
    assert [sum(s.startswith("0001TP") for s in original[k]) for k in ("d_s", "d_t", "d_v")] == [2, 18, 42]
    day = ralis_day_only(original)
    assert [len(day[k]) for k in ("d_s", "d_t", "d_v")] == [10, 82, 255]
    assert day["d_s"][-2:] == ["0006R0_f00930", "0006R0_f00990"]
    assert set(day["d_s"]) == {s for s in original["d_s"] if not s.startswith("0001TP")} | {
        "0006R0_f00930", "0006R0_f00990"}
    # the agent trains on source images only, and never on T_u or T_test
    split = camvid_day_dusk_from_dir(camvid_dir)
    assert set(day["d_s"]) | set(day["d_t"]) <= set(split.source_stems("train"))


def test_day_only_split_forms_resolve_on_camvid(camvid_dir):
    """`ralis_day_only:d_t|d_s` as config values: the agent's pool and state sets without dusk images."""
    from activeseg.data.folder import scan_split
    from activeseg.data.subsets import resolve_images

    stems = [s for s, _, _ in scan_split(camvid_dir / "train")]
    d_t = resolve_images("ralis_day_only:d_t", "pool_images", camvid_dir, stems)
    d_s = resolve_images("ralis_day_only:d_s", "state_images", camvid_dir, stems)
    assert len(d_t) == 82 and len(d_s) == 10
    assert not any(s.startswith("0001TP") for s in d_t + d_s)
    assert {"0006R0_f00930", "0006R0_f00990"} <= set(d_s)
