import shutil

import pytest

from activeseg.data.domains import (
    DomainSplit,
    camvid_day_dusk,
    camvid_day_dusk_from_dir,
    grid_region_budget,
    pixel_budget,
    pixel_fraction,
    ralis_day_only,
)
from activeseg.errors import ConfigError, DatasetError

# a miniature CamVid: every sequence prefix, in the splits where SegNet's CamVid has it, plus strays
STEMS = {
    "train": ["0016E5_00390", "0001TP_006690", "0006R0_f00930", "0001TP_006720", "0016E5_00420"],
    "val": ["0016E5_07959", "0001TP_999999"],
    "test": ["Seq05VD_f00000", "0001TP_008550", "0016E5_11111", "Seq05VD_f00030"],
}


def test_roles_follow_the_stem_prefixes():
    split = camvid_day_dusk(STEMS)
    assert split.source == (("train", "0006R0_f00930"), ("train", "0016E5_00390"), ("train", "0016E5_00420"),
                            ("val", "0016E5_07959"))
    assert split.target_pool == ("0001TP_006690", "0001TP_006720")
    assert split.target_test == ("0001TP_008550",)
    # Seq05VD, a day-time stem in test and a dusk stem in val fit no role
    assert split.unused == (("val", "0001TP_999999"), ("test", "0016E5_11111"), ("test", "Seq05VD_f00000"),
                            ("test", "Seq05VD_f00030"))
    assert split.source_stems("val") == ("0016E5_07959",)
    assert split.summary() == {"source": 4, "target_pool": 2, "target_test": 1, "unused": 4,
                               "source_train": 3, "source_val": 1, "unused_test": 3, "unused_val": 1}


def test_extra_splits_are_unused_and_every_stem_has_one_role():
    split = camvid_day_dusk({**STEMS, "extra": ["0016E5_00001"]})
    assert ("extra", "0016E5_00001") in split.unused
    n_stems = sum(len(v) for v in STEMS.values()) + 1
    assert sum(split.summary()[k] for k in ("source", "target_pool", "target_test", "unused")) == n_stems


def test_missing_split_names_the_remedy():
    with pytest.raises(DatasetError, match=r"\['val'\] missing.*activeseg data download camvid"):
        camvid_day_dusk({"train": STEMS["train"], "test": STEMS["test"]})


@pytest.mark.parametrize("stems, role", [
    ({**STEMS, "train": [s for s in STEMS["train"] if not s.startswith("0001TP")]}, "target pool"),
    ({**STEMS, "test": [s for s in STEMS["test"] if not s.startswith("0001TP")]}, "target test"),
    ({"train": ["0001TP_1"], "val": ["Seq05VD_1"], "test": ["0001TP_2"]}, "source"),
])
def test_empty_role_is_an_error(stems, role):
    with pytest.raises(DatasetError, match=f"no image for the role.*{role}.*original file stems"):
        camvid_day_dusk(stems)


def test_domain_split_rejects_an_image_in_two_roles():
    with pytest.raises(ConfigError, match="both source and target_pool"):
        DomainSplit(source=(("train", "a"),), target_pool=("a",), target_test=("b",))


def test_from_dir_reads_the_stems_of_the_folder(tmp_path):
    for split, stems in STEMS.items():
        for kind, suffix in (("images", ".jpg"), ("labels", ".png")):
            (tmp_path / split / kind).mkdir(parents=True, exist_ok=True)
            for stem in stems:
                (tmp_path / split / kind / f"{stem}{suffix}").touch()  # never decoded
    assert camvid_day_dusk_from_dir(tmp_path) == camvid_day_dusk(STEMS)
    shutil.rmtree(tmp_path / "test")
    with pytest.raises(DatasetError, match="test: split folder not found"):
        camvid_day_dusk_from_dir(tmp_path)


RALIS = {
    "d_s": ["0001TP_000010", "0016E5_00100", "0001TP_000020", "0006R0_f09000"],
    "d_t": ["0001TP_000030", "0006R0_f01000", "0016E5_00200"],
    "d_v": ["0016E5_00300", "0001TP_000040", "0006R0_f00500", "0006R0_f00400", "0016E5_00050"],
}


def test_day_only_drops_dusk_and_refills_the_state_set_from_d_v():
    out = ralis_day_only(RALIS)
    assert out["d_t"] == ["0006R0_f01000", "0016E5_00200"]
    # |d_s| kept: the two dusk stems give way to the first two day-time stems of d_v in sorted order
    assert out["d_s"] == ["0016E5_00100", "0006R0_f09000", "0006R0_f00400", "0006R0_f00500"]
    # the replacements leave d_v; its dusk stem stays (d_v is not the pool in the domain-shift setting)
    assert out["d_v"] == ["0016E5_00300", "0001TP_000040", "0016E5_00050"]
    assert not any(s.startswith("0001TP") for s in out["d_s"] + out["d_t"])
    everything = out["d_s"] + out["d_t"] + out["d_v"]
    assert len(everything) == len(set(everything)) == 12 - 3  # less the 3 dusk stems of d_s, d_t
    assert RALIS["d_s"][0] == "0001TP_000010"  # the input is not modified


def test_day_only_without_dusk_stems_changes_nothing():
    day = {k: [s for s in v if not s.startswith("0001TP")] for k, v in RALIS.items()}
    assert ralis_day_only(day) == day


@pytest.mark.parametrize("splits, match", [
    ({"d_s": [], "d_t": ["a"]}, r"\['d_v'\] missing"),
    ({**RALIS, "d_t": ["0001TP_1"]}, "d_t has no day-time stem"),
    ({**RALIS, "d_v": ["0006R0_f1", "0001TP_2"]}, "2 0001TP stems to replace but d_v has only 1"),
])
def test_day_only_errors_name_the_variant(splits, match):
    with pytest.raises(ConfigError, match=match) as info:
        ralis_day_only(splits)
    assert str(info.value).startswith("split_variant: day_only")


# spec ripu.md §7: RIPU budget -> target pixels of T_u (62 images, 360 x 480) -> grid regions (24 per image)
BUDGET_TABLE = [(220, 235_699, 33, 2.22), (500, 535_680, 74, 4.97), (1000, 1_071_360, 149, 10.01)]


@pytest.mark.parametrize("ratio_bp, pixels, regions, percent", BUDGET_TABLE)
def test_budget_table_of_the_spec(ratio_bp, pixels, regions, percent):
    assert pixel_budget(ratio_bp) == pixels
    assert grid_region_budget(ratio_bp) == regions
    assert round(100 * pixel_fraction(regions), 2) == percent


def test_budget_rounding_is_exact():
    assert pixel_budget(220) == 235_699  # 235,699.2
    assert pixel_budget(10_000) == 62 * 360 * 480
    assert pixel_fraction(1488) == 1.0 and pixel_fraction(62) == pytest.approx(1 / 24)
    # 1,488 x 0.0001 x 5 = 0.744 -> 1; 1 region x 12.5 % of 4 = 0.5: ties round up
    assert grid_region_budget(5) == 1
    assert grid_region_budget(1250, pool_images=1, regions_per_image=4) == 1
    assert grid_region_budget(3750, pool_images=1, regions_per_image=4) == 2  # 1.5 -> 2
    # the CPU profile (180 x 240) has the same region budget: 45 x 40 cells are still 1/24 of an image
    assert pixel_budget(500, image_size=(180, 240)) == 535_680 // 4


@pytest.mark.parametrize("bad", [0, -5, 10_001, 2.2, True])
def test_budget_ratio_must_be_basis_points(bad):
    with pytest.raises(ConfigError, match="basis points"):
        grid_region_budget(bad)
    with pytest.raises(ConfigError, match="basis points"):
        pixel_budget(bad)
