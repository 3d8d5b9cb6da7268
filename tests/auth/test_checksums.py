"""strata.protocol.checksums agrees with botocore's own checksum implementations."""

from __future__ import annotations

import base64
import os

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from strata.protocol.checksums import (
    HEADER_BY_ALGORITHM,
    checksum_b64,
    composite_checksum,
    is_valid_b64,
    new_checksum,
)

BOTOCORE = {
    "CRC32": Crc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}


@pytest.mark.parametrize("algorithm", sorted(BOTOCORE))
@pytest.mark.parametrize("size", [0, 1, 1000, 1 << 20])
def test_matches_botocore(algorithm: str, size: int) -> None:
    data = os.urandom(size)
    theirs = BOTOCORE[algorithm]()
    theirs.update(data)
    ours = new_checksum(algorithm.lower())
    # Incremental updates with bytes, bytearray and memoryview pieces.
    third = size // 3
    ours.update(data[:third])
    ours.update(bytearray(data[third : 2 * third]))
    ours.update(memoryview(data)[2 * third :])
    assert ours.b64digest() == theirs.b64digest()
    assert checksum_b64(algorithm, data) == theirs.b64digest()
    assert is_valid_b64(algorithm, ours.b64digest())


def test_known_values() -> None:
    assert checksum_b64("CRC32C", b"a" * 66560) == "sOO8/Q=="  # the S3 docs' trailer example
    assert HEADER_BY_ALGORITHM["CRC64NVME"] == "x-amz-checksum-crc64nvme"
    assert not is_valid_b64("CRC32", "not base64!")
    assert not is_valid_b64("SHA256", base64.b64encode(b"short").decode())


def test_composite_checksum() -> None:
    parts = [checksum_b64("CRC32", b"part1"), checksum_b64("CRC32", b"part2")]
    raw = b"".join(base64.b64decode(p) for p in parts)
    assert composite_checksum("CRC32", parts) == checksum_b64("CRC32", raw) + "-2"
