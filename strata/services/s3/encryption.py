"""Encrypted object bytes at rest: the on-disk format, and reading any byte range of it.

An encrypted object is a run of *segments*: one for a single PUT or copy, one per part for a
completed multipart upload (parts are encrypted as they arrive and concatenated unchanged). A
segment is a 16-byte random salt followed by the plaintext cut into 64 KiB chunks, each sealed
with AES-GCM under every layer key in turn (one layer; two for DSSE-KMS):

    segment = salt(16) || seal(chunk 0) || seal(chunk 1) || ...   seal(c) = c || tag(16) per layer

A layer's chunk key is HMAC-SHA256(object key, salt), so every segment has keys of its own and a
chunk's nonce can simply be its index; the additional data says whether the chunk is the last of
its segment, so a cut-off file does not decrypt as a shorter object. Chunks are independent: a
range GET reads and opens only the chunks it needs (`read_plain`). Plaintext sizes (the object's,
and per part) live in the object's row, so where a chunk starts is computed, never stored.

`RootKey` is Strata's SSE-S3 root key, kept in the S3 data directory (mode 0600); it wraps each
object's data key (AES-GCM) and never leaves the server.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 64 * 1024
TAG = 16
SALT = 16
KEY_BYTES = 32
_LAST = b"\x01"
_MORE = b"\x00"
# Chunks read and opened per step of a streamed GET (1 MiB of plaintext).
READ_GROUP = 16


class Corrupt(Exception):
    """Ciphertext that does not open under the object's keys (damaged, or the wrong key)."""


def _chunks(size: int) -> int:
    return -(-size // CHUNK)


def segment_size(plain: int, layers: int = 1) -> int:
    """Bytes on disk of a segment holding `plain` bytes."""
    return SALT + plain + TAG * layers * _chunks(plain)


def stored_size(plain_sizes: list[int], layers: int = 1) -> int:
    """Bytes on disk of an object whose segments hold `plain_sizes` bytes each."""
    return sum(segment_size(n, layers) for n in plain_sizes)


def _aeads(keys: list[bytes], salt: bytes) -> list[AESGCM]:
    return [AESGCM(hmac.digest(k, salt, "sha256")) for k in keys]


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


class Encryptor:
    """Encrypts one segment as its plaintext arrives: `feed` bytes, then `finish` once.

    The last full chunk is held back until more bytes (or the end) arrive: only then is it known
    whether it is the segment's last."""

    def __init__(self, keys: list[bytes]) -> None:
        self._salt = os.urandom(SALT)
        self._aeads = _aeads(keys, self._salt)
        self._index = 0
        self._pending = bytearray()
        self._started = False

    def _seal_into(self, chunk: bytes | bytearray | memoryview, last: bool, out: memoryview) -> int:
        nonce, aad = _nonce(self._index), _LAST if last else _MORE
        n = len(chunk)
        for aead in self._aeads:
            target = out[: n + TAG] if aead is self._aeads[-1] else memoryview(bytearray(n + TAG))
            aead.encrypt_into(nonce, chunk, aad, target)
            chunk, n = target, n + TAG
        self._index += 1
        return n

    def max_out(self, n: int) -> int:
        """The most bytes `feed_into` (or `finish_into`) can write for `n` bytes of input."""
        return SALT + CHUNK + n + TAG * len(self._aeads) * (_chunks(n) + 1)

    def _head(self, out: memoryview) -> int:
        if self._started:
            return 0
        self._started = True
        out[:SALT] = self._salt
        return SALT

    def feed_into(self, data: bytes | bytearray | memoryview, out: memoryview) -> int:
        """Write the ciphertext of the chunks `data` completes into `out`; returns its length."""
        pos = self._head(out)
        view = memoryview(data)
        if self._pending:
            need = CHUNK - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if not view:
                return pos
            pos += self._seal_into(self._pending, False, out[pos:])
            self._pending = bytearray()
        while len(view) > CHUNK:
            pos += self._seal_into(view[:CHUNK], False, out[pos:])
            view = view[CHUNK:]
        self._pending = bytearray(view)
        return pos

    def finish_into(self, out: memoryview) -> int:
        """Write the segment's last chunk (and its salt, for an empty segment) into `out`."""
        pos = self._head(out)
        if self._pending:
            pos += self._seal_into(self._pending, True, out[pos:])
            self._pending = bytearray()
        return pos

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Ciphertext for the chunks `data` completes (may be empty)."""
        out = bytearray(self.max_out(len(data)))
        return bytes(memoryview(out)[: self.feed_into(data, memoryview(out))])

    def finish(self) -> bytes:
        """The segment's last chunk (and its salt, for an empty segment)."""
        out = bytearray(self.max_out(0))
        return bytes(memoryview(out)[: self.finish_into(memoryview(out))])


def encrypt_bytes(keys: list[bytes], data: bytes) -> bytes:
    """A whole segment for `data` at once."""
    enc = Encryptor(keys)
    return enc.feed(data) + enc.finish()


def read_plain(
    pread: Callable[[int, int], bytes | memoryview],
    keys: list[bytes],
    plain_sizes: list[int],
    first: int,
    last: int,
    group: int = READ_GROUP,
    reuse: bool = False,
) -> Iterator[bytearray | memoryview]:
    """The plaintext bytes first..last (inclusive) of an encrypted object, in pieces of at most
    `group` chunks. `pread(length, offset)` reads the stored bytes; `plain_sizes` are the
    segments' plaintext sizes. Raises Corrupt when a chunk does not open.

    `reuse`: each piece is a view of one buffer reused from piece to piece (a fresh buffer costs a
    page fault every 4 KiB, more than the decryption), valid only until the next is asked for."""
    buffer = SPARE.take() if reuse else bytearray()
    try:
        yield from _read_plain(pread, keys, plain_sizes, first, last, group, reuse, buffer)
    finally:
        if reuse:
            SPARE.give(buffer)


def _read_plain(
    pread: Callable[[int, int], bytes | memoryview],
    keys: list[bytes],
    plain_sizes: list[int],
    first: int,
    last: int,
    group: int,
    reuse: bool,
    buffer: bytearray,
) -> Iterator[bytearray | memoryview]:
    layers = len(keys)
    sealed = CHUNK + TAG * layers
    seg_plain = seg_file = 0
    for size in plain_sizes:
        lo, hi = max(first, seg_plain), min(last, seg_plain + size - 1)
        if lo <= hi:
            count = _chunks(size)
            c0, c1 = (lo - seg_plain) // CHUNK, (hi - seg_plain) // CHUNK
            # From the segment's first chunk, its salt comes in the same read as the chunks.
            salt = b"" if c0 == 0 else bytes(pread(SALT, seg_file))
            aeads = _aeads(keys, salt) if len(salt) == SALT else []
            if c0 and not aeads:
                raise Corrupt("short segment")
            for g in range(c0, c1 + 1, group):
                g_end = min(c1, g + group - 1)
                group_plain = min(size - g * CHUNK, (g_end - g + 1) * CHUNK)
                offset = seg_file + SALT + g * sealed
                length = group_plain + (g_end - g + 1) * TAG * layers
                if not aeads:
                    raw = memoryview(pread(SALT + length, offset - SALT))
                    if len(raw) < SALT:
                        raise Corrupt("short segment")
                    aeads = _aeads(keys, bytes(raw[:SALT]))
                    raw = raw[SALT:]
                else:
                    raw = memoryview(pread(length, offset))
                a = max(lo - seg_plain - g * CHUNK, 0)  # plaintext wanted from the group: a..b
                b = min(hi - seg_plain - g * CHUNK, group_plain - 1)
                if not reuse or len(buffer) < b - a + 1:
                    buffer = bytearray(b - a + 1)
                view = memoryview(buffer)[: b - a + 1]
                if layers == 1 and a == 0 and b == group_plain - 1:
                    _open_group(aeads[0], raw, view, g, g_end, count, size)
                else:
                    _open_part(aeads, raw, view, g, g_end, count, size, a, b, layers)
                yield view if reuse else buffer
        seg_plain += size
        seg_file += segment_size(size, layers)


def _open_group(
    aead: AESGCM, raw: memoryview, view: memoryview, g: int, g_end: int, count: int, size: int
) -> None:
    """Chunks g..g_end (all of each wanted, one layer) from `raw` into `view`: the common case
    of a GET, kept to one decryption call per chunk and little else."""
    if len(raw) != len(view) + TAG * (g_end - g + 1):
        raise Corrupt("short segment")
    into = aead.decrypt_into
    pos = out = 0
    try:
        for i in range(g, g_end + 1):
            n = CHUNK if i < count - 1 else size - i * CHUNK
            into(
                i.to_bytes(12, "big"),
                raw[pos : pos + n + TAG],
                _MORE if i < count - 1 else _LAST,
                view[out : out + n],
            )
            pos += n + TAG
            out += n
    except InvalidTag:
        raise Corrupt("chunk does not open") from None


def _open_part(
    aeads: list[AESGCM],
    raw: memoryview,
    view: memoryview,
    g: int,
    g_end: int,
    count: int,
    size: int,
    a: int,
    b: int,
    layers: int,
) -> None:
    """Plaintext a..b of chunks g..g_end (a range's ends, or DSSE's two layers) into `view`."""
    for i in range(g, g_end + 1):
        start = (i - g) * (CHUNK + TAG * layers)
        n = min(CHUNK, size - i * CHUNK)
        blob = raw[start : start + n + TAG * layers]
        if len(blob) != n + TAG * layers:
            raise Corrupt("short segment")
        at = (i - g) * CHUNK  # the chunk's plaintext within the group
        lo_c, hi_c = max(a, at), min(b, at + n - 1)
        if lo_c > hi_c:
            continue
        aad = _LAST if i == count - 1 else _MORE
        try:
            if lo_c == at and hi_c == at + n - 1:  # the whole chunk: opened in place
                inner: bytes | memoryview = blob
                for aead in reversed(aeads[1:]):  # DSSE's outer layer
                    inner = aead.decrypt(_nonce(i), inner, aad)
                aeads[0].decrypt_into(_nonce(i), inner, aad, view[lo_c - a : lo_c - a + n])
                continue
            plain: bytes = bytes(blob)
            for aead in reversed(aeads):
                plain = aead.decrypt(_nonce(i), plain, aad)
        except InvalidTag:
            raise Corrupt("chunk does not open") from None
        view[lo_c - a : hi_c - a + 1] = plain[lo_c - at : hi_c - at + 1]


def open_small(data: bytes, keys: list[bytes], size: int, first: int, last: int) -> bytes:
    """Bytes first..last of a one-segment object stored as `data` (an inline object): one chunk
    opened directly, larger ones through `read_plain`."""
    if size <= CHUNK and size and len(keys) == 1:
        try:
            plain = _aeads(keys, data[:SALT])[0].decrypt(_nonce(0), data[SALT:], _LAST)
        except InvalidTag:
            raise Corrupt("chunk does not open") from None
        return plain if (first, last) == (0, size - 1) else plain[first : last + 1]
    return b"".join(read_plain(bytes_reader(data), keys, [size], first, last))


def bytes_reader(data: bytes) -> Callable[[int, int], bytes | memoryview]:
    view = memoryview(data)
    return lambda n, off: view[off : off + n]


class SpareBuffers:
    """Buffers of streamed reads kept from one request to the next: a fresh 1 MiB buffer costs a
    zero-fill and a page fault every 4 KiB (a 1 MiB encrypted GET spent more on that than on its
    decryption), a kept one nothing. `take` one, `give` it back once nothing uses it."""

    # a group of chunks, sealed (up to two layers, after their salt) or opened
    SIZE = SALT + READ_GROUP * (CHUNK + 2 * TAG)

    def __init__(self, keep: int = 16) -> None:
        self._free: list[bytearray] = []
        self._keep = keep

    def take(self) -> bytearray:
        try:
            return self._free.pop()  # (list.pop and append are atomic: any thread may call)
        except IndexError:
            return bytearray(self.SIZE)

    def give(self, buf: bytearray) -> None:
        if len(self._free) < self._keep and len(buf) == self.SIZE:
            self._free.append(buf)


SPARE = SpareBuffers()


def file_reader(fd: int, buf: bytearray | None = None) -> Callable[[int, int], bytes | memoryview]:
    """Reads of a file into one buffer (`buf`, or one of its own) reused from read to read (fresh
    pages are slow to fault in): what a read returns is valid until the next."""
    buffer = bytearray() if buf is None else buf

    def read(n: int, offset: int) -> memoryview:
        nonlocal buffer
        if len(buffer) < n:
            buffer = bytearray(n)
        view = memoryview(buffer)[:n]
        return view[: os.preadv(fd, [view], offset)]

    return read


# -- key wrapping --------------------------------------------------------------------------------


def wrap(key: bytes, secret: bytes, aad: bytes) -> bytes:
    """`secret` sealed under `key` (nonce || ciphertext || tag)."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, secret, aad)


def unwrap(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], aad)
    except (InvalidTag, ValueError):
        raise Corrupt("wrapped key does not open") from None


_ROOT_AAD = b"strata-sse-s3"


class RootKey:
    """Strata's SSE-S3 root key: 32 random bytes in `<s3 data dir>/sse-root.key` (with
    `--blob-dir`: `<blob dir>/s3/sse-root.key`, which every gateway shares), mode 0600, created
    (durably, atomically) on first start."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._aead = AESGCM(secret)  # (made once: every SSE-S3 read unwraps with it)

    @classmethod
    def load(cls, path: Path, *, initial: bytes | None = None) -> RootKey:
        """The key at `path`, made first (from `initial`, else random) when there is none. Made
        under a name of its own and hard-linked into place, which fails when the file exists: of
        gateways sharing the directory and starting together, exactly one key wins and every one
        of them loads it."""
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, initial if initial is not None else os.urandom(KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        secret = path.read_bytes()
        if len(secret) != KEY_BYTES:
            raise RuntimeError(f"{path} is not a Strata SSE root key ({len(secret)} bytes)")
        return cls(secret)

    def wrap(self, data_key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data_key, _ROOT_AAD)

    def unwrap(self, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], _ROOT_AAD)
        except (InvalidTag, ValueError):
            raise Corrupt("wrapped key does not open") from None
