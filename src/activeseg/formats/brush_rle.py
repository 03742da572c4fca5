"""Label Studio brush RLE: the bit-packed ``rle-pack`` stream of a full-image RGBA buffer (spec §3).

A brush layer is ``H*W*4`` bytes, row-major, channels R, G, B, A; it is not COCO RLE. Bit stream, most
significant bit first::

    header   32 bits value count | 5 bits word size - 1 | 4 x 4 bits run-length field widths - 1
    block    1 bit flag (1 = run, 0 = literal) | 2 bits width index | length - 1 in that width
             run: one word repeated `length` times;  literal: `length` words
    padding  zero bits up to a whole byte (maybe one extra zero byte); decoders stop at the count

Word size 8, widths 3, 4, 8 and 16 bits. A pixel is painted when its alpha reaches a threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from activeseg.errors import ConfigError, DatasetError

WORD_SIZE = 8
RUN_WIDTHS = (3, 4, 8, 16)  # bits of (length - 1); the longest block is 2**16 values
_MAX_BLOCK = 1 << RUN_WIDTHS[-1]
_DEFAULT_SOURCE = "<Label Studio export>"


def _pack_bits(values: np.ndarray, widths: np.ndarray) -> list[int]:
    """Writes each value in its number of bits, MSB first, zero-padded to whole bytes."""
    total = int(widths.sum())
    field = np.repeat(np.arange(len(widths)), widths)  # field of every output bit, [total]
    first_bit = np.cumsum(widths) - widths
    k = np.arange(total) - first_bit[field]  # bit position inside its field, 0 = MSB
    bits = (values[field] >> (widths[field] - 1 - k)) & 1
    return np.packbits(bits.astype(np.uint8)).tolist()


def rle_pack(values: np.ndarray) -> list[int]:
    """Encodes 8-bit values as an rle-pack byte list.

    Runs of two or more equal values become run blocks (split every 65,536 values), single values
    literal blocks of length 1; each block uses the smallest length field that fits.

    Shape:
        values: any; flattened in C order.
    """
    v = np.asarray(values).ravel()
    if v.size and (v.min() < 0 or v.max() > 255):
        raise ValueError("rle_pack encodes 8-bit values (0..255)")
    v = v.astype(np.int64)
    n = v.size
    starts = np.concatenate([[0], np.flatnonzero(v[1:] != v[:-1]) + 1]) if n else np.zeros(0, np.int64)
    lengths = np.diff(np.append(starts, n))
    pieces = -(-lengths // _MAX_BLOCK)  # blocks per run
    block_len = np.full(int(pieces.sum()), _MAX_BLOCK, dtype=np.int64)
    block_len[np.cumsum(pieces) - 1] = lengths - (pieces - 1) * _MAX_BLOCK  # remainder last
    block_val = np.repeat(v[starts], pieces)
    width_idx = np.searchsorted([1 << w for w in RUN_WIDTHS], block_len)  # first width with len <= 2**w
    blocks = np.stack(
        [(block_len >= 2).astype(np.int64), width_idx, block_len - 1, block_val], axis=1
    )  # [B, 4] fields: flag, width index, length - 1, value
    block_widths = np.stack(
        [np.ones_like(width_idx), np.full_like(width_idx, 2), np.asarray(RUN_WIDTHS)[width_idx],
         np.full_like(width_idx, WORD_SIZE)], axis=1
    )  # [B, 4]
    header = np.array([n, WORD_SIZE - 1, *(w - 1 for w in RUN_WIDTHS)], dtype=np.int64)
    header_widths = np.array([32, 5, 4, 4, 4, 4], dtype=np.int64)
    return _pack_bits(
        np.concatenate([header, blocks.ravel()]), np.concatenate([header_widths, block_widths.ravel()])
    )


class _BitReader:
    """Reads MSB-first bit fields from a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.size = 8 * len(data)

    def read(self, nbits: int) -> int:
        end = self.pos + nbits
        if end > self.size:
            raise EOFError
        first, last = self.pos >> 3, (end + 7) >> 3
        chunk = int.from_bytes(self.data[first:last], "big")
        self.pos = end
        return (chunk >> (8 * last - end)) & ((1 << nbits) - 1)

    def read_bytes(self, count: int) -> np.ndarray:
        """``count`` 8-bit words starting at any bit position."""
        end = self.pos + 8 * count
        if end > self.size:
            raise EOFError
        first, last = self.pos >> 3, (end + 7) >> 3
        bits = np.unpackbits(np.frombuffer(self.data[first:last], dtype=np.uint8))
        offset = self.pos - 8 * first
        self.pos = end
        return np.packbits(bits[offset : offset + 8 * count])


def _as_bytes(rle: object, source: Path | str, item: str) -> bytes:
    remedy = "export again as Label Studio JSON; a brush result's value.rle must be a list of 0-255 integers"
    if isinstance(rle, (bytes, bytearray)):
        return bytes(rle)
    if not isinstance(rle, list) or not all(isinstance(b, int) and 0 <= b <= 255 for b in rle):
        raise DatasetError(source, f"{item}: brush RLE is not a list of byte values", remedy)
    return bytes(rle)


def rle_unpack(
    rle: Sequence[int] | bytes,
    *,
    expected_count: int | None = None,
    source: Path | str = _DEFAULT_SOURCE,
    item: str = "brush RLE",
) -> np.ndarray:
    """Decodes an rle-pack byte list into its announced number of 8-bit values (uint8).

    Args:
        rle: the byte values.
        expected_count: when given, the announced count must equal it (checked before decoding).
        source: the export file, for error messages.
        item: names the task and result in error messages.

    Raises:
        DatasetError: not bytes, a word size other than 8, an unexpected count, a stream that ends
            before the announced count, or a block that runs past it.
    """
    reader = _BitReader(_as_bytes(rle, source, item))
    remedy = "re-export the task from Label Studio; the brush stroke's RLE is damaged"
    count = "its"
    try:
        count = reader.read(32)
        word_size = reader.read(5) + 1
        widths = [reader.read(4) + 1 for _ in range(4)]
        if expected_count is not None and count != expected_count:
            raise DatasetError(
                source, f"{item}: the RLE holds {count} values, expected {expected_count} (H*W*4)",
                "check that original_width/original_height match the image the task shows",
            )
        if word_size != WORD_SIZE:
            raise DatasetError(source, f"{item}: word size {word_size} bits, expected 8", remedy)
        out = np.empty(count, dtype=np.uint8)
        i = 0
        while i < count:
            is_run = reader.read(1)
            length = reader.read(widths[reader.read(2)]) + 1
            if i + length > count:
                raise DatasetError(
                    source, f"{item}: a block of {length} values runs past the announced {count}", remedy
                )
            out[i : i + length] = reader.read(WORD_SIZE) if is_run else reader.read_bytes(length)
            i += length
    except EOFError:
        raise DatasetError(
            source, f"{item}: the stream ends before {count} announced values", remedy
        ) from None
    return out


def check_alpha_threshold(alpha_threshold: int) -> None:
    """Raises ConfigError unless the brush alpha threshold is in 1..255."""
    if not 1 <= alpha_threshold <= 255:
        raise ConfigError(f"brush_alpha_threshold is {alpha_threshold}; choose a value in 1..255")


def encode_brush(mask: np.ndarray) -> list[int]:
    """Brush RLE of a binary mask: 255 (all four RGBA channels) where painted, 0 elsewhere.

    Shape:
        mask: ``[H, W]`` bool.
    """
    rgba = np.repeat(np.where(np.asarray(mask, dtype=bool), 255, 0).ravel(), 4)  # [H*W*4]
    return rle_pack(rgba)


def decode_brush(
    rle: Sequence[int] | bytes,
    height: int,
    width: int,
    *,
    alpha_threshold: int = 1,
    source: Path | str = _DEFAULT_SOURCE,
    item: str = "brush RLE",
) -> np.ndarray:
    """Painted pixels of one brush layer: alpha >= ``alpha_threshold``.

    Raises:
        ConfigError: ``alpha_threshold`` outside 1..255.
        DatasetError: the RLE is damaged or does not hold ``height * width * 4`` values.

    Shape:
        returns ``[H, W]`` bool.
    """
    check_alpha_threshold(alpha_threshold)
    values = rle_unpack(rle, expected_count=height * width * 4, source=source, item=item)
    return values.reshape(height, width, 4)[..., 3] >= alpha_threshold  # [H, W, RGBA] -> alpha
