"""Label Studio's brush RLE: the `rle-pack` bit stream (thi.ng/umbrella) over RGBA bytes.

Label Studio stores a brush mask as the flattened `(H, W, 4)` RGBA image, encoded as: 32 bits
value count, 5 bits `word_size - 1`, four 4-bit `rle_size - 1`, then chunks. A chunk starts
with a flag bit: 1 = a run (2-bit size index, `length - 1` in that many bits, one word),
0 = literals (2-bit size index, `count - 1`, then `count` words). The stream is padded with 0
bits to whole bytes and stored as a list of byte values. Label Studio reads the mask from the
alpha channel (`decode(rle).reshape(H, W, 4)[..., 3]`), so each mask pixel is repeated 4 times.
"""

from __future__ import annotations

import numpy as np

WORD_SIZE = 8
RLE_SIZES = (3, 4, 8, 16)  # what label-studio-converter writes; any reader takes them from the header


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths and run values of a 1-D array."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), values
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [values.size]]))
    return lengths, values[starts]


def encode_rle(values: np.ndarray) -> list[int]:
    """rle-pack encoding of a 1-D uint8 array (runs only; a run of 1 is a 1-word run)."""
    values = np.asarray(values, dtype=np.uint8).ravel()
    if values.size >= 1 << 32:
        raise ValueError(f"{values.size} values do not fit rle-pack's 32-bit count")
    bits = [f"{values.size:032b}", f"{WORD_SIZE - 1:05b}", *(f"{size - 1:04b}" for size in RLE_SIZES)]
    longest = 1 << RLE_SIZES[-1]
    for length, value in zip(*_runs(values), strict=True):
        word = f"{int(value):08b}"
        remaining = int(length)
        while remaining > 0:
            chunk = min(remaining, longest)
            index = next(i for i, size in enumerate(RLE_SIZES) if chunk <= 1 << size)
            bits.append(f"1{index:02b}{chunk - 1:0{RLE_SIZES[index]}b}{word}")
            remaining -= chunk
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return list(int(stream, 2).to_bytes(len(stream) // 8, "big"))


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """A binary `(H, W)` mask as Label Studio brush RLE (alpha 255 inside, 0 outside)."""
    alpha = np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8)
    return encode_rle(np.repeat(alpha.ravel(), 4))
