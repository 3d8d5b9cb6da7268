"""aws-chunked request bodies: decoding, chunk and trailer signatures, and SHA-256 payload checks.

Wire format (one chunk per line pair, sizes in hex):

    <size>[;chunk-signature=<sig>]\\r\\n<size bytes>\\r\\n      ... repeated ...
    0[;chunk-signature=<sig>]\\r\\n
    [<trailer-name>:<value>\\r\\n ...][x-amz-trailer-signature:<sig>\\r\\n]
    \\r\\n

Announced `x-amz-checksum-*` trailers are checked against the decoded data here (BadDigest on a
mismatch), so the values a provider finds in `BodyStream.trailers` are verified.

`ChunkedDecoder` is a sans-IO state machine (feed bytes in, get verified data pieces out), so the
same code decodes a buffered body and a streaming one. Memory stays bounded: data bytes pass
through as slices of the input, only header and trailer lines are buffered (at most a few KiB).

Streaming wrappers hold back the newest piece until the next one is known good, so a consumer
never receives the whole body before its last signature, checksum or length has been verified: a
failure surfaces as a ServiceError from the iteration, before the consumer's loop ends.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass

from strata.auth.canonical import EMPTY_SHA256, signatures_match
from strata.protocol.checksums import ALGORITHM_BY_HEADER, Checksum, is_valid_b64, new_checksum
from strata.protocol.errors import ServiceError
from strata.protocol.http import BodyStream

MAX_LINE = 4096  # a chunk header is ~90 bytes; a trailer line well under 200
MAX_TRAILERS = 16
TRAILER_SIGNATURE = "x-amz-trailer-signature"

STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = frozenset({STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER})

_HEX = frozenset("0123456789abcdefABCDEF")


def _sig_mismatch() -> ServiceError:
    return ServiceError(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        403,
    )


def _incomplete() -> ServiceError:
    return ServiceError(
        "IncompleteBody",
        "The request body terminated unexpectedly or its aws-chunked framing is invalid.",
        400,
    )


def _malformed_trailer() -> ServiceError:
    return ServiceError(
        "MalformedTrailerError",
        "The request contained trailing data that was not well-formed or did not conform to our published schema.",
        400,
    )


@dataclass
class ChunkSigner:
    """The signing context a chunk-signed body chains from: each chunk signs over the previous
    signature, starting with the seed signature of the Authorization header."""

    key: bytes
    amz_date: str
    scope: str
    previous: str

    def _sign(self, kind: str, digest: str) -> str:
        msg = f"{kind}\n{self.amz_date}\n{self.scope}\n{self.previous}\n{digest}"
        return hmac.new(self.key, msg.encode("utf-8"), hashlib.sha256).hexdigest()

    def chunk_signature(self, data_sha256_hex: str) -> str:
        return self._sign("AWS4-HMAC-SHA256-PAYLOAD", f"{EMPTY_SHA256}\n{data_sha256_hex}")

    def trailer_signature(self, trailer_text: str) -> str:
        return self._sign(
            "AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(trailer_text.encode("utf-8")).hexdigest()
        )

    def verify_chunk(self, data_sha256_hex: str, provided: str) -> None:
        expected = self.chunk_signature(data_sha256_hex)
        if not signatures_match(expected, provided):
            raise _sig_mismatch()
        self.previous = expected

    def verify_trailer(self, trailer_text: str, provided: str) -> None:
        if not signatures_match(self.trailer_signature(trailer_text), provided):
            raise _sig_mismatch()


# Decoder states.
_HEADER, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Decode aws-chunked bytes; `feed()` returns verified data pieces, `finish()` the trailers."""

    def __init__(
        self,
        signer: ChunkSigner | None = None,
        *,
        signed_trailer: bool = False,
        expected_trailers: frozenset[str] | None = None,
        decoded_length: int | None = None,
    ) -> None:
        self.signer = signer
        self.signed_trailer = signed_trailer
        # Names announced in x-amz-trailer (exactly these must arrive); None skips the check.
        self.expected_trailers = expected_trailers
        # Announced x-amz-checksum-* trailers are computed over the decoded data and checked.
        self._checksums: dict[str, Checksum] = {
            name: new_checksum(ALGORITHM_BY_HEADER[name])
            for name in (expected_trailers or ())
            if name in ALGORITHM_BY_HEADER
        }
        self.decoded_length = decoded_length
        self.total = 0
        self.trailers: dict[str, str] = {}
        self._trailer_lines: list[str] = []
        self._trailer_sig: str | None = None
        self._state = _HEADER
        self._line = bytearray()
        self._remaining = 0
        self._chunk_sig: str | None = None
        self._hasher = hashlib.sha256() if signer else None

    # -- framing

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                piece = data if (pos == 0 and take == end) else data[pos : pos + take]
                pos += take
                self._remaining -= take
                self.total += take
                if self._hasher is not None:
                    self._hasher.update(piece)
                for checksum in self._checksums.values():
                    checksum.update(piece)
                out.append(piece)
                if self._remaining == 0:
                    self._state = _DATA_END
            elif state == _DONE:
                # Tolerate trailing CR/LF some clients add; anything else is not aws-chunked.
                if data[pos:].strip(b"\r\n"):
                    raise _incomplete()
                break
            else:
                nl = data.find(b"\n", pos)
                if nl < 0:
                    self._line += data[pos:]
                    if len(self._line) > MAX_LINE:
                        raise _incomplete()
                    break
                self._line += data[pos:nl]
                pos = nl + 1
                if len(self._line) > MAX_LINE:
                    raise _incomplete()
                line = bytes(self._line).rstrip(b"\r")
                self._line.clear()
                self._on_line(line)
        return out

    def _on_line(self, line: bytes) -> None:
        state = self._state
        if state == _HEADER:
            self._start_chunk(line)
        elif state == _DATA_END:
            if line:
                raise _incomplete()  # chunk data longer than its declared size
            self._end_chunk()
            self._state = _HEADER
        else:  # _TRAILER
            if not line:
                self._finish_trailers()
                self._state = _DONE
            else:
                self._add_trailer(line)

    def _start_chunk(self, line: bytes) -> None:
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise _incomplete() from None
        size_text, _, ext = text.partition(";")
        size_text = size_text.strip()
        if not size_text or len(size_text) > 16 or not _HEX.issuperset(size_text):
            raise _incomplete()
        size = int(size_text, 16)
        sig = None
        for extension in ext.split(";") if ext else ():
            name, _, value = extension.partition("=")
            if name.strip() == "chunk-signature":
                sig = value.strip()
        if self.signer is not None and sig is None:
            raise _sig_mismatch()
        self._chunk_sig = sig
        if size == 0:
            self._end_chunk()
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _DATA

    def _end_chunk(self) -> None:
        if self.signer is not None:
            assert self._hasher is not None and self._chunk_sig is not None
            self.signer.verify_chunk(self._hasher.hexdigest(), self._chunk_sig)
            self._hasher = hashlib.sha256()

    def _add_trailer(self, line: bytes) -> None:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed_trailer() from None
        name, sep, value = text.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not sep or not name:
            raise _malformed_trailer()
        if name == TRAILER_SIGNATURE:
            self._trailer_sig = value
            return
        if self._trailer_sig is not None or len(self.trailers) >= MAX_TRAILERS:
            raise _malformed_trailer()
        self.trailers[name] = value
        self._trailer_lines.append(f"{name}:{value}\n")

    def _finish_trailers(self) -> None:
        if self.signer is not None:
            if self.signed_trailer:
                if self._trailer_sig is None:
                    raise _sig_mismatch()
                self.signer.verify_trailer("".join(self._trailer_lines), self._trailer_sig)
            elif self.trailers or self._trailer_sig is not None:
                raise _malformed_trailer()  # nothing signs a trailer on a body signed without one
        if self.expected_trailers is not None and set(self.trailers) != self.expected_trailers:
            raise _malformed_trailer()
        for name, checksum in self._checksums.items():
            algorithm = ALGORITHM_BY_HEADER[name]
            if not is_valid_b64(algorithm, self.trailers[name]):
                raise ServiceError("InvalidRequest", f"Value for {name} trailing header is invalid.", 400)
            if checksum.b64digest() != self.trailers[name]:
                raise ServiceError(
                    "BadDigest", f"The {algorithm} you specified did not match the calculated checksum.", 400
                )

    def finish(self) -> dict[str, str]:
        """Check the body ended where it should; the trailers sent (name -> value)."""
        if self._state == _TRAILER and not self._line:
            # Some clients end right after the last trailer line, without the empty line.
            self._finish_trailers()
            self._state = _DONE
        if self._state != _DONE:
            raise _incomplete()
        if self.decoded_length is not None and self.total != self.decoded_length:
            raise ServiceError(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header",
                400,
            )
        return self.trailers


async def decode_stream(
    source: AsyncIterator[bytes], decoder: ChunkedDecoder, stream: BodyStream
) -> AsyncIterator[bytes]:
    """Decoded, verified bytes of an aws-chunked stream; trailers land in `stream.trailers`
    before the last piece is released."""
    held: bytes | None = None
    async for chunk in source:
        for piece in decoder.feed(chunk):
            if held is not None:
                yield held
            held = piece
    stream.trailers = decoder.finish()
    if held is not None:
        yield held


def decode_body(body: bytes, decoder: ChunkedDecoder) -> tuple[bytes, dict[str, str]]:
    """Decode a fully buffered aws-chunked body."""
    data = b"".join(decoder.feed(body))
    return data, decoder.finish()


def payload_mismatch(client_hex: str, computed_hex: str) -> ServiceError:
    return ServiceError(
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        400,
        fields={"ClientComputedContentSHA256": client_hex, "S3ComputedContentSHA256": computed_hex},
    )


async def verify_sha256_stream(source: AsyncIterator[bytes], expected_hex: str) -> AsyncIterator[bytes]:
    """Pass a body through while hashing it; the last piece is released only if the hash matches."""
    h = hashlib.sha256()
    held: bytes | None = None
    async for chunk in source:
        if not chunk:
            continue
        h.update(chunk)
        if held is not None:
            yield held
        held = chunk
    computed = h.hexdigest()
    if computed != expected_hex:
        raise payload_mismatch(expected_hex, computed)
    if held is not None:
        yield held
