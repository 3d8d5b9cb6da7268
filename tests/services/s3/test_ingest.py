"""Request bodies to blobs (ingest + spool): exact bytes and digests at every batch/alignment edge.

Called directly against a real BlobStore in a temp dir, so both the O_DIRECT path (ext4 under
/tmp) and the buffered fallback are covered, with chunk sizes that straddle batch boundaries.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import os
import zlib

import pytest

from strata.protocol.errors import ServiceError
from strata.protocol.http import BodyStream
from strata.services.s3 import spool
from strata.services.s3.ingest import publish, receive
from strata.storage import BlobStore

BATCH = spool.BATCH


async def _chunks(data: bytes, size: int, fail_after: int | None = None):
    for i in range(0, len(data), size):
        if fail_after is not None and i >= fail_after:
            raise ServiceError("IncompleteBody", "The request body terminated unexpectedly", 400)
        yield data[i : i + size]


def _receive(blobs: BlobStore, data: bytes, chunk: int, **kw):
    async def go():
        got = await receive(blobs, BodyStream(_chunks(data, chunk), len(data)), max_size=1 << 40, **kw)
        return got, await publish(blobs, got)

    return asyncio.run(go())


@pytest.fixture(params=["direct", "buffered"])
def blobs(request, tmp_path, monkeypatch) -> BlobStore:
    store = BlobStore(tmp_path)
    if request.param == "buffered":
        real = store.open_temp_fd
        monkeypatch.setattr(store, "open_temp_fd", lambda direct=False: real(direct=False))
    return store


@pytest.mark.parametrize(
    "size,chunk",
    [
        (BATCH, 65536),
        (BATCH + 1, 65536),
        (2 * BATCH + 4097, 1_000_003),
        (3 * BATCH - 1, 3 * BATCH),  # one chunk bigger than a batch
        (BATCH + 4096, 4096),
    ],
)
def test_large_bodies_land_byte_exact(blobs: BlobStore, size: int, chunk: int) -> None:
    data = os.urandom(size)
    crc = zlib.crc32(data).to_bytes(4, "big")
    got, blob = _receive(
        blobs,
        data,
        chunk,
        content_md5=base64.b64encode(hashlib.md5(data).digest()).decode(),
        expected={"CRC32": base64.b64encode(crc).decode()},
        algorithm="CRC32",
    )
    assert got.size == size and got.md5 == hashlib.md5(data).digest()
    assert blobs.path(blob).read_bytes() == data
    assert not [p for p in (blobs.root / "tmp").rglob("*") if p.is_file()]


def test_direct_io_is_used_where_the_filesystem_allows(tmp_path) -> None:
    store = BlobStore(tmp_path)
    path, fd, direct = store.open_temp_fd(direct=True)
    os.close(fd)
    path.unlink()
    if not direct:
        pytest.skip("this filesystem refuses O_DIRECT")
    data = os.urandom(BATCH + 123)
    got, blob = _receive(store, data, 65536)
    assert store.path(blob).read_bytes() == data


def test_bad_digest_leaves_no_temp_file(blobs: BlobStore) -> None:
    data = os.urandom(BATCH + 10)
    with pytest.raises(ServiceError) as e:
        _receive(blobs, data, 65536, content_md5=base64.b64encode(b"0" * 16).decode())
    assert e.value.code == "BadDigest"
    assert not [p for p in (blobs.root / "tmp").rglob("*") if p.is_file()]


def test_cut_off_body_leaves_no_temp_file(blobs: BlobStore) -> None:
    data = os.urandom(3 * BATCH)

    async def go():
        stream = BodyStream(_chunks(data, 65536, fail_after=2 * BATCH + 65536), len(data))
        await receive(blobs, stream, max_size=1 << 40)

    with pytest.raises(ServiceError) as e:
        asyncio.run(go())
    assert e.value.code == "IncompleteBody"
    assert not [p for p in (blobs.root / "tmp").rglob("*") if p.is_file()]


def test_a_write_o_direct_refuses_goes_on_buffered(tmp_path) -> None:
    store = BlobStore(tmp_path)
    path, fd, direct = store.open_temp_fd(direct=True)
    try:
        if not direct:
            pytest.skip("this filesystem refuses O_DIRECT")
        data = os.urandom(5000)
        spool._write_all(fd, memoryview(data)[1:])  # unaligned memory and length: EINVAL under O_DIRECT
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(fd)
    assert path.read_bytes() == data[1:]
