import numpy as np
import pytest

from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.brush_rle import decode_brush, encode_brush, rle_pack, rle_unpack

SPEC_BYTES = [0, 0, 0, 24, 57, 27, 252, 96, 19, 255, 206, 1, 31, 248]
SPEC_MASK = np.array([[0, 1, 1], [0, 0, 1]], dtype=bool)


def _bits(fields):
    """An independent MSB-first writer: (value, nbits) pairs -> zero-padded byte list."""
    s = "".join(format(v, f"0{n}b") for v, n in fields)
    s += "0" * (-len(s) % 8)
    return [int(s[i : i + 8], 2) for i in range(0, len(s), 8)]


HEADER = lambda count: [(count, 32), (7, 5), (2, 4), (3, 4), (7, 4), (15, 4)]  # noqa: E731


def test_spec_example_decodes_to_the_mask_and_encodes_to_the_bytes():
    assert np.array_equal(decode_brush(SPEC_BYTES, 2, 3), SPEC_MASK)
    assert encode_brush(SPEC_MASK) == SPEC_BYTES
    assert _bits(HEADER(24) + [(1, 1), (0, 2), (3, 3), (0, 8), (1, 1), (0, 2), (7, 3), (255, 8),
                               (1, 1), (0, 2), (7, 3), (0, 8), (1, 1), (0, 2), (3, 3), (255, 8)]) == SPEC_BYTES


def test_extra_trailing_zero_byte_does_not_change_the_decode():
    assert np.array_equal(decode_brush(SPEC_BYTES + [0], 2, 3), SPEC_MASK)
    assert np.array_equal(decode_brush(bytes(SPEC_BYTES + [0, 0]), 2, 3), SPEC_MASK)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (37, 53), (180, 240), (360, 480)])
def test_encode_decode_is_the_identity_on_random_masks(shape):
    rng = np.random.default_rng(sum(shape))
    mask = rng.random(shape) < 0.3
    assert np.array_equal(decode_brush(encode_brush(mask), *shape), mask)


def test_runs_longer_than_65536_values_are_split_and_round_trip():
    rng = np.random.default_rng(0)
    mask = np.zeros((360, 480), bool)  # 691,200 values
    mask[300:340, 100:200] = rng.random((40, 100)) < 0.5
    mask[20:200, :] = True  # one run of 180*480*4 = 345,600 values
    rle = encode_brush(mask)
    assert np.array_equal(decode_brush(rle, 360, 480), mask)
    for shape in [(180, 240), (360, 480)]:
        for fill in (False, True):
            full = np.full(shape, fill)
            assert np.array_equal(decode_brush(encode_brush(full), *shape), full)
    # a single 172,800-value run: ceil(172800 / 65536) = 3 run blocks of 16-bit length + 8-bit value
    assert len(encode_brush(np.ones((180, 240), bool))) == -(-(53 + 3 * (1 + 2 + 16 + 8)) // 8)


def test_literal_blocks_decode():
    # literal of 5 values (4-bit length field), then a run of 3 (3-bit field)
    stream = _bits(HEADER(8) + [(0, 1), (1, 2), (4, 4)] + [(v, 8) for v in (9, 8, 7, 6, 5)]
                   + [(1, 1), (0, 2), (2, 3), (200, 8)])
    assert rle_unpack(stream).tolist() == [9, 8, 7, 6, 5, 200, 200, 200]


def test_rle_pack_round_trips_any_bytes():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.integers(0, 256, 500), np.full(70000, 7), rng.integers(0, 3, 999)])
    assert np.array_equal(rle_unpack(rle_pack(values)), values)


@pytest.mark.parametrize(
    "stream, match",
    [
        (SPEC_BYTES[:-3], "ends before 24 announced"),  # truncated
        ([0, 0], "ends before its announced"),  # not even a header
        (_bits(HEADER(4) + [(1, 1), (1, 2), (7, 4), (0, 8)]), "runs past"),  # run of 8 > 4 announced
        (_bits([(4, 32), (15, 5), (2, 4), (3, 4), (7, 4), (15, 4)]), "word size 16"),
        ([0, 0, 0, 300], "list of byte values"),
    ],
)
def test_damaged_rle_is_rejected(stream, match):
    with pytest.raises(DatasetError, match=match):
        rle_unpack(stream, source="export.json", item="task 7")


def test_rle_whose_length_does_not_fit_the_image_is_rejected():
    with pytest.raises(DatasetError, match=r"holds 24 values, expected 32 \(H\*W\*4\)"):
        decode_brush(SPEC_BYTES, 2, 4)
    huge = [255, 255, 255, 255, 57, 27, 252]  # announces 2**32 - 1 values: rejected before decoding
    with pytest.raises(DatasetError, match="holds 4294967295 values"):
        decode_brush(huge, 2, 3)
    with pytest.raises(ConfigError, match="brush_alpha_threshold"):
        decode_brush(SPEC_BYTES, 2, 3, alpha_threshold=0)


def test_alpha_threshold():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, 3] = [0, 40, 255]  # antialiased edge
    rle = rle_pack(rgba)
    assert decode_brush(rle, 1, 3).tolist() == [[False, True, True]]
    assert decode_brush(rle, 1, 3, alpha_threshold=128).tolist() == [[False, False, True]]
