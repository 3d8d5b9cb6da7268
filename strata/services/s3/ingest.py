"""Request bodies to blobs: verified as the bytes pass, published only once every check passed.

A small body is kept in memory; a large one streams to a temp file through a `Spool` (see
spool.py: hashing and writing run side by side, never more than two batches in memory). The
temp file is published (fsync + atomic rename) only after size, Content-MD5 and flexible
checksums have been checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from awscrt import checksums as _crt  # type: ignore[import-untyped]

from strata.affinity import unpin_thread
from strata.protocol.checksums import ALGORITHM_BY_HEADER, ALGORITHMS, DIGEST_SIZE, Checksum, new_checksum
from strata.protocol.errors import ServiceError
from strata.protocol.http import BodyStream
from strata.services.s3.encryption import Encryptor, encrypt_bytes
from strata.services.s3.spool import BATCH, Spool
from strata.storage import BlobStore

# Threads for hashing/writing; big enough for many concurrent uploads on a small machine. They
# may run on every CPU: the serving thread that creates them is pinned to one (strata.affinity),
# and hashing beside the event loop, not in turns with it, is the point of these threads.
_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="s3-ingest", initializer=unpin_thread)

CHECKSUM_ALGORITHMS = tuple(ALGORITHMS)
CRC_BYTES = {a: n for a, n in DIGEST_SIZE.items() if a.startswith("CRC")}


def new_hasher(algorithm: str) -> Checksum:
    """An incremental hasher for one flexible checksum algorithm (InvalidRequest if unknown)."""
    try:
        return new_checksum(algorithm)
    except KeyError:
        raise ServiceError(
            "InvalidRequest", f"Checksum algorithm {algorithm} is not supported", 400
        ) from None


def combine_crc(algorithm: str, crc1: int, crc2: int, len2: int) -> int:
    """CRC of A||B from CRC(A), CRC(B) and len(B): full-object checksums of multipart uploads."""
    fn = {"CRC32": _crt.combine_crc32, "CRC32C": _crt.combine_crc32c, "CRC64NVME": _crt.combine_crc64nvme}[
        algorithm
    ]
    return fn(crc1, crc2, len2)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass
class Received:
    """A body written to a temp file and verified: publish `tmp` or discard it."""

    tmp: Path | None  # the body on disk, or None when it is small and held in `data`
    size: int
    md5: bytes
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> base64
    data: bytes | None = None
    keys: list[bytes] | None = None  # the object's layer keys: what is written is ciphertext

    @property
    def etag(self) -> str:
        return f'"{self.md5.hex()}"'


def requested_checksums(req: dict) -> tuple[dict[str, str], str | None]:
    """({algorithm: expected base64} sent in the request, the algorithm to compute)."""
    expected = {a: req[f"Checksum{a}"] for a in CHECKSUM_ALGORITHMS if req.get(f"Checksum{a}")}
    if len(expected) > 1:
        raise ServiceError(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            400,
        )
    algo = next(iter(expected), None) or (req.get("ChecksumAlgorithm") or None)
    if algo and algo.upper() not in CHECKSUM_ALGORITHMS:
        raise ServiceError(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the valid types: "
            f"[{', '.join(CHECKSUM_ALGORITHMS)}]",
            400,
        )
    return expected, algo.upper() if algo else None


def check_content_md5(value: str | None) -> bytes | None:
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise ServiceError(
            "InvalidDigest", "The Content-MD5 you specified was invalid.", 400, fields={"Content-MD5": value}
        )
    return raw


async def receive(
    blobs: BlobStore,
    body: BodyStream | bytes | None,
    *,
    max_size: int,
    content_md5: str | None = None,
    expected: dict[str, str] | None = None,
    algorithm: str | None = None,
    keys: list[bytes] | None = None,
) -> Received:
    """Read `body`, verifying size, Content-MD5 and flexible checksums.

    A body smaller than one batch stays in memory and is written by `publish` in a single
    worker-thread call (open, write, fsync, rename); a larger one streams to a temp file through
    a `Spool` (hash and write in parallel, O_DIRECT). On any failure the temp file is removed and
    ServiceError raised (BadDigest, EntityTooLarge, IncompleteBody ...), so a rejected or cut-off
    upload leaves nothing behind. With `keys` (an encrypted object's layer keys) only ciphertext
    reaches the disk: the spooled file is sealed as it is written, and `publish` seals a body
    held in memory.
    """
    want_md5 = check_content_md5(content_md5)
    expected = expected or {}
    md5 = hashlib.md5()
    # The MD5 flexible checksum is the ETag's MD5: computed once.
    hashers = {algorithm: new_hasher(algorithm)} if algorithm and algorithm != "MD5" else {}

    def hash_batch(batch: bytes | memoryview) -> None:
        md5.update(batch)
        for h in hashers.values():
            h.update(batch)

    size = 0
    data: bytes | None = None
    spool: Spool | None = None
    try:
        if isinstance(body, bytes | bytearray):
            if len(body) > max_size:
                raise _too_large()
            size, data = len(body), bytes(body)
        elif body is not None:
            if body.length is not None and body.length > max_size:
                raise _too_large()
            buf: list[bytes] = []
            async for chunk in body:
                size += len(chunk)
                if size > max_size:
                    raise _too_large()
                if spool is not None:
                    await spool.add(chunk)
                    continue
                buf.append(chunk)
                if size >= BATCH:
                    spool = Spool(blobs, hash_batch, _pool, Encryptor(keys) if keys else None)
                    for c in buf:
                        await spool.add(c)
                    buf = []
            if body.length is not None and size < body.length:
                raise ServiceError("IncompleteBody", "The request body terminated unexpectedly", 400)
            if spool is None:
                data = b"".join(buf)
            else:
                await spool.finish()
        else:
            data = b""
        if data is not None:
            if len(data) >= 256 * 1024:
                await asyncio.get_running_loop().run_in_executor(_pool, hash_batch, data)
            else:
                hash_batch(data)
        digest = md5.digest()
        if want_md5 is not None and want_md5 != digest:
            raise ServiceError(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
                400,
                fields={"ExpectedDigest": want_md5.hex(), "CalculatedDigest": b64(digest)},
            )
        got = {a: b64(h.digest()) for a, h in hashers.items()}
        if algorithm == "MD5":
            got["MD5"] = b64(digest)
        # Checksums sent as aws-chunked trailers arrive verified by the chunked decoder.
        for name, value in (getattr(body, "trailers", None) or {}).items():
            a = ALGORITHM_BY_HEADER.get(name.lower())
            if a is not None and a in got:
                expected.setdefault(a, value)
            elif a is not None and not got:
                got[a] = value
        for a, value in expected.items():
            if got.get(a.upper()) != value:
                raise ServiceError(
                    "BadDigest", f"The {a} you specified did not match the calculated checksum.", 400
                )
        return Received(spool.path if spool else None, size, digest, got, data, keys)
    except BaseException:
        if spool is not None:
            await spool.abort()
            blobs.discard(spool.path)
        raise


def discard(blobs: BlobStore, received: Received) -> None:
    """Drop a received body that will not be published."""
    if received.tmp is not None:
        blobs.discard(received.tmp)


def _too_large() -> ServiceError:
    return ServiceError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400)


def _write_and_publish(blobs: BlobStore, data: bytes) -> str:
    tmp, f = blobs.open_temp()
    try:
        with f:
            f.write(data)
        return blobs.publish(tmp)
    except BaseException:
        blobs.discard(tmp)
        raise


def stored_bytes(received: Received) -> bytes:
    """What is written for a body held in memory: its bytes, or their ciphertext."""
    data = received.data or b""
    return encrypt_bytes(received.keys, data) if received.keys else data


async def publish(blobs: BlobStore, received: Received) -> str:
    """Write (if still in memory), fsync and rename off the event loop; returns the new blob id."""
    loop = asyncio.get_running_loop()
    if received.tmp is None:
        if received.keys:
            data = await loop.run_in_executor(_pool, stored_bytes, received)
        else:
            data = received.data or b""
        return await loop.run_in_executor(_pool, _write_and_publish, blobs, data)
    return await loop.run_in_executor(_pool, blobs.publish, received.tmp)
