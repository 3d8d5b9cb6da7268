"""Incremental checksums as S3 names them: CRC32, CRC32C, CRC64NVME, SHA1, SHA256, and the newer
SHA512, MD5, XXHASH64, XXHASH3 and XXHASH128.

One hasher interface for every algorithm (`update(data)`, `digest()`, `b64digest()`), so the
aws-chunked decoder, PutObject/UploadPart and multipart completion compute checksums the same
way. Values travel base64-encoded, as in the `x-amz-checksum-*` headers and trailers.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

import crc32c as _crc32c
import xxhash
from awscrt import checksums as _crt  # type: ignore[import-untyped]


class Checksum(Protocol):
    """An incremental hasher; `digest()` may be called at any time and does not reset it."""

    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def digest(self) -> bytes: ...

    def b64digest(self) -> str: ...


class _Crc(ABC):
    """CRCs kept as an int; the digest is the big-endian value (what S3 base64-encodes)."""

    __slots__ = ("value",)
    width = 4

    def __init__(self) -> None:
        self.value = 0

    @abstractmethod
    def _step(self, data: bytes | bytearray | memoryview, value: int) -> int:
        ...

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = self._step(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(self.width, "big")

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


class Crc32(_Crc):
    __slots__ = ()

    def _step(self, data: bytes | bytearray | memoryview, value: int) -> int:
        return zlib.crc32(data, value)


class Crc32C(_Crc):
    __slots__ = ()

    def _step(self, data: bytes | bytearray | memoryview, value: int) -> int:
        return _crc32c.crc32c(data, value)


class Crc64Nvme(_Crc):
    __slots__ = ()
    width = 8

    def _step(self, data: bytes | bytearray | memoryview, value: int) -> int:
        # awscrt wants a bytes-like object it can read without copying; memoryview works.
        return _crt.crc64nvme(data, value)


class _Hashlib:
    __slots__ = ("_h",)
    name = ""

    def __init__(self) -> None:
        self._h = hashlib.new(self.name)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def b64digest(self) -> str:
        return base64.b64encode(self._h.digest()).decode("ascii")


class Sha1(_Hashlib):
    __slots__ = ()
    name = "sha1"


class Sha256(_Hashlib):
    __slots__ = ()
    name = "sha256"


class Sha512(_Hashlib):
    __slots__ = ()
    name = "sha512"


class Md5(_Hashlib):
    __slots__ = ()
    name = "md5"


class _XXHash(_Hashlib):
    """The xxhash package's hashers share hashlib's interface (canonical big-endian digests)."""

    __slots__ = ()
    factory: Callable[[], Any]

    def __init__(self) -> None:
        self._h = type(self).factory()


class XXHash64(_XXHash):
    __slots__ = ()
    factory = xxhash.xxh64


class XXHash3(_XXHash):
    __slots__ = ()
    factory = xxhash.xxh3_64


class XXHash128(_XXHash):
    __slots__ = ()
    factory = xxhash.xxh3_128


# Algorithm names as S3 spells them in ChecksumAlgorithm / x-amz-checksum-algorithm.
ALGORITHMS: dict[str, type] = {
    "CRC32": Crc32,
    "CRC32C": Crc32C,
    "CRC64NVME": Crc64Nvme,
    "SHA1": Sha1,
    "SHA256": Sha256,
    "SHA512": Sha512,
    "MD5": Md5,
    "XXHASH64": XXHash64,
    "XXHASH3": XXHash3,
    "XXHASH128": XXHash128,
}
# The header (and trailer) carrying each algorithm's value, and back.
HEADER_BY_ALGORITHM: dict[str, str] = {name: f"x-amz-checksum-{name.lower()}" for name in ALGORITHMS}
ALGORITHM_BY_HEADER: dict[str, str] = {h: name for name, h in HEADER_BY_ALGORITHM.items()}
# Length of each algorithm's raw digest, to validate base64 values clients send.
DIGEST_SIZE: dict[str, int] = {
    "CRC32": 4,
    "CRC32C": 4,
    "CRC64NVME": 8,
    "SHA1": 20,
    "SHA256": 32,
    "SHA512": 64,
    "MD5": 16,
    "XXHASH64": 8,
    "XXHASH3": 8,
    "XXHASH128": 16,
}


def new_checksum(algorithm: str) -> Checksum:
    """A fresh hasher for `algorithm` (case-insensitive S3 name, e.g. "crc32c"); KeyError if unknown."""
    return ALGORITHMS[algorithm.upper()]()


def checksum_b64(algorithm: str, data: bytes | bytearray | memoryview) -> str:
    """The base64 checksum of `data` in one call."""
    h = new_checksum(algorithm)
    h.update(data)
    return h.b64digest()


def is_valid_b64(algorithm: str, value: str) -> bool:
    """Whether `value` is a well-formed base64 digest for `algorithm` (S3 rejects others)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        return False
    return len(raw) == DIGEST_SIZE[algorithm.upper()]


def composite_checksum(algorithm: str, part_checksums_b64: list[str]) -> str:
    """S3's multipart "checksum of checksums": hash of the parts' raw digests, then `-<N>`."""
    h = new_checksum(algorithm)
    for value in part_checksums_b64:
        h.update(base64.b64decode(value))
    return f"{h.b64digest()}-{len(part_checksums_b64)}"
