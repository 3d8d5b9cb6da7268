"""The at-rest format of encrypted objects (strata/services/s3/encryption.py), without a server:
segments written in any feeding pattern read back in any range, and damage never reads as data."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from strata.services.s3.encryption import (
    CHUNK,
    Corrupt,
    Encryptor,
    RootKey,
    bytes_reader,
    encrypt_bytes,
    file_reader,
    read_plain,
    stored_size,
)

SIZES = [[0], [1], [CHUNK - 1], [CHUNK], [CHUNK + 1], [3 * CHUNK + 5], [150_000, 150_000, 777], [5, CHUNK, 1]]


def read_all(
    stored: bytes, keys: list[bytes], sizes: list[int], first: int, last: int, group: int = 16
) -> bytes:
    return b"".join(read_plain(bytes_reader(stored), keys, sizes, first, last, group))


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("sizes", SIZES)
def test_any_range_reads_back(layers: int, sizes: list[int]) -> None:
    rng = random.Random(sum(sizes) * 10 + layers)
    keys = [os.urandom(32) for _ in range(layers)]
    parts = [rng.randbytes(n) for n in sizes]
    stored = b"".join(encrypt_bytes(keys, p) for p in parts)
    assert len(stored) == stored_size(sizes, layers)
    plain = b"".join(parts)
    if not plain:
        assert read_all(stored, keys, sizes, 0, -1) == b""
        return
    for _ in range(30):
        first = rng.randrange(len(plain))
        last = rng.randrange(first, len(plain))
        group = rng.choice([1, 2, 16])
        assert read_all(stored, keys, sizes, first, last, group) == plain[first : last + 1]


def test_feeding_in_any_pieces_gives_a_segment_that_reads_back() -> None:
    rng = random.Random(7)
    keys = [os.urandom(32)]
    data = rng.randbytes(5 * CHUNK + 333)
    for _ in range(10):
        enc, out, pos = Encryptor(keys), [], 0
        while pos < len(data):
            step = rng.choice([1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
            out.append(enc.feed(data[pos : pos + step]))
            pos += step
        out.append(enc.finish())
        stored = b"".join(out)
        assert read_all(stored, keys, [len(data)], 0, len(data) - 1) == data


def test_damage_a_wrong_key_or_a_cut_never_reads_as_data() -> None:
    keys = [os.urandom(32)]
    data = os.urandom(3 * CHUNK)
    stored = encrypt_bytes(keys, data)
    flipped = bytearray(stored)
    flipped[CHUNK + 100] ^= 1
    with pytest.raises(Corrupt):
        read_all(bytes(flipped), keys, [len(data)], 0, len(data) - 1)
    with pytest.raises(Corrupt):
        read_all(stored, [os.urandom(32)], [len(data)], 0, 10)
    # A file cut at a chunk boundary: its last whole chunk was not sealed as the last.
    cut = stored[: len(stored) - (CHUNK + 16)]
    with pytest.raises(Corrupt):
        read_all(cut, keys, [2 * CHUNK], 0, 2 * CHUNK - 1)
    # Chunks swapped between positions do not open (the index is the nonce).
    a, b = 16, 16 + CHUNK + 16
    swapped = stored[:a] + stored[b : b + CHUNK + 16] + stored[a:b] + stored[b + CHUNK + 16 :]
    with pytest.raises(Corrupt):
        read_all(swapped, keys, [len(data)], 0, CHUNK - 1)


def test_file_reads_and_the_root_key(tmp_path: Path) -> None:
    keys = [os.urandom(32)]
    data = os.urandom(2 * CHUNK + 9)
    path = tmp_path / "blob"
    path.write_bytes(encrypt_bytes(keys, data))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert b"".join(read_plain(file_reader(fd), keys, [len(data)], 5, len(data) - 2, 1)) == data[5:-1]
    finally:
        os.close(fd)
    root = RootKey.load(tmp_path / "root.key")
    assert (tmp_path / "root.key").stat().st_mode & 0o777 == 0o600
    sealed = root.wrap(keys[0])
    assert RootKey.load(tmp_path / "root.key").unwrap(sealed) == keys[0]  # the same key after a restart
    with pytest.raises(Corrupt):
        RootKey.load(tmp_path / "other.key").unwrap(sealed)
